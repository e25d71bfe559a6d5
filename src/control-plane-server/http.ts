/**
 * HTTP plumbing shared by the control-plane endpoints: the request context, bounded body
 * reading, JSON and error answers (protocol.ts `ErrorBody`), and token authentication.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorBody, StatusDocument } from '../control-plane/protocol.ts';
import { type ConfigError, isMeshletError } from '../core/errors.ts';
import type { AddressPolicy } from './address-policy.ts';
import type { TokenAuthority } from './auth.ts';
import type { ControlPlaneCa } from './ca/authority.ts';
import { ControlPlaneError, WIRE_STATUS } from './errors.ts';
import type { PushHub } from './hub.ts';
import type { ControlPlaneLimits } from './limits.ts';
import type { ControlPlaneMetrics } from './metrics/control-plane-metrics.ts';
import type { ServerLogger } from './logger.ts';
import type { StatusBoard } from './status.ts';
import type { ConfigStore, RegistryStore } from './store.ts';
import { type Caller, VIEWER_MAY, type WriterCaller } from './viewer-gate.ts';

/** Largest request body accepted by default: 4 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

/**
 * How long a request's headers may take to arrive, and the whole request (headers and body; a
 * watch is a GET whose request ends with its headers, so its stream is not bounded by this). A
 * client that sends a byte now and then is cut off then, instead of holding the connection
 * forever (Node's `requestTimeout`; 0 turned that off).
 */
export const HEADERS_TIMEOUT_MS = 30_000;
export const REQUEST_TIMEOUT_MS = 60_000;
/** How often the two are checked (Node's `connectionsCheckingInterval`, 30 s by default, which would let a request run up to 30 s past them). */
export const TIMEOUT_CHECK_MS = 5_000;

/** Everything a request handler needs. */
export interface RequestContext {
  readonly store: ConfigStore;
  readonly registry: RegistryStore;
  readonly auth: TokenAuthority;
  /** Signs workload certificates; keeps the trust bundle. */
  readonly ca: ControlPlaneCa;
  readonly hub: PushHub;
  readonly board: StatusBoard;
  readonly insecure: boolean;
  readonly serverId: string;
  readonly startedAt: string;
  readonly maxBodyBytes: number;
  readonly logger: ServerLogger;
  /** Which addresses registrations may claim. */
  readonly addressPolicy: AddressPolicy;
  readonly limits: Required<ControlPlaneLimits>;
  /** This replica's own metrics (`GET /metrics`). */
  readonly metrics: ControlPlaneMetrics;
  /** The MeshConfig pushed to meshes, as the status shows it (none without `--mesh-config`). */
  readonly meshConfig?: () => StatusDocument['meshConfig'];
}

export type { Caller, WriterCaller } from './viewer-gate.ts';

/** Answers with JSON. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Answers with an `ErrorBody` for any error (unknown ones become 500 and are logged). */
export function sendError(res: ServerResponse, err: unknown, logger: ServerLogger): void {
  let code: keyof typeof WIRE_STATUS;
  let message: string;
  let issues: readonly string[] | undefined;
  if (err instanceof ControlPlaneError) {
    code = err.wireCode;
    message = err.message;
    issues = err.issues;
  } else if (isMeshletError(err, 'MESHLET_ERR_CONFIG_INVALID') && Array.isArray((err as ConfigError).issues)) {
    code = 'INVALID';
    const errors = (err as ConfigError).issues.filter((i) => i.level === 'error');
    message = `configuration rejected, ${errors.length} error(s)`;
    issues = errors.map(String);
  } else if (isMeshletError(err, 'MESHLET_ERR_CONTROL_PLANE')) {
    code = 'UNAVAILABLE';
    message = err.message;
  } else if (isMeshletError(err, 'MESHLET_ERR_INVALID_ARG')) {
    code = 'INVALID';
    message = err.message;
  } else {
    code = 'INTERNAL';
    message = 'internal error';
    logger.warn(`internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body: ErrorBody = { error: issues === undefined ? { code, message } : { code, message, issues } };
  const headers: Record<string, string> =
    code === 'UNAUTHENTICATED' ? { 'www-authenticate': `Bearer realm="meshlet", error="invalid_token", error_description=${JSON.stringify(message)}` } : {};
  // A refusal before the body was read (no token, too large, …): the connection is closed after
  // the answer rather than kept to drain the rest at the sender's pace — a client without a token
  // could otherwise hold connections open for as long as it sends a byte now and then.
  if (res.req !== undefined && !res.req.complete) headers.connection = 'close';
  sendJson(res, WIRE_STATUS[code], body, headers);
}

/** Reads the request body as text; refuses more than `limit` bytes with 413. */
export async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length']);
  const tooLarge = () => new ControlPlaneError('TOO_LARGE', `request body is larger than ${limit} bytes`);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      req.resume();
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads and parses a JSON object body. */
export async function readJson(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const text = await readBody(req, limit);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ControlPlaneError('INVALID', 'request body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ControlPlaneError('INVALID', 'request body must be a JSON object');
  return value as Record<string, unknown>;
}

/** The peer's address, without the IPv4-mapped IPv6 prefix. */
export function remoteAddress(req: IncomingMessage): string {
  const a = req.socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

/**
 * Verifies the `Authorization: Bearer` token. Without a token an insecure server lets the request
 * through (`undefined`); a secure one answers 401. A token that is present is always verified.
 */
export async function authenticate(req: IncomingMessage, ctx: RequestContext): Promise<Caller> {
  const header = req.headers.authorization;
  if (header === undefined || header === '') {
    if (ctx.insecure) return undefined;
    throw new ControlPlaneError('UNAUTHENTICATED', 'no token: send "Authorization: Bearer <token>" (mint one with `meshlet token`)');
  }
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (m === null) throw new ControlPlaneError('UNAUTHENTICATED', 'the Authorization header must be "Bearer <token>"');
  const result = await ctx.auth.verifyToken(m[1]!);
  if (!result.ok) throw new ControlPlaneError('UNAUTHENTICATED', result.message);
  return result.identity;
}

/** Refuses callers without an admin token (changing the config, rotating the CA). */
export function requireAdmin(caller: Caller, what: string): asserts caller is Extract<Caller, { readonly role: 'admin' }> | undefined {
  if (caller === undefined || caller.role === 'admin') return;
  const may = caller.role === 'viewer' ? ` (a viewer token, which may only read: ${VIEWER_MAY})` : '';
  throw new ControlPlaneError('FORBIDDEN', `${what} needs an admin token (meshlet token --admin); this token is for ${caller.subject}${may}`);
}

/** Refuses callers without an admin or viewer token (what an admin reads: the config API's GETs, the status). */
export function requireReader(caller: Caller, what: string): void {
  if (caller === undefined || caller.role !== 'workload') return;
  throw new ControlPlaneError('FORBIDDEN', `${what} needs an admin or viewer token (meshlet token --admin | --viewer); this token is for ${caller.subject}`);
}

/** Refuses a workload token whose service or namespace differ from the ones the request names. */
export function requireSameWorkload(caller: WriterCaller, service: string | undefined, namespace: string, what: string): void {
  if (caller === undefined || caller.role === 'admin') return;
  if ((service !== undefined && caller.service !== service) || caller.namespace !== namespace) {
    const asked = service === undefined ? namespace : `${namespace}/${service}`;
    throw new ControlPlaneError('FORBIDDEN', `${what}: the token is for ${caller.subject}, not ${asked}`);
  }
}
