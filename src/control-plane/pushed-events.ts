/**
 * The events a control plane pushes besides config and endpoints — `trust-bundle` (the roots to
 * trust) and `mesh-config` (its MeshConfig) — parsed and checked before the watch hands them on:
 * a malformed one throws naming what is wrong (the watch warns and ignores it).
 *
 * @module
 */
import { X509Certificate } from 'node:crypto';
import { parsePemBundle } from '../security/pki/pem.ts';
import type { MeshConfigEvent, TrustBundleEvent } from './protocol.ts';

/** A `trust-bundle` event's data: a version and a non-empty list of PEM CA certificates. */
export function parseTrustBundle(data: string): TrustBundleEvent {
  const body = JSON.parse(data) as TrustBundleEvent;
  const ok = typeof body?.version === 'string' && Array.isArray(body.roots) && body.roots.length > 0 && body.roots.every((r) => typeof r === 'string' && r.includes('-----BEGIN CERTIFICATE-----'));
  if (!ok) throw new Error('version and a non-empty list of PEM roots are required');
  body.roots.forEach(checkRoot);
  return body;
}

/**
 * What a stream whose server sends no `mesh-config` (an older control plane: a newer one sends it
 * first, after `hello`) stands for: no MeshConfig, as a newer one without `--mesh-config` pushes
 * `{}`. Its version is empty (never a pushed one's).
 */
export const NO_MESH_CONFIG: MeshConfigEvent = Object.freeze({ version: '', meshConfig: Object.freeze({}) });

/** A `mesh-config` event's data: a version and the MeshConfig as an object. */
export function parseMeshConfigEvent(data: string): MeshConfigEvent {
  return checkMeshConfigEvent(JSON.parse(data));
}

/** A `mesh-config` event's data, parsed (as the last-known-good cache keeps it): checked as {@link parseMeshConfigEvent} checks it. */
export function checkMeshConfigEvent(value: unknown): MeshConfigEvent {
  const body = value as MeshConfigEvent;
  const m = body?.meshConfig;
  if (typeof body?.version !== 'string' || m === null || typeof m !== 'object' || Array.isArray(m)) throw new Error('version and a meshConfig object are required');
  if (body.source !== undefined && typeof body.source !== 'string') throw new Error('source must be a string');
  const n = body.meshNetworks;
  if (n !== undefined && (n === null || typeof n !== 'object' || Array.isArray(n))) throw new Error('meshNetworks must be an object (Istio\'s MeshNetworks: { networks })');
  return body;
}

/** Throws naming what is wrong when a pushed root is not a CA certificate (garbage would replace the roots the mesh trusts). */
function checkRoot(pem: string, i: number): void {
  const certs = parsePemBundle(pem);
  if (certs.length === 0) throw new Error(`root ${i + 1} holds no PEM certificate`);
  for (const c of certs) {
    let x: X509Certificate;
    try {
      x = new X509Certificate(c);
    } catch (err) {
      throw new Error(`root ${i + 1} is not a certificate: ${(err as Error).message}`);
    }
    if (!x.ca && !(isV1(x.raw) && x.checkIssued(x) && x.verify(x.publicKey))) throw new Error(`root ${i + 1} (${(x.subject ?? '').replaceAll('\n', ', ') || 'no subject'}) is not a CA certificate`);
  }
}

/**
 * An X.509 v1 certificate: its TBSCertificate has no `[0] version` field (and so no extensions,
 * no basicConstraints). A self-signed one is a trust anchor as OpenSSL takes it (X509_check_ca),
 * and the control plane accepts one as its root.
 */
function isV1(der: Buffer): boolean {
  let i = 0;
  // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { version [0] EXPLICIT OPTIONAL, … }, … }
  for (let n = 0; n < 2; n++) {
    if (der[i] !== 0x30) return false;
    const len = der[i + 1] ?? 0;
    i += 2 + (len & 0x80 ? len & 0x7f : 0);
  }
  return der[i] !== 0xa0;
}
