/**
 * The control plane's CA as it is stored (`<dataDir>/ca.json`, mode 0600, and under the shared
 * key `ca` when replicas share etcd): the certificate that signs workload certificates with its
 * key and chain, the root it chains to, and the trust bundle — every root workloads trust, more
 * than one while a rotation overlaps. One JSON document, so a change (a rotation, its finalize)
 * is one atomic write or compare-and-swap.
 *
 * @module
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { CaCertificateInfo } from '../../control-plane/protocol.ts';
import { InvalidArgumentError } from '../../core/errors.ts';

/** File name of the CA inside the data directory. */
export const CA_FILE = 'ca.json';
/** Key under which replicas share the CA. */
export const SHARED_CA_KEY = 'ca';

/** The stored CA. */
export interface CaState {
  readonly format: 1;
  /** Increases with every change (rotation, finalize, a new provided CA). */
  readonly generation: number;
  readonly origin: 'generated' | 'provided';
  /** PEM: the signing certificate, then intermediates up to (not including) the root. */
  readonly certChain: string;
  /** PEM private key of the signing certificate. */
  readonly key: string;
  /** PEM: the root the signer chains to (the signer itself when it is a root). */
  readonly root: string;
  /** PEM roots workloads trust, the signer's root among them. */
  readonly roots: readonly string[];
  /** When the rotation in progress finalizes itself (epoch ms; `rotate --overlap`). */
  readonly finalizeAt?: number;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The PEM certificates in `text`, normalized (one trailing newline each). */
export function pemCertificates(text: string): string[] {
  return (text.match(PEM_CERT) ?? []).map((p) => `${p.trim()}\n`);
}

/** A content version of a trust bundle: the same roots in any order give the same version. */
export function bundleVersion(roots: readonly string[]): string {
  const h = createHash('sha256');
  for (const r of [...roots].map((p) => new X509Certificate(p).fingerprint256).sort()) h.update(r);
  return h.digest('hex').slice(0, 16);
}

/** The same certificate (DER equality). */
export function sameCertificate(a: string, b: string): boolean {
  return new X509Certificate(a).raw.equals(new X509Certificate(b).raw);
}

/** The roots of `a` and `b` without duplicates, `a`'s first. */
export function unionRoots(a: readonly string[], b: readonly string[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const p of [...a, ...b]) {
    const fp = new X509Certificate(p).fingerprint256;
    if (seen.has(fp)) continue;
    seen.add(fp);
    out.push(p);
  }
  return out;
}

/** How `GET /v1/ca` describes a certificate. */
export function describeCertificate(pem: string): CaCertificateInfo {
  const c = new X509Certificate(pem);
  return {
    subject: (c.subject ?? '').replaceAll('\n', ', '),
    issuer: (c.issuer ?? '').replaceAll('\n', ', '),
    serial: c.serialNumber,
    fingerprint: c.fingerprint256,
    notBefore: new Date(c.validFrom).toISOString(),
    notAfter: new Date(c.validTo).toISOString(),
    pem: `${pem.trim()}\n`,
  };
}

/** Serializes a state for the file and the shared store. */
export function serializeCaState(s: CaState): string {
  return `${JSON.stringify(s)}\n`;
}

/**
 * Parses a stored state; throws `InvalidArgumentError` naming `where` and what is wrong (the
 * control plane does not start on a damaged CA: it would issue from, or trust, the wrong root).
 */
export function parseCaState(text: string, where: string): CaState {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new InvalidArgumentError(`${where}: not JSON (a damaged CA file? restore it, or move it away to start a new CA, which workloads will not trust until they get new certificates)`, { cause: err });
  }
  const fail = (what: string): never => {
    throw new InvalidArgumentError(`${where}: ${what}`);
  };
  if (v === null || typeof v !== 'object') fail('not a JSON object');
  if (v.format !== 1) fail(`unknown format ${JSON.stringify(v.format)} (expected 1; written by a newer meshlet?)`);
  if (!Number.isSafeInteger(v.generation) || (v.generation as number) < 1) fail('generation must be a positive integer');
  if (v.origin !== 'generated' && v.origin !== 'provided') fail('origin must be "generated" or "provided"');
  for (const k of ['certChain', 'key', 'root'] as const) if (typeof v[k] !== 'string' || v[k] === '') fail(`${k} must be a PEM string`);
  if (!Array.isArray(v.roots) || v.roots.length === 0 || !v.roots.every((r) => typeof r === 'string')) fail('roots must be a non-empty list of PEM strings');
  const chain = pemCertificates(v.certChain as string);
  if (chain.length === 0) fail('certChain holds no PEM certificate');
  try {
    for (const p of [...chain, v.root as string, ...(v.roots as string[])]) new X509Certificate(p);
  } catch (err) {
    fail(`a certificate does not parse: ${(err as Error).message}`);
  }
  if (!(v.roots as string[]).some((r) => sameCertificate(r, v.root as string))) fail("roots does not hold the signer's root");
  if (v.finalizeAt !== undefined && !Number.isSafeInteger(v.finalizeAt)) fail('finalizeAt must be epoch milliseconds');
  return {
    format: 1,
    generation: v.generation as number,
    origin: v.origin as CaState['origin'],
    certChain: chain.join(''),
    key: v.key as string,
    root: `${(v.root as string).trim()}\n`,
    roots: (v.roots as string[]).map((r) => `${r.trim()}\n`),
    ...(v.finalizeAt === undefined ? {} : { finalizeAt: v.finalizeAt as number }),
  };
}
