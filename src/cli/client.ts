/**
 * How CLI commands talk to `meshlet control-plane`: the `--control-plane` and `--token`
 * flags (with their environment defaults), requests through undici, and the server's
 * `ErrorBody` turned into a one-line refusal (exit code 1, no stack trace).
 *
 * @module
 */
import { Agent, errors, request } from 'undici';
import { CONTROL_PLANE_CA_ENV, controlPlaneCaFor } from '../control-plane/ca-option.ts';
import { parseDuration } from '../config/duration.ts';
import { closedMidAnswer, describeFailure, isPlainToTlsAnswer, PLAIN_TO_TLS_ANSWER, servesTlsHint, statusError } from '../control-plane/http.ts';
import { DEFAULT_PORT, TOKEN_ENV } from '../control-plane/protocol.ts';
import { MeshletError } from '../core/errors.ts';
import { UsageError } from './args.ts';
import { type AnswerShape, shapeOf } from './answer-shapes.ts';
import { printable } from './escape.ts';

/** The environment variable naming the control plane(s). */
export const CONTROL_PLANE_ENV = 'MESHLET_CONTROL_PLANE';

/** parseArgs options shared by every client command. */
export const CLIENT_OPTIONS = {
  'control-plane': { type: 'string' },
  token: { type: 'string' },
  timeout: { type: 'string' },
  'control-plane-ca': { type: 'string' },
} as const;

/** How long a control plane has to answer (its response headers, then each part of the body), by default. */
export const DEFAULT_TIMEOUT_MS = 15_000;

/** Help lines for {@link CLIENT_OPTIONS}. */
export const CLIENT_HELP = `      --control-plane <url[,url]>  control plane(s) (default: $${CONTROL_PLANE_ENV} or http://127.0.0.1:${DEFAULT_PORT})
      --token <token>              bearer token (default: $${TOKEN_ENV})
      --control-plane-ca <file>    CA certificate(s) that verify an https:// control plane; for
                                   --tls auto, its <data-dir>/root-cert.pem (default:
                                   $${CONTROL_PLANE_CA_ENV}, else the system's CAs)
      --timeout <duration>         how long a control plane has to answer, e.g. 5s (default 15s)`;

/** Where and as whom a command talks to the control plane. */
export interface ClientTarget {
  readonly urls: readonly string[];
  readonly token: string | undefined;
  /** How long each control plane has to answer. */
  readonly timeoutMs: number;
  /** Where the token came from (`--token`, `$MESHLET_TOKEN`), for a refusal to say; undefined without one. */
  readonly tokenFrom?: string | undefined;
  /** PEM: the CA that verifies `https://` control planes; undefined for the system's CAs. */
  readonly ca?: string | undefined;
}

/** A duration flag's value in ms (more than 0), undefined when not given; a {@link UsageError} naming the flag otherwise. */
export function durationOption(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (typeof ms !== 'number') throw new UsageError(`${flag}: ${ms.error}`);
  if (ms <= 0) throw new UsageError(`${flag}: must be more than 0, got "${text}"`);
  return ms;
}

/** Reads `--control-plane` and `--token`, falling back to the environment. */
export function clientTarget(values: { 'control-plane'?: string; token?: string; timeout?: string; 'control-plane-ca'?: string }): ClientTarget {
  const text = values['control-plane'] ?? process.env[CONTROL_PLANE_ENV] ?? `http://127.0.0.1:${DEFAULT_PORT}`;
  const urls = text
    .split(',')
    .map((u) => u.trim().replace(/\/+$/, ''))
    .filter((u) => u !== '');
  if (urls.length === 0) throw new UsageError('--control-plane: give at least one URL');
  for (const u of urls) {
    if (!/^https?:\/\/[^/]+$/.test(u)) throw new UsageError(`--control-plane: expected http://host:port, got "${u}"`);
  }
  const token = values.token ?? process.env[TOKEN_ENV];
  const timeoutMs = durationOption('--timeout', values.timeout) ?? DEFAULT_TIMEOUT_MS;
  const tokenFrom = token === undefined || token === '' ? undefined : values.token !== undefined ? '--token' : `$${TOKEN_ENV}`;
  let ca: string | undefined;
  try {
    ca = controlPlaneCaFor(urls, values['control-plane-ca'], '--control-plane-ca');
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return { urls, token: token === '' ? undefined : token, timeoutMs, tokenFrom, ca };
}

const unreachable = new WeakSet<object>();

/** One agent per CA (a command uses one), verifying `https://` control planes with it. */
const agents = new Map<string, Agent>();
function agentFor(ca: string): Agent {
  let a = agents.get(ca);
  if (a === undefined) {
    a = new Agent({ connect: { ca } });
    agents.set(ca, a);
  }
  return a;
}

/** Whether an error from {@link callOne} means the control plane could not be reached (not that it refused). */
export function isUnreachable(err: unknown): boolean {
  return typeof err === 'object' && err !== null && unreachable.has(err);
}

/**
 * A control plane that did not answer: not reached at all, or reached (the connection was
 * accepted) but silent past the timeout — a hung or overloaded server, or something else
 * listening on that port.
 */
function unreachableError(url: string, err: unknown, timeoutMs: number): MeshletError {
  const silent = err instanceof errors.HeadersTimeoutError || err instanceof errors.BodyTimeoutError;
  const code = (err as { code?: unknown }).code;
  // undici's words for a peer gone mid-answer: "Response does not match the HTTP/1.1 protocol (Invalid EOF state)".
  const message = silent
    ? `the control plane at ${url} accepted the connection but did not answer within ${timeoutMs / 1000} s (--timeout): is a meshlet control plane listening there, and is it overloaded?`
    : closedMidAnswer(err)
      ? `the control plane at ${url} closed the connection before it answered (it stopped, restarted or was killed?)${typeof code === 'string' ? ` (${code})` : ''}${servesTlsHint(url, err)}`
      : `cannot reach the control plane at ${url}: ${describeFailure(url, err).slice(`control plane ${url}: `.length)}`;
  const e = new MeshletError('MESHLET_ERR_CONTROL_PLANE', message, { cause: err });
  unreachable.add(e);
  return e;
}

/** The server's refusal as the CLI prints it (what the server says is escaped: it may quote workload input). */
function refusal(url: string, status: number, body: string, tokenFrom: string | undefined): MeshletError {
  const e = statusError(status, body);
  const said = printable(e.serverMessage);
  let message: string;
  if (e.serverCode === '') message = `${url} answered ${status}${said === '' ? '' : `: ${said}`}`;
  else message = e.issues.length > 0 ? `${said}:\n  ${e.issues.map(printable).join('\n  ')}` : said;
  // A refused token: which control plane, which token, and how to get one it accepts.
  if (status === 401) {
    const which = tokenFrom === undefined ? `${url} needs a token: give it with --token or $${TOKEN_ENV}` : `${url} refused the token from ${tokenFrom}`;
    message += ` (${which}; mint an admin token with 'meshlet token --admin --data-dir <the control plane's --data-dir>')`;
  }
  return new MeshletError('MESHLET_ERR_CONTROL_PLANE', message);
}

/** Sends one request to one control plane; resolves the parsed JSON answer (of the `expect`ed shape, when given), or throws its refusal. */
export async function callOne(
  url: string,
  token: string | undefined,
  method: string,
  path: string,
  body?: string,
  contentType = 'application/json',
  timeoutMs = DEFAULT_TIMEOUT_MS,
  tokenFrom: string | undefined = token === undefined ? undefined : 'the command',
  ca?: string,
  expect?: AnswerShape,
): Promise<unknown> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = contentType;
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(`${url}${path}`, { method: method as 'GET', headers, body, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, ...(ca === undefined ? {} : { dispatcher: agentFor(ca) }) });
  } catch (err) {
    throw unreachableError(url, err, timeoutMs);
  }
  let text: string;
  try {
    text = await res.body.text();
  } catch (err) {
    throw unreachableError(url, err, timeoutMs);
  }
  if (isPlainToTlsAnswer(res.statusCode, text)) {
    // A TLS-only control plane (--tls) told a plain HTTP request so: the URL is wrong, not the request; the next URL is tried.
    const e = new MeshletError('MESHLET_ERR_CONTROL_PLANE', `the control plane at ${url} answered ${res.statusCode}: ${PLAIN_TO_TLS_ANSWER}${servesTlsHint(url, statusError(res.statusCode, text))}`);
    unreachable.add(e);
    throw e;
  }
  if (res.statusCode >= 400) throw refusal(url, res.statusCode, text, tokenFrom);
  if (text === '') return undefined;
  let answer: unknown;
  try {
    answer = JSON.parse(text);
  } catch {
    // Something else answers at the URL (a web server, a proxy's page, a mesh's admin port): said so, and the next URL is tried.
    const type = printable(String(res.headers['content-type'] ?? 'no content-type'));
    const e = new MeshletError('MESHLET_ERR_CONTROL_PLANE', `${url}${path} answered ${res.statusCode} with something that is not JSON (${type}): is a meshlet control plane listening at ${url}?`);
    unreachable.add(e);
    throw e;
  }
  if (expect !== undefined && !expect.is(answer)) {
    // JSON, but not meshlet's answer (another server's, a proxy's JSON error): said so, and the next URL is tried.
    const e = new MeshletError('MESHLET_ERR_CONTROL_PLANE', `${url}${path} answered ${res.statusCode} with JSON that is not ${expect.what}, but ${printable(shapeOf(answer))}: is a meshlet control plane listening at ${url}?`);
    unreachable.add(e);
    throw e;
  }
  return answer;
}

/**
 * Sends a request to the first control plane that answers: an unreachable one is skipped,
 * a refusal is final (replicas share their state, so another would refuse too).
 */
export async function call(target: ClientTarget, method: string, path: string, body?: string, contentType?: string, expect?: AnswerShape): Promise<unknown> {
  let last: unknown;
  for (const url of target.urls) {
    try {
      return await callOne(url, target.token, method, path, body, contentType, target.timeoutMs, target.tokenFrom, target.ca, expect);
    } catch (err) {
      last = err;
      if (!isUnreachable(err)) throw err;
    }
  }
  throw last;
}
