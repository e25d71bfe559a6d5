/**
 * The CA's endpoints: `POST /v1/certificates` signs a workload's CSR for the identity its token
 * proves; `GET /v1/ca` shows the CA and trust bundle; `POST /v1/ca/rotate` (admin) rotates
 * the root or finalizes a rotation.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CertificateRequest, CertificateResponse, RotateRequest } from '../control-plane/protocol.ts';
import { DEFAULT_SERVICE_ACCOUNT } from './auth.ts';
import { MIN_CERT_TTL_MS } from './ca/authority.ts';
import { ControlPlaneError } from './errors.ts';
import { type Caller, readJson, type RequestContext, requireAdmin, sendJson, type WriterCaller } from './http.ts';

/** Largest `POST /v1/certificates` body: a CSR is 0.5–2 KiB of PEM (RSA-4096 about 1.7 KiB). */
export const MAX_CSR_BODY_BYTES = 32 * 1024;
/** Largest `POST /v1/ca/rotate` body (a certificate chain and a key). */
export const MAX_ROTATE_BODY_BYTES = 256 * 1024;

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

function optionalName(b: Record<string, unknown>, key: 'namespace' | 'serviceAccount'): string | undefined {
  const v = b[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !NAME.test(v) || v.length > 253) throw new ControlPlaneError('INVALID', `certificates: ${key} must be a DNS-1123 name, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * `POST /v1/certificates` (authenticated and counted as received by the router), counted as
 * istiod counts: issued (with its latency), refused for the identity (authentication), a body
 * or CSR that does not parse or verify (parsing), or a CA that could not sign (sign).
 */
export async function issueCertificate(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, caller: WriterCaller): Promise<void> {
  const startedAt = ctx.metrics.now();
  let answer: CertificateResponse;
  try {
    answer = await issue(req, ctx, caller);
  } catch (err) {
    const code = err instanceof ControlPlaneError ? err.wireCode : 'INTERNAL';
    ctx.metrics.csrFailed(code === 'FORBIDDEN' || code === 'UNAUTHENTICATED' ? 'authentication' : code === 'INVALID' || code === 'TOO_LARGE' ? 'parsing' : 'sign');
    throw err;
  }
  ctx.metrics.issued(startedAt);
  sendJson(res, 200, answer);
}

async function issue(req: IncomingMessage, ctx: RequestContext, caller: WriterCaller): Promise<CertificateResponse> {
  const b = await readJson(req, Math.min(ctx.maxBodyBytes, MAX_CSR_BODY_BYTES));
  const body = b as Partial<CertificateRequest>;
  if (typeof body.csr !== 'string' || !body.csr.includes('-----BEGIN CERTIFICATE REQUEST-----')) {
    throw new ControlPlaneError('INVALID', 'certificates: csr must be a PEM certificate signing request (-----BEGIN CERTIFICATE REQUEST-----)');
  }
  const namespace = optionalName(b, 'namespace');
  const serviceAccount = optionalName(b, 'serviceAccount');
  let ttlMs: number | undefined;
  if (body.ttlMs !== undefined) {
    if (typeof body.ttlMs !== 'number' || !Number.isFinite(body.ttlMs) || body.ttlMs < MIN_CERT_TTL_MS) throw new ControlPlaneError('INVALID', `certificates: ttlMs must be a number of ms, at least ${MIN_CERT_TTL_MS}`);
    if (body.ttlMs > ctx.ca.certTtlMs) throw new ControlPlaneError('INVALID', `certificates: ttlMs ${body.ttlMs} is longer than the control plane's certificate lifetime (--cert-ttl, ${ctx.ca.certTtlMs} ms)`);
    ttlMs = body.ttlMs;
  }
  let who: { namespace: string; serviceAccount: string; ttlMs?: number };
  if (caller?.role === 'workload') {
    // The token's identity, nothing else: a workload cannot ask for another one.
    if (namespace !== undefined && namespace !== caller.namespace) throw new ControlPlaneError('FORBIDDEN', `certificates: the token is for namespace ${caller.namespace}, not ${namespace}`);
    if (serviceAccount !== undefined && serviceAccount !== caller.serviceAccount) {
      throw new ControlPlaneError('FORBIDDEN', `certificates: the token is for service account ${caller.serviceAccount}, not ${serviceAccount}`);
    }
    if (ttlMs !== undefined) throw new ControlPlaneError('FORBIDDEN', 'certificates: only an admin token may ask for a lifetime (ttlMs)');
    who = { namespace: caller.namespace, serviceAccount: caller.serviceAccount };
  } else {
    // An admin (meshlet ca issue), or a token-less request to an --insecure server: the body names the identity.
    if (namespace === undefined) throw new ControlPlaneError('INVALID', 'certificates: namespace is required with an admin token (the identity to issue for)');
    who = { namespace, serviceAccount: serviceAccount ?? DEFAULT_SERVICE_ACCOUNT, ...(ttlMs === undefined ? {} : { ttlMs }) };
  }
  return ctx.ca.issue(body.csr, who);
}

/** `GET /v1/ca`: any authenticated caller (the roots are public; no key is shown). */
export function showCa(res: ServerResponse, ctx: RequestContext): void {
  sendJson(res, 200, ctx.ca.info());
}

/** `POST /v1/ca/rotate` (admin). */
export async function rotateCa(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, caller: Caller): Promise<void> {
  requireAdmin(caller, 'rotating the CA');
  const b = await readJson(req, Math.min(ctx.maxBodyBytes, MAX_ROTATE_BODY_BYTES));
  for (const k of Object.keys(b)) {
    if (!['finalize', 'certChain', 'key', 'root', 'overlapMs'].includes(k)) throw new ControlPlaneError('INVALID', `rotate: unknown field ${JSON.stringify(k)} (finalize, certChain, key, root, overlapMs)`);
  }
  if (b.finalize !== undefined && typeof b.finalize !== 'boolean') throw new ControlPlaneError('INVALID', 'rotate: finalize must be a boolean');
  for (const k of ['certChain', 'key', 'root'] as const) if (b[k] !== undefined && typeof b[k] !== 'string') throw new ControlPlaneError('INVALID', `rotate: ${k} must be a PEM string`);
  const info = await ctx.ca.rotate(b as RotateRequest);
  ctx.logger.info?.(`CA ${b.finalize === true ? 'rotation finalized' : 'rotated'} by ${caller?.subject ?? 'an insecure request'}`);
  sendJson(res, 200, info);
}
