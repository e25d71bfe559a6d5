/**
 * The control-plane client's HTTP: a dedicated undici `Agent` (never the mesh's own
 * dispatcher, so mesh routing can't capture control-plane traffic), one opossum circuit
 * breaker per control-plane URL for the short calls (register, renew, deregister, ACK) so a
 * dead replica is not hammered, and error messages that name the URL and the server's reason.
 * opossum is loaded on the first call: embedded meshes and apps that only import meshlet never
 * load it.
 *
 * @module
 */
import { STATUS_CODES } from 'node:http';
import type CircuitBreaker from 'opossum';
import { Agent, buildConnector, type Dispatcher } from 'undici';
import { MeshletError } from '../core/errors.ts';
import { UNKNOWN_CA_CODES } from '../core/tls-failure.ts';
import type { TrustBundleEvent } from './protocol.ts';

/** A non-2xx answer from the control plane. */
export class HttpStatusError extends Error {
  /** The HTTP status. */
  readonly status: number;
  /** `error.code` of the body (`UNAUTHENTICATED`, `NOT_FOUND`, …), '' when none. */
  readonly serverCode: string;
  /** `error.message` of the body, or the body text. */
  readonly serverMessage: string;
  /** `error.issues` of the body (printed config issues of an `INVALID` answer). */
  readonly issues: readonly string[];
  constructor(status: number, serverCode: string, serverMessage: string, issues: readonly string[] = []) {
    super(`${status} ${STATUS_CODES[status] ?? ''}${serverMessage === '' ? '' : `: ${serverMessage}`}`);
    this.name = 'HttpStatusError';
    this.status = status;
    this.serverCode = serverCode;
    this.serverMessage = serverMessage;
    this.issues = issues;
  }
}

/**
 * Largest answer read from a control plane for a call (a certificate, a registration, an ACK),
 * as its longest watch event: what a larger or endless answer would cost (all of it held in
 * memory) is refused instead.
 */
export const MAX_ANSWER_BYTES = 16 * 1024 * 1024;

/**
 * Reads an answer's body as UTF-8 text, at most `limit` bytes: beyond that the body is destroyed
 * and this rejects naming `what` and the limit — or, with `truncate` (an error answer, whose
 * status matters more than its text), returns the first `limit` bytes.
 */
export async function readBounded(body: Dispatcher.ResponseData['body'], limit: number, what: string, truncate = false): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (size + chunk.length > limit) {
      body.destroy();
      if (!truncate) throw new Error(`${what} is larger than ${limit} bytes: refused`);
      chunks.push(chunk.subarray(0, limit - size));
      break;
    }
    size += chunk.length;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** True for the statuses that retrying with the same credentials cannot fix. */
export function isAuthFailure(e: unknown): boolean {
  return e instanceof HttpStatusError && (e.status === 401 || e.status === 403);
}

/** True for Go's answer to plain HTTP on a TLS port ({@link PLAIN_TO_TLS_ANSWER}): an http:// URL for a control plane that serves only https://. */
export function isPlainToTlsFailure(e: unknown): boolean {
  return e instanceof HttpStatusError && isPlainToTlsAnswer(e.status, e.serverMessage);
}

/** Reads an error body (`{ error: { code, message } }` or text) into an {@link HttpStatusError}. */
export function statusError(status: number, text: string): HttpStatusError {
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; issues?: unknown } };
    const err = body?.error;
    if (err !== undefined && err !== null && typeof err === 'object') {
      const issues = Array.isArray(err.issues) ? err.issues.map(String) : [];
      return new HttpStatusError(status, typeof err.code === 'string' ? err.code : '', typeof err.message === 'string' ? err.message : '', issues);
    }
  } catch {
    // not JSON: use the text
  }
  return new HttpStatusError(status, '', text.trim().slice(0, 300));
}

/** `control plane <url>: <why>`, with a socket error's code spelled out. */
export function describeFailure(url: string, e: unknown): string {
  return `control plane ${url}: ${reason(e)}${servesTlsHint(url, e)}`;
}

/**
 * For an `http://` URL whose server closed the connection without sending a byte: what a control
 * plane that serves TLS does to a plain HTTP request (`--tls auto` turned on, the URL left as it
 * was). undici's socket errors carry the bytes read.
 */
export function servesTlsHint(url: string, e: unknown): string {
  const err = e instanceof AggregateError && e.errors.length > 0 ? e.errors[0] : e;
  const silent = closedMidAnswer(err) && (err as { socket?: { bytesRead?: unknown } }).socket?.bytesRead === 0;
  const told = err instanceof HttpStatusError && isPlainToTlsAnswer(err.status, err.serverMessage);
  return (silent || told) && url.startsWith('http://') ? `; if it serves only TLS (meshlet control-plane --tls …), give https://${url.slice('http://'.length)}` : '';
}

/** Go net/http's answer to plain HTTP on a TLS port, which a `--tls` control plane gives to a GET, POST, PUT or HEAD (others are closed unanswered). */
export const PLAIN_TO_TLS_ANSWER = 'Client sent an HTTP request to an HTTPS server.';

/** Whether an error answer is {@link PLAIN_TO_TLS_ANSWER}. */
export function isPlainToTlsAnswer(status: number, text: string): boolean {
  return status === 400 && text.trim() === PLAIN_TO_TLS_ANSWER;
}

function reason(e: unknown): string {
  if (e instanceof HttpStatusError) return e.message;
  const err = e instanceof AggregateError && e.errors.length > 0 ? e.errors[0] : e;
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === 'ECONNREFUSED') return 'connection refused (ECONNREFUSED)';
  if (code === 'EOPENBREAKER') {
    const last = (err as { cause?: unknown }).cause;
    return `not called: circuit breaker open after repeated failures${last === undefined ? '' : ` (the last: ${reason(last)})`}`;
  }
  if (code === 'ENOTFOUND') return `host not found (ENOTFOUND)`;
  const tls = typeof code === 'string' ? tlsReason(code, err) : undefined;
  if (tls !== undefined) return tls;
  // undici's words for a peer that went away mid-response ("Response does not match the HTTP/1.1
  // protocol (Invalid EOF state)"): a control plane that was killed or restarted.
  if (closedMidAnswer(err)) return `the control plane closed the connection before its answer was complete (it stopped or restarted?)${typeof code === 'string' ? ` (${code})` : ''}`;
  const msg = err instanceof Error ? err.message : String(err);
  return typeof code === 'string' && !msg.includes(code) ? `${msg} (${code})` : msg;
}

/** What a TLS failure means, from its code (OpenSSL's verify codes, Node's host-name check, a server without TLS). */
function tlsReason(code: string, err: unknown): string | undefined {
  const fix = "give the CA that issued the control plane's certificate (createMesh's controlPlaneCa, the CLI's --control-plane-ca, or $MESHLET_CONTROL_PLANE_CA; for --tls auto, its <data-dir>/root-cert.pem)";
  if (UNKNOWN_CA_CODES.has(code)) return `TLS: the server's certificate is not signed by a trusted CA; ${fix} (${code})`;
  switch (code) {
    case 'CERT_HAS_EXPIRED':
      return `TLS: the server's certificate has expired (${code})`;
    case 'CERT_NOT_YET_VALID':
      return `TLS: the server's certificate is not valid yet (is a clock wrong?) (${code})`;
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `TLS: the server's certificate is not for this host: ${(err as Error).message.replace(/^Hostname\/IP does not match certificate's altnames: /, '')} (--tls-san names more) (${code})`;
    case 'EPROTO':
      if (!(err as Error).message.includes('wrong version number')) break;
      return `TLS: the server does not speak TLS (a plain http:// control plane?) (${code})`;
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
      return `TLS: the server does not speak TLS (a plain http:// control plane?) (${code})`;
  }
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || /CERT/.test(code)) return `TLS: ${(err as Error).message} (${code})`;
  return undefined;
}

/**
 * Whether `err` is undici's word for a peer that closed the connection mid-answer: a socket
 * closed or reset, or the parser's "Response does not match the HTTP/1.1 protocol (Invalid EOF
 * state)" (an HTTPParserError without a code, e.g. a killed server's chunked stream).
 */
export function closedMidAnswer(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === 'HPE_INVALID_EOF_STATE' || code === 'UND_ERR_SOCKET' || code === 'ECONNRESET') return true;
  return err instanceof Error && err.name === 'HTTPParserError' && err.message.includes('Invalid EOF state');
}

/** A {@link MeshletError} `MESHLET_ERR_CONTROL_PLANE` for a failed call or stream. */
export function controlPlaneError(url: string, e: unknown): MeshletError {
  return new MeshletError('MESHLET_ERR_CONTROL_PLANE', describeFailure(url, e), { cause: e });
}

/** A JSON call: method, path (with query), body. */
export interface CallRequest {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  readonly path: string;
  readonly body?: unknown;
}

/** Options of {@link ControlPlaneHttp}. */
export interface ControlPlaneHttpOptions {
  /** Bearer token, or where to read it for each request (a token file); none sends no `Authorization`. */
  readonly token: string | (() => string) | undefined;
  /** Connect + headers + body timeout of one short call. @defaultValue 5000 */
  readonly callTimeoutMs?: number;
  /** How long an open breaker waits before letting one trial call through (half-open). @defaultValue 2000 */
  readonly breakerResetMs?: number;
  /** PEM: the CA certificate(s) that verify an `https://` control plane. @defaultValue the system's CAs */
  readonly ca?: string | undefined;
}

type Action = (url: string, req: CallRequest) => Promise<unknown>;

/** opossum, loaded once by the first call that needs a breaker. */
let opossum: Promise<{ default: typeof CircuitBreaker }> | undefined;

/** HTTP to the control plane: the agent, headers, breakers. */
export class ControlPlaneHttp {
  /** The dedicated agent (also used by the watch stream). */
  readonly agent: Agent;
  readonly #token: string | (() => string) | undefined;
  readonly #timeoutMs: number;
  readonly #resetMs: number;
  readonly #breakers = new Map<string, CircuitBreaker<Parameters<Action>, unknown>>();
  /** The last failure of a call to each URL (named when its breaker is open). */
  readonly #lastFailure = new Map<string, unknown>();
  readonly #ca: string | undefined;
  /** The pushed roots trusted besides `ca`. */
  #roots = '';
  #connector: buildConnector.connector;

  constructor(o: ControlPlaneHttpOptions) {
    this.#token = o.token;
    this.#timeoutMs = o.callTimeoutMs ?? 5000;
    this.#resetMs = o.breakerResetMs ?? 2000;
    this.#ca = o.ca;
    this.#connector = buildConnector({ timeout: this.#timeoutMs, ...(o.ca === undefined ? {} : { ca: o.ca }) });
    this.agent = new Agent({ connect: (opts, cb) => this.#connector(opts, cb), keepAliveTimeout: 4000 });
  }

  /**
   * With a `ca`, new connections also trust the roots of a trust bundle the control plane pushed
   * (over a connection `ca` verified), as its serving certificate comes from the new root after a
   * rotation (`meshlet ca rotate`): the mesh keeps reaching it. Returns the bundle.
   */
  trust(bundle: TrustBundleEvent): TrustBundleEvent {
    const roots = bundle.roots.join('');
    if (this.#ca !== undefined && roots !== this.#roots) {
      this.#roots = roots;
      this.#connector = buildConnector({ timeout: this.#timeoutMs, ca: [this.#ca, ...bundle.roots] });
    }
    return bundle;
  }

  /** Request headers: auth and accept. */
  headers(extra: Record<string, string> = {}): Record<string, string> {
    const h: Record<string, string> = { accept: 'application/json', ...extra };
    const t = typeof this.#token === 'function' ? this.#token() : this.#token;
    if (t !== undefined && t !== '') h.authorization = `Bearer ${t}`;
    return h;
  }

  /**
   * One JSON call through the URL's breaker. Resolves with the parsed body of a 2xx answer;
   * rejects with an {@link HttpStatusError} (4xx ones do not count against the breaker), a
   * socket error, or opossum's `EOPENBREAKER` while the breaker is open.
   */
  async call<T>(url: string, req: CallRequest): Promise<T> {
    const b = this.#breakers.get(url) ?? (await this.#breaker(url));
    try {
      return (await b.fire(url, req)) as T;
    } catch (e) {
      // An open breaker says why it opened: the last failure that counted against it (a 4xx does not).
      if ((e as { code?: unknown } | undefined)?.code === 'EOPENBREAKER') {
        if (e instanceof Error && e.cause === undefined) e.cause = this.#lastFailure.get(url);
      } else if (!(e instanceof HttpStatusError && e.status < 500)) this.#lastFailure.set(url, e);
      throw e;
    }
  }

  async #breaker(url: string): Promise<CircuitBreaker<Parameters<Action>, unknown>> {
    opossum ??= import('opossum');
    const { default: Breaker } = await opossum;
    const existing = this.#breakers.get(url); // another call may have made it while loading
    if (existing !== undefined) return existing;
    const b: CircuitBreaker<Parameters<Action>, unknown> = new Breaker<Parameters<Action>, unknown>((u: string, r: CallRequest) => this.#send(u, r), {
      name: `meshlet-control-plane ${url}`,
      timeout: false, // undici's own timeouts bound each call
      resetTimeout: this.#resetMs,
      errorThresholdPercentage: 50,
      volumeThreshold: 3,
      // A 4xx is an answer, not an outage (404 on renew means "register again").
      errorFilter: (e: unknown) => e instanceof HttpStatusError && e.status < 500,
    });
    this.#breakers.set(url, b);
    return b;
  }

  async #send(url: string, req: CallRequest): Promise<unknown> {
    const headers = this.headers(req.body === undefined ? {} : { 'content-type': 'application/json' });
    const res = await this.agent.request({
      origin: url,
      path: req.path,
      method: req.method,
      headers,
      body: req.body === undefined ? undefined : JSON.stringify(req.body),
      headersTimeout: this.#timeoutMs,
      bodyTimeout: this.#timeoutMs,
    } as Dispatcher.RequestOptions);
    // An error answer keeps its status however long its text (a proxy's login page): only its start is read.
    const text = await readBounded(res.body, MAX_ANSWER_BYTES, `the answer to ${req.method} ${req.path.split('?')[0]}`, res.statusCode < 200 || res.statusCode >= 300);
    if (res.statusCode < 200 || res.statusCode >= 300) throw statusError(res.statusCode, text);
    return text === '' ? undefined : JSON.parse(text);
  }

  /** Shuts the breakers down and closes the agent (the watch stream must be stopped first). */
  async close(): Promise<void> {
    for (const b of this.#breakers.values()) b.shutdown();
    this.#breakers.clear();
    await this.agent.destroy().catch(() => undefined);
  }
}
