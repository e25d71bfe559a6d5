/**
 * Request headers between Node's request objects and the admission phases.
 *
 * Node's `req.headers` keeps only the first of some repeated headers (`Authorization`, `Host`,
 * …) and joins others, so a second token would never be seen. The phases therefore get a view
 * built from `rawHeaders` (repeated headers as lists, as Envoy sees them); when a phase changed it
 * (a consumed token removed, claims copied in), the app's `req.headers` and `rawHeaders` are
 * rebuilt from it with Node's own conventions.
 *
 * @module
 */
import type { IncomingHttpHeaders, IncomingMessage, } from 'node:http';
import type { Headers } from '../../core/handler.ts';
import { hostConflict } from '../../inbound/guard.ts';
import type { InboundRequest } from '../../inbound/pipeline.ts';
import { finishRequestHopByHop } from './hop-by-hop.ts';
import { rawHeadersChanged } from './raw-count.ts';

/** The phases' view of a request's headers: lower-cased names, repeated headers as lists. */
export function headersFromRaw(raw: readonly string[]): Headers {
  const h: Headers = Object.create(null);
  let names = 0;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = (raw[i] as string).toLowerCase();
    const v = raw[i + 1] as string;
    const prev = h[k];
    if (prev === undefined) {
      h[k] = v;
      names++;
    } else if (typeof prev === 'string') h[k] = [prev, v];
    else prev.push(v);
  }
  lastNames = names;
  return h;
}

let lastNames = 0;

/**
 * How many names the last {@link headersFromRaw} call put in its view (`Object.keys(view).length`
 * without asking the object: a view has a null prototype, so V8 keeps it as a dictionary, and
 * listing its keys costs about as much as making it). Read it right after the call.
 */
export function namesOfLastView(): number {
  return lastNames;
}

/** Headers Node keeps only the first of (`IncomingMessage` `matchKnownFields`). */
const FIRST_ONLY = new Set([
  'age',
  'authorization',
  'content-length',
  'content-type',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);

/** A header's value in Node's `req.headers` shape (`set-cookie` always a list, first-only headers their first, others joined). */
function nodeValue(k: string, v: string | string[]): string | string[] | undefined {
  if (typeof v === 'string') return k === 'set-cookie' ? [v] : v;
  if (k === 'set-cookie') return [...v];
  if (FIRST_ONLY.has(k)) return v[0];
  return v.join(k === 'cookie' ? '; ' : ', ');
}

/** A phase's header view in Node's `req.headers` shape. */
export function toNodeHeaders(h: Headers): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const k of Object.keys(h)) {
    const v = h[k];
    if (v !== undefined) out[k] = nodeValue(k, v);
  }
  return out;
}

/**
 * Sets one header of what the app reads (`req.headers` and `req.rawHeaders`) to `value`, or
 * removes it (null), leaving the others as they are: the name is lower-case; its lines in
 * `rawHeaders` go, whatever their case, and the new one is added last.
 */
export function setHeaderInPlace(req: IncomingMessage, name: string, value: string | null): void {
  const raw = req.rawHeaders;
  let present = false;
  for (let i = 0; i < raw.length; i += 2) {
    if ((raw[i] as string).length === name.length && (raw[i] as string).toLowerCase() === name) {
      present = true;
      break;
    }
  }
  if (present) {
    const kept: string[] = [];
    for (let i = 0; i < raw.length; i += 2) if ((raw[i] as string).toLowerCase() !== name) kept.push(raw[i] as string, raw[i + 1] as string);
    setRawHeaders(req, kept);
  }
  if (value === null) delete req.headers[name];
  else {
    req.headers[name] = value;
    req.rawHeaders.push(name, value);
    rawHeadersChanged(req);
  }
}

/**
 * Rebuilds what the app reads (`req.headers`, `req.rawHeaders`) from the phases' view, from one
 * list of its names (the view is a null-prototype dictionary: listing its keys costs about what
 * making it did, so it is listed once for both).
 */
export function replaceHeaders(req: IncomingMessage, h: Headers): void {
  const out: IncomingHttpHeaders = {};
  const names = Object.keys(h);
  let lines = 0;
  for (const k of names) {
    const v = h[k];
    if (v === undefined) continue;
    out[k] = nodeValue(k, v);
    lines += typeof v === 'string' ? 1 : v.length;
  }
  // rawHeaders made at its size (push() onto [] gives a first array room for 17 elements).
  const raw: string[] = new Array(2 * lines);
  let i = 0;
  for (const k of names) {
    const v = h[k];
    if (v === undefined) continue;
    if (typeof v === 'string') {
      raw[i++] = k;
      raw[i++] = v;
    } else
      for (const x of v) {
        raw[i++] = k;
        raw[i++] = x;
      }
  }
  setRawHeaders(req, raw);
  if (Object.hasOwn(req, 'rawHeaders')) (req as { headers: IncomingHttpHeaders }).headers = out;
  else {
    // HTTP/2's compatibility request (a server of the app's own from node:http2): changed in place.
    const h = req.headers as Record<string, unknown>;
    for (const k of Object.keys(h)) delete h[k];
    Object.assign(h, out);
  }
}

/**
 * Gives the request new `rawHeaders`: node:http's IncomingMessage has them as its own property;
 * HTTP/2's compatibility request (`http2.createServer(mesh.handler(…))`, Fastify's `http2`) only
 * through getters, so the array it returns is changed in place.
 */
export function setRawHeaders(req: IncomingMessage, raw: string[]): void {
  if (Object.hasOwn(req, 'rawHeaders')) {
    (req as { rawHeaders: string[] }).rawHeaders = raw;
    rawHeadersChanged(req);
    return;
  }
  const own = req.rawHeaders;
  own.length = 0;
  for (const x of raw) own.push(x);
}

/**
 * HTTP/2's compatibility request (a server of the app's own) keeps its `:path` in `rawHeaders`
 * too: once the mesh rewrote `req.url` (the normalized path, a consumed `access_token` taken
 * out), that line says the same, so the token is nowhere the app can read it. Nothing for
 * HTTP/1.1, whose target is no header.
 */
export function syncRawPath(req: IncomingMessage): void {
  if (req.httpVersionMajor !== 2 || req.url === undefined) return;
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i] === ':path') raw[i + 1] = req.url;
}

/**
 * After a phase took a parameter out of the query (a consumed `access_token`), drops it from a
 * query object a framework parsed before the mesh ran (Express 4's `req.query`, Fastify's
 * `request.query`): the names in `before`'s query that `after`'s no longer has.
 */
export function dropRemovedQueryKeys(query: unknown, before: string, after: string): void {
  if (query === null || typeof query !== 'object') return;
  const names = (p: string) => {
    const q = p.indexOf('?');
    return new Set(q === -1 ? [] : new URLSearchParams(p.slice(q + 1)).keys());
  };
  const kept = names(after);
  // Only what the phase removed: a framework's own keys (qs's `a[b]` → `a`) are left alone.
  for (const k of names(before)) if (!kept.has(k) && Object.hasOwn(query, k)) delete (query as Record<string, unknown>)[k];
}

/**
 * An HTTP/2 request's Host, as Envoy's HTTP/2 codec takes it: a `host` field sent with
 * `:authority` is discarded, `:authority` is the request's host (source/common/http/http2/codec_impl.cc,
 * `ServerConnectionImpl::onHeader`, runtime guard `http2_discard_host_header`; RFC 9113 §8.3.1).
 * So `hosts` rules and the app read the same authority: a `host` that differs only in letter case
 * is replaced by `:authority` in the view (true: the app's headers are rebuilt from it). One that
 * names another host is left for the guard to refuse (400, {@link hostConflict}): a router that ran
 * before the mesh (Fastify's, on `host`) may already have routed on it. Nothing for HTTP/1.1, whose
 * header names cannot begin with `:`.
 */
export function authorityAsHost(headers: Headers): boolean {
  const a = headers[':authority'];
  const host = headers.host;
  if (a === undefined || host === undefined) return false;
  const v = typeof a === 'string' ? a : (a[0] as string);
  if (host === v || hostConflict(headers) !== undefined) return false;
  headers.host = v;
  return true;
}

/**
 * An absolute-form request target (`GET http://host/path HTTP/1.1`), split as Envoy's HTTP/1
 * codec splits it: the URL's authority becomes `:authority` (the Host header the app sees) and
 * its path the request path. Undefined for any other form (origin-form `/path`, `*`).
 */
export function absoluteForm(target: string): { readonly authority: string; readonly path: string } | undefined {
  // Origin-form (`/path`), what nearly every request carries: a scheme starts with a letter.
  if (target.charCodeAt(0) === 47 /* / */) return undefined;
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)(.*)$/s.exec(target);
  if (m === null) return undefined;
  const authority = m[1] as string;
  const rest = m[2] as string;
  return { authority: authority.slice(authority.lastIndexOf('@') + 1), path: rest.startsWith('/') ? rest : `/${rest}` };
}

/**
 * Gives an admitted request the headers the phases left: all of them again when the phases
 * changed any (or `rebuild`: the Host taken from an absolute-form target, a subscriber's
 * additions), else only those the mesh set — a generated `x-request-id`, the
 * `x-forwarded-client-cert` — in `headers` and `rawHeaders` alike (readers of the header list,
 * such as Hono's node adapter, see them). `hopByHopLeft`: `req.headers` may still have the
 * hop-by-hop headers its `rawHeaders` lost (hop-by-hop.ts), taken off here unless rebuilt.
 */
export function applyAdmittedHeaders(req: IncomingMessage, r: InboundRequest, rebuild: boolean, changed?: readonly string[], hopByHopLeft = false): void {
  if (r.headersChanged || rebuild) {
    replaceHeaders(req, r.headers);
    return;
  }
  if (hopByHopLeft) finishRequestHopByHop(req);
  // Values a subscriber of inbound:start set (a tracer's traceparent), one by one.
  if (changed !== undefined) {
    for (const name of changed) {
      const v = r.headers[name];
      setHeaderInPlace(req, name, v === undefined ? null : typeof v === 'string' ? v : (v[0] ?? null));
    }
  }
  if (r.generatedRequestId !== undefined) setHeaderInPlace(req, 'x-request-id', r.generatedRequestId);
  if (r.forwardedClientCert !== undefined) setHeaderInPlace(req, 'x-forwarded-client-cert', r.forwardedClientCert);
}
