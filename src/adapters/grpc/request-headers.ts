/**
 * An attempt's HTTP/2 request headers, as grpc-js's transport writes them
 * (`Http2Transport.createCall`, with its compression filter's `grpc-accept-encoding` /
 * `accept-encoding`), and the stream opened with them.
 *
 * Where node:http2 takes a flat `[name, value, …]` list (`request()`'s raw headers, Node 24), the
 * attempt's metadata is written straight into one, in the order the object form reaches the wire
 * (`:authority`, `:method`, `:path`, `:scheme`; the caller's metadata, the mesh's headers,
 * `grpc-timeout`, grpc-js's own): Node then neither copies an object of them into a dictionary nor
 * lists its keys again, and the mesh makes no object for them (in one process, ~1 µs less per call
 * in `request()` alone, on the path of every call before its first byte goes out). An older Node
 * refuses the list (`ERR_INVALID_ARG_TYPE`, before it makes a stream): the first attempt finds
 * that out and every attempt then passes the object, as before. So does metadata whose names
 * meet (the same name from the caller and the mesh, a caller's name the object puts first): the
 * object form's rules decide those.
 *
 * An attempt's own values of 16 characters or more (`x-request-id`, a trace's ids: new on every
 * call) go out never indexed (`http2.sensitiveHeaders`, nghttp2's NO_INDEX): an HPACK
 * representation, the same header on the wire. Indexed, each call's id took a new entry in the
 * connection's 4 KiB dynamic table and evicted the oldest, so every ~40 calls the
 * metadata-exchange headers (~600 bytes) fell out of it and went out literally again, for the
 * server to decode again.
 *
 * @module
 */
import * as http2 from 'node:http2';
import type { ClientHttp2Session, ClientHttp2Stream, OutgoingHttpHeaders } from 'node:http2';
import type { Metadata } from '@grpc/grpc-js';
import type { Exchange } from '../../core/exchange.ts';
import { isWireMetadata, storeOf, type WireHeaders } from './wire-metadata.ts';

/** grpc-js's `accept-encoding` headers (its compression filter's): the answer may be compressed, gzip or deflate. */
const ACCEPT = 'identity,deflate,gzip';

/** Names written after the metadata's: one of them among the metadata's sends the object form. */
const LATER = new Set(['grpc-timeout', 'x-envoy-expected-rq-timeout-ms', 'grpc-accept-encoding', 'accept-encoding', 'user-agent', 'content-type', 'te']);

/** An object puts names that read as array indexes first: such a name sends the object form. */
const INDEX = /^(?:0|[1-9][0-9]*)$/;

/** node:http2's mark of the headers to send never indexed. */
const NEVER_INDEX: typeof http2.sensitiveHeaders = http2.sensitiveHeaders;

/** An own value this long is an id, new on every call (a short one, a count, repeats): not worth a place in HPACK's table. */
const ID_LENGTH = 16;

/** The names of the last list of never-indexed headers, shared while the next attempt has the same (frozen: Node only reads it). */
let lastNames: readonly string[] = Object.freeze([]);

/** The names of `own`'s values that go out never indexed, or undefined for none. */
export function neverIndexedOf(own: WireHeaders | undefined): readonly string[] | undefined {
  if (own === undefined) return undefined;
  let names: string[] | undefined;
  let same = true;
  for (const k in own) {
    const v = own[k] as string | string[];
    if (typeof v === 'string' ? v.length < ID_LENGTH : !v.some((one) => one.length >= ID_LENGTH)) continue;
    if (names === undefined) names = [];
    if (lastNames[names.length] !== k) same = false;
    names.push(k);
  }
  if (names === undefined) return undefined;
  if (same && names.length === lastNames.length) return lastNames;
  lastNames = Object.freeze(names);
  return lastNames;
}

/** Whether this Node takes raw headers in `request()` (undefined: not tried yet). */
let raw: boolean | undefined;

/** Opens the attempt's stream on `session` with its request headers (throws as `session.request()` does). */
export function openStream(session: ClientHttp2Session, metadata: Metadata, ex: Exchange, userAgent: string, scheme: string): ClientHttp2Stream {
  if (raw !== false) {
    const list = rawHeadersOf(metadata, ex, userAgent, scheme);
    if (list !== undefined) {
      if (raw === true) return session.request(list);
      try {
        const stream = session.request(list);
        raw = true;
        return stream;
      } catch (err) {
        if ((err as { code?: unknown }).code !== 'ERR_INVALID_ARG_TYPE') throw err;
        raw = false;
      }
    }
  }
  return session.request(objectHeadersOf(metadata, ex, userAgent));
}

/** The user-agent the attempt sends: the caller's, else grpc-js's own. */
function userAgentOf(ex: Exchange, userAgent: string): string {
  const ua = ex.headers['user-agent'];
  return typeof ua === 'string' ? ua : userAgent;
}

/** The headers as an object (grpc-js's own form; what an older Node takes). */
export function objectHeadersOf(metadata: Metadata, ex: Exchange, userAgent: string): OutgoingHttpHeaders {
  const h = metadata.toHttp2Headers() as OutgoingHttpHeaders;
  h['grpc-accept-encoding'] = ACCEPT;
  h['accept-encoding'] = 'identity';
  h[':authority'] = ex.authority;
  h['user-agent'] = userAgentOf(ex, userAgent);
  h['content-type'] = 'application/grpc';
  h[':method'] = 'POST';
  h[':path'] = ex.path;
  h.te = 'trailers';
  if (isWireMetadata(metadata)) {
    const never = neverIndexedOf(metadata.own);
    if (never !== undefined) (h as Record<symbol, unknown>)[NEVER_INDEX] = never;
  }
  return h;
}

/**
 * The same headers as a flat list, in the object form's wire order; undefined when they are not
 * an attempt's metadata or when names meet (the object form then decides).
 */
export function rawHeadersOf(metadata: Metadata, ex: Exchange, userAgent: string, scheme: string): string[] | undefined {
  if (!isWireMetadata(metadata)) return undefined;
  const store = storeOf(metadata);
  if (store === undefined) return undefined;
  const { wire, own, timeout } = metadata;
  const list: string[] = [':authority', ex.authority, ':method', 'POST', ':path', ex.path, ':scheme', scheme];
  for (const [k, values] of store) {
    if (k.charCodeAt(0) === 58 /* : */) continue;
    if (LATER.has(k) || INDEX.test(k) || (wire !== undefined && k in wire) || (own !== undefined && k in own)) return undefined;
    for (const v of values) list.push(k, typeof v === 'string' ? v : v.toString('base64'));
  }
  if (wire !== undefined && !pushWire(list, wire, own)) return undefined;
  if (own !== undefined && !pushWire(list, own, undefined)) return undefined;
  if (typeof timeout !== 'string') list.push('grpc-timeout', timeout.grpc, 'x-envoy-expected-rq-timeout-ms', timeout.expected);
  else if (timeout !== '') list.push('grpc-timeout', timeout);
  list.push('grpc-accept-encoding', ACCEPT, 'accept-encoding', 'identity', 'user-agent', userAgentOf(ex, userAgent), 'content-type', 'application/grpc', 'te', 'trailers');
  const never = neverIndexedOf(own);
  if (never !== undefined) (list as unknown as Record<symbol, unknown>)[NEVER_INDEX] = never;
  return list;
}

/** Adds checked headers to the list; false when a name meets one written after it, or another set's. */
function pushWire(list: string[], w: WireHeaders, other: WireHeaders | undefined): boolean {
  for (const k in w) {
    if (LATER.has(k) || INDEX.test(k) || (other !== undefined && k in other)) return false;
    const v = w[k] as string | string[];
    if (typeof v === 'string') list.push(k, v);
    else for (const one of v) list.push(k, one);
  }
  return true;
}
