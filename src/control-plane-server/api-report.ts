/**
 * `POST /v1/report`: a connected workload tells the status its certificate (SPIFFE ID, expiry,
 * where it came from) and how many inbound requests arrived in plaintext and over mTLS, and from
 * which peers — what `meshlet status` shows to decide whether a namespace is ready for STRICT.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ReportedIdentity, ReportedInboundTls, WorkloadReport } from '../control-plane/protocol.ts';
import { ControlPlaneError } from './errors.ts';
import { readJson, type RequestContext, requireSameWorkload, sendJson, type WriterCaller } from './http.ts';

/** Largest report body. */
export const MAX_REPORT_BYTES = 64 * 1024;
/** Most peers one report may list (a workload keeps its busiest ones). */
export const MAX_REPORTED_PEERS = 200;

const count = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
/** The latest time a JavaScript Date can hold (ECMAScript: 8.64e15 ms after the epoch). */
const MAX_DATE_MS = 8.64e15;
/** Epoch milliseconds a Date can show (`meshlet status` prints them). */
const epochMs = (v: unknown): v is number => count(v) && v <= MAX_DATE_MS;

function identity(v: unknown): ReportedIdentity {
  const o = v as Record<string, unknown> | null;
  if (o === null || typeof o !== 'object') throw new ControlPlaneError('INVALID', 'report: identity must be an object');
  if (typeof o.spiffeId !== 'string' || !o.spiffeId.startsWith('spiffe://') || o.spiffeId.length > 2048) throw new ControlPlaneError('INVALID', 'report: identity.spiffeId must be a spiffe:// URI');
  if (!epochMs(o.notAfter)) throw new ControlPlaneError('INVALID', 'report: identity.notAfter must be epoch milliseconds');
  if (o.source !== 'files' && o.source !== 'dev-ca' && o.source !== 'control-plane') throw new ControlPlaneError('INVALID', "report: identity.source must be 'files', 'dev-ca' or 'control-plane'");
  return { spiffeId: o.spiffeId, notAfter: o.notAfter, source: o.source };
}

function inboundTls(v: unknown): ReportedInboundTls {
  const o = v as Record<string, unknown> | null;
  if (o === null || typeof o !== 'object') throw new ControlPlaneError('INVALID', 'report: inboundTls must be an object');
  if (!count(o.plaintext) || !count(o.mtls)) throw new ControlPlaneError('INVALID', 'report: inboundTls.plaintext and inboundTls.mtls must be non-negative integers');
  const peers = o.peers ?? {};
  if (peers === null || typeof peers !== 'object' || Array.isArray(peers)) throw new ControlPlaneError('INVALID', 'report: inboundTls.peers must map principals to counts');
  const entries = Object.entries(peers);
  if (entries.length > MAX_REPORTED_PEERS) throw new ControlPlaneError('TOO_LARGE', `report: ${entries.length} peers, more than ${MAX_REPORTED_PEERS}; send the busiest`);
  const out: Record<string, number> = Object.create(null) as Record<string, number>;
  for (const [k, n] of entries) {
    if (k.length > 1024 || !count(n)) throw new ControlPlaneError('INVALID', `report: inboundTls.peers[${JSON.stringify(k.slice(0, 100))}] must be a count under a principal of at most 1024 characters`);
    out[k] = n;
  }
  if (o.lastPlaintextAt !== undefined && !epochMs(o.lastPlaintextAt)) throw new ControlPlaneError('INVALID', 'report: inboundTls.lastPlaintextAt must be epoch milliseconds');
  const last = o.lastPlaintextAt as number | undefined;
  return last === undefined ? { plaintext: o.plaintext, mtls: o.mtls, peers: out } : { plaintext: o.plaintext, mtls: o.mtls, peers: out, lastPlaintextAt: last };
}

/** `POST /v1/report`. */
export async function report(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, caller: WriterCaller): Promise<void> {
  const b = await readJson(req, Math.min(ctx.maxBodyBytes, MAX_REPORT_BYTES));
  if (typeof b.connection !== 'string') throw new ControlPlaneError('INVALID', 'report: connection must be a string (hello.connection)');
  const r: WorkloadReport = {
    connection: b.connection,
    ...(b.identity === undefined ? {} : { identity: identity(b.identity) }),
    ...(b.inboundTls === undefined ? {} : { inboundTls: inboundTls(b.inboundTls) }),
  };
  const owner = ctx.board.owner(r.connection);
  if (owner === undefined) throw new ControlPlaneError('NOT_FOUND', `report: connection ${r.connection} is not connected to this server`);
  requireSameWorkload(caller, owner.service, owner.namespace, 'report');
  ctx.board.report(r);
  sendJson(res, 200, { ok: true });
}
