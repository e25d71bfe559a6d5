/**
 * gRPC metadata as the mesh sees it, and back: metadata becomes lower-cased request headers
 * (`-bin` values base64-encoded, as they travel on the wire and as Envoy's header matchers
 * compare them), and the headers a call is sent with become metadata again. The reserved
 * names gRPC itself writes on the wire are never copied into metadata.
 *
 * @module
 */
import type { Metadata } from '@grpc/grpc-js';
import { GRPC_STATUS } from '../../core/grpc-status.ts';
import type { Headers } from '../../core/handler.ts';
import { newHeaders } from '../../core/headers.ts';
import type { GrpcJs } from './grpc-js.ts';
import { type MetadataStore, storeOf, type WireHeaders, wireMetadataOf } from './wire-metadata.ts';

export { expectedTimeout, grpcTimeout, setGrpcTimeout } from './timeout-headers.ts';

/** The header a gRPC call's mesh-made flags travel in (initial metadata, or trailing metadata of a mesh-made status). */
export const FLAGS_KEY = 'x-meshlet-response-flags';

/**
 * Headers gRPC sets itself on the wire: never taken from (or given to) metadata.
 * `grpc-status-details-bin` (the rich error model's `google.rpc.Status`) is not one of them: the
 * server's app sets it in the trailing metadata and the caller reads it there, as Envoy passes it.
 */
const RESERVED = new Set(['content-type', 'te', 'host', 'user-agent', 'grpc-timeout', 'grpc-encoding', 'grpc-accept-encoding', 'grpc-status', 'grpc-message', 'x-envoy-expected-rq-timeout-ms']);

/**
 * The names grpc-js takes out of an answer before its caller sees the metadata: the status
 * (`grpc-status`, `grpc-message`) and the compression filter's (`grpc-encoding`,
 * `grpc-accept-encoding`). Everything else the server sent — its `content-type`, `date` — reaches
 * the caller's `metadata` / `status` events, through grpc-js's own channel as behind a sidecar
 * (Envoy passes them on).
 */
const ANSWER_RESERVED = new Set(['grpc-encoding', 'grpc-accept-encoding', 'grpc-status', 'grpc-message']);

/** The request headers of a call: its metadata (lower-cased names; `-bin` values base64) plus gRPC's content-type and te. */
export function headersOf(metadata: Metadata): Headers {
  const h = newHeaders();
  intoHeaders(metadata, h);
  h['content-type'] = 'application/grpc';
  h.te = 'trailers';
  return h;
}

/** No headers (a call whose caller gave no metadata). */
const NO_HEADERS: Headers = Object.freeze(Object.create(null)) as Headers;

/**
 * The request headers of a call made through the mesh ({@link headersOf}), and `before`: the
 * ones its metadata became, without gRPC's own — what an attempt's metadata compares the request
 * headers with ({@link requestMetadataOf}). A call without metadata shares one empty `before`.
 */
export function callHeadersOf(metadata: Metadata): { headers: Headers; before: Headers } {
  const h = newHeaders();
  // No metadata (most calls): no second dictionary to fill.
  const before = storeOf(metadata)?.size === 0 ? NO_HEADERS : newHeaders();
  const any = before !== NO_HEADERS && intoHeaders(metadata, h, before);
  h['content-type'] = 'application/grpc';
  h.te = 'trailers';
  return { headers: h, before: any ? before : NO_HEADERS };
}

/**
 * The metadata of a call's attempt: the caller's own metadata (`caller`, already checked by
 * grpc-js when it was set) copied, with the request headers the pipeline added, changed or
 * removed since the call's headers were made from it (`before`: those headers as they were,
 * {@link callHeadersOf}) — rather than all of the headers made into metadata again. The headers
 * the pipeline added or changed (the peer-metadata exchange's on every call to the mesh) are
 * checked once while their value repeats, and ride beside grpc-js's store ({@link WireMetadata}),
 * written on the wire after the caller's; `-bin` ones go into the store. A name whose value is
 * new on every attempt (`x-request-id`) is checked per attempt and kept apart (`own`), so the
 * rest stays shared: −2.6 µs and −544 B per call (bench/grpc/inproc.ts --fake).
 */
export function requestMetadataOf(g: GrpcJs, headers: Headers, caller: Metadata, before: Headers): Metadata {
  const beside = wireMetadataOf(g, caller);
  const md: Metadata = beside ?? caller.clone();
  // `before` has the caller's metadata names (see answerMetadataOf on remove()).
  for (const k in before) if (RESERVED.has(k)) md.remove(k);
  // Most attempts add what the one before added (the peer-metadata exchange's, the same values):
  // while they do, they share its checked headers.
  const last = beside === undefined ? undefined : lastWire;
  let shared = last !== undefined;
  let matched = 0;
  let wire: WireHeaders | undefined;
  let own: WireHeaders | undefined;
  let newlyVolatile = false;
  for (const k in headers) {
    const v = headers[k];
    const was = before[k];
    if (v === undefined || v === was || k.charCodeAt(0) === 58 /* : */ || RESERVED.has(k)) continue;
    // A name the caller's metadata had: the pipeline's value replaces it.
    if (was !== undefined) md.remove(k);
    const bin = k.endsWith('-bin');
    if (beside !== undefined && typeof v === 'string' && !bin && volatileNames.has(k) && LEGAL_VALUE.test(v)) {
      own ??= newHeaders<WireHeaders>();
      own[k] = v;
      continue;
    }
    if (shared && !bin) {
      const lastValue = (last as WireHeaders)[k];
      if (lastValue === v) {
        matched++;
        continue;
      }
      if (lastValue !== undefined && typeof v === 'string' && volatileNames.size < CHECKED_MAX && LEGAL_VALUE.test(v)) {
        // Another value than the attempt before's: its own from now on (the shared ones made again without it, once).
        volatileNames.add(k);
        newlyVolatile = true;
        own ??= newHeaders<WireHeaders>();
        own[k] = v;
        continue;
      }
      shared = false;
      wire = addedOf(last as WireHeaders, headers, before);
    }
    if (beside !== undefined && !bin && typeof v === 'string' && legalName(k) && LEGAL_VALUE.test(v)) {
      // A value of its own per call (`x-request-id`): checked here as grpc-js's add() checks it,
      // rather than made into a Metadata of its own (and cached) once per call.
      wire ??= newHeaders<WireHeaders>();
      wire[k] = v;
      continue;
    }
    const one = checkedHeader(g, k, v);
    const values = storeOf(one)?.get(k);
    if (beside !== undefined && values !== undefined && !bin) {
      // Checked (a value grpc-js refuses is dropped, as it drops it from fromHttp2Headers): its
      // one value, or its shared (frozen) list of several.
      wire ??= newHeaders<WireHeaders>();
      wire[k] = values.length === 1 ? (values[0] as string) : (values as string[]);
      continue;
    }
    const store = storeOf(md);
    if (store !== undefined && values !== undefined) {
      // The checked values replace the caller's: their list is shared (frozen), not copied per call.
      store.set(k, values);
      continue;
    }
    md.merge(one);
  }
  for (const k in before) if (headers[k] === undefined) md.remove(k);
  if (beside !== undefined) {
    if (shared) {
      if (matched === lastWireSize) wire = last;
      else if (matched > 0) wire = addedOf(last as WireHeaders, headers, before);
      if (newlyVolatile) {
        // Shared from now on without the name whose value changes per call.
        lastWire = wire === undefined ? undefined : Object.freeze(wire);
        lastWireSize = wire === undefined ? 0 : Object.keys(wire).length;
      }
    } else if (wire !== undefined) {
      lastWire = Object.freeze(wire);
      lastWireSize = Object.keys(wire).length;
    }
    beside.wire = wire;
    beside.own = own;
  }
  return md;
}

/** The wire headers the last attempt that made its own added (frozen: attempts share them; WireMetadata copies before a change), and their number. */
let lastWire: WireHeaders | undefined;
let lastWireSize = 0;
/** Names whose value was new from one attempt to the next (`x-request-id`): each attempt's own, never shared (bounded, as names come from outside). */
const volatileNames = new Set<string>();

/** The entries of `last` that `headers` add over `before` with the same value. */
function addedOf(last: WireHeaders, headers: Headers, before: Headers): WireHeaders | undefined {
  let w: WireHeaders | undefined;
  for (const k in last) {
    const v = headers[k];
    if (v === undefined || v === before[k] || v !== last[k]) continue;
    w ??= newHeaders<WireHeaders>();
    w[k] = v;
  }
  return w;
}

/** grpc-js's checks of a metadata entry (metadata.js `validate`): a legal name, and a value of printable ASCII for a name not ending in `-bin`. */
const LEGAL_NAME = /^[:0-9a-z_.-]+$/;
const LEGAL_VALUE = /^[ -~]*$/;
/** Names found legal (header names come from outside: the set stays small whatever they are). */
const legalNames = new Set<string>();

function legalName(name: string): boolean {
  if (legalNames.has(name)) return true;
  if (!LEGAL_NAME.test(name)) return false;
  if (legalNames.size < CHECKED_MAX) legalNames.add(name);
  return true;
}

/** Headers the pipeline added, made into metadata (grpc-js checks names and values), by name: kept while the value repeats. */
const checked = new Map<string, { readonly value: string | string[]; readonly metadata: Metadata }>();
/** Names kept at most (header names come from outside: the cache stays small whatever they are). */
const CHECKED_MAX = 64;

function checkedHeader(g: GrpcJs, name: string, value: string | string[]): Metadata {
  const c = checked.get(name);
  if (c !== undefined && c.value === value) return c.metadata;
  const one = Object.create(null) as Record<string, string | string[]>;
  one[name] = value;
  const metadata = g.Metadata.fromHttp2Headers(one);
  // Every attempt's metadata holds these lists (requestMetadataOf): grpc-js's add() pushes onto
  // a name's list, so they are frozen — an add() would throw rather than reach the next call.
  storeOf(metadata)?.forEach(freezeValues);
  if (c !== undefined || checked.size < CHECKED_MAX) checked.set(name, { value, metadata });
  return metadata;
}

const freezeValues = (values: (string | Buffer)[]): void => void Object.freeze(values);

/** Metadata from request headers (the names gRPC writes itself left out), of `g`'s Metadata class. */
export function metadataOf(g: Pick<GrpcJs, 'Metadata'>, headers: Headers, reserved: ReadonlySet<string> = RESERVED): Metadata {
  const wire = newHeaders<Record<string, string | string[]>>();
  for (const k of Object.keys(headers)) {
    const v = headers[k];
    if (v === undefined || k.startsWith(':') || reserved.has(k)) continue;
    wire[k] = v;
  }
  return g.Metadata.fromHttp2Headers(wire);
}

/** Metadata from response headers or trailers, as grpc-js gives its caller an answer's (only the status and the compression filter's names taken out). */
export function answerOf(g: Pick<GrpcJs, 'Metadata'>, headers: Headers): Metadata {
  return metadataOf(g, headers, ANSWER_RESERVED);
}

/** The header the mesh's overflow answers carry (`x-envoy-overloaded: true`): the mesh's to set, never an endpoint's. */
const OVERLOADED_KEY = 'x-envoy-overloaded';

/**
 * The Metadata an endpoint answered with, as the caller gets it when nothing changed it on the
 * way (instead of made again from the response headers, `headers`): the names grpc-js takes out
 * of an answer taken out, as {@link answerOf} leaves them out, the endpoint's own
 * `x-envoy-overloaded` taken out (only the mesh says it overflowed, as for HTTP calls), and the
 * mesh's response flags (`flags`) as the only copy of their header.
 */
export function answerMetadataOf(metadata: Metadata, headers: Headers, flags: string): Metadata {
  const store = storeOf(metadata);
  if (store !== undefined) {
    // The names are read from grpc-js's store itself (no key list of the headers made per call;
    // its names are lower-cased already, so remove()'s checks are not paid either).
    if (store.size !== 0) {
      store.forEach(dropReserved, store);
      store.delete(OVERLOADED_KEY);
    }
  } else {
    // `headers` were made from the Metadata: its names are theirs (grpc-js lower-cases every name
    // it is given, and remove() pays for that on each call, so only names present are removed).
    for (const k in headers) if (ANSWER_RESERVED.has(k) || k === OVERLOADED_KEY) metadata.remove(k);
  }
  if (flags !== '') metadata.set(FLAGS_KEY, flags);
  else if (store !== undefined) store.delete(FLAGS_KEY);
  else metadata.remove(FLAGS_KEY);
  return metadata;
}

/** Takes a name gRPC writes itself out of a Metadata's store `this` (a Map.forEach callback: no closure per call). */
function dropReserved(this: MetadataStore, _values: (string | Buffer)[], name: string): void {
  if (ANSWER_RESERVED.has(name)) this.delete(name);
}

/** Response headers from received metadata (as a trailers-only head or trailers carry them). */
export function responseHeadersOf(metadata: Metadata): Headers {
  const h = newHeaders();
  intoHeaders(metadata, h);
  return h;
}

/**
 * The trailers of a status (`code`, `details`) that came with `metadata`: its metadata as headers,
 * with `grpc-status` and `grpc-message`. An OK status without trailing metadata (almost every
 * answer) gets one shared frozen object per details text (the pipeline only reads trailers).
 */
export function statusTrailersOf(metadata: Metadata, code: number, details: string): Headers {
  if (code === 0 && storeOf(metadata)?.size === 0) {
    let t = okTrailers;
    if (t === undefined || details !== okDetails) {
      t = Object.create(null) as Headers;
      t['grpc-status'] = '0';
      if (details !== '') t['grpc-message'] = encodeGrpcMessage(details);
      okTrailers = Object.freeze(t);
      okDetails = details;
    }
    return t;
  }
  const h = responseHeadersOf(metadata);
  h['grpc-status'] = String(code);
  if (details !== '') h['grpc-message'] = encodeGrpcMessage(details);
  return h;
}

/** The trailers of the last OK status without metadata ({@link statusTrailersOf}), and its details. */
let okTrailers: Headers | undefined;
let okDetails = '';

/**
 * Copies `metadata` into the empty headers `h` (and `also`, the same values) as
 * {@link Metadata.toHttp2Headers} gives it (pseudo-headers left out, `-bin` values base64,
 * several values as a list), and says whether it had any entry. It reads grpc-js's store of the
 * values (`internalRepr`, a Map) directly rather than through toHttp2Headers (an object and a key
 * list more per conversion, twice per call on the way back); a Metadata without that store goes
 * through toHttp2Headers. metadata.test.ts holds the two to the same result.
 */
export function intoHeaders(metadata: Metadata, h: Headers, also?: Headers): boolean {
  const store = storeOf(metadata);
  if (store === undefined) {
    const wire = metadata.toHttp2Headers();
    let any = false;
    for (const k of Object.keys(wire)) {
      const v = wire[k];
      if (v === undefined) continue;
      const value = Array.isArray(v) ? v.map(String) : String(v);
      h[k] = value;
      if (also !== undefined) also[k] = value;
      any = true;
    }
    return any;
  }
  if (store.size === 0) return false;
  copyAlso = also;
  store.forEach(copyEntry, h);
  copyAlso = undefined;
  return true;
}

/** The second headers object copyEntry fills, for the one conversion running. */
let copyAlso: Headers | undefined;

/** One entry of a Metadata's store into the headers `this` (a Map.forEach callback: no closure per call). */
function copyEntry(this: Headers, values: (string | Buffer)[], name: string): void {
  if (name.charCodeAt(0) === 58 /* : */) return;
  const v = values.length === 1 ? wireValue(values[0] as string | Buffer) : values.map(wireValue);
  this[name] = v;
  if (copyAlso !== undefined) copyAlso[name] = v;
}

function wireValue(v: string | Buffer): string {
  return typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString('base64') : String(v);
}

/** Printable ASCII but `%`: what `grpc-message` carries as it is. */
const PLAIN_MESSAGE = /^[\x20-\x24\x26-\x7e]*$/;

/** `grpc-message` as gRPC's HTTP/2 mapping carries it: percent-encoded outside printable ASCII. */
export function encodeGrpcMessage(details: string): string {
  // Most details (`OK`, Envoy's texts) need no encoding: no per-byte copy for them.
  if (PLAIN_MESSAGE.test(details)) return details;
  let out = '';
  for (const b of Buffer.from(details)) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The text of a `grpc-message` header (percent-decoded; left as it is when it does not decode). */
export function decodeGrpcMessage(v: string | string[] | undefined): string {
  const s = typeof v === 'string' ? v : Array.isArray(v) ? (v[0] ?? '') : '';
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** A `grpc-status` header's code (UNKNOWN when it is not one). */
export function grpcStatusCodeOf(v: string | string[] | undefined): number {
  const n = Number(Array.isArray(v) ? v[0] : v);
  return Number.isInteger(n) && n >= 0 ? n : GRPC_STATUS.UNKNOWN;
}

/**
 * The Metadata class of `md`: an app's own copy of grpc-js (bundled into it, or a second install)
 * when it is not the one meshlet loaded (`g`). Metadata the app is handed is made of its class:
 * grpc-js tells a call's Metadata argument from its options with `instanceof Metadata`, so the
 * mesh's class, passed on to a client of the app's copy (forwarding a server call's metadata, a
 * response's trailers), was taken for options and not sent.
 */
export function metadataClassOf(g: GrpcJs, md: Metadata): GrpcJs['Metadata'] {
  if (md instanceof g.Metadata) return g.Metadata;
  const c = (md as { constructor?: unknown }).constructor as GrpcJs['Metadata'] | undefined;
  return typeof c?.fromHttp2Headers === 'function' && typeof c.prototype?.toHttp2Headers === 'function' ? c : g.Metadata;
}

/** `md`, as a Metadata of class `cls` (the same entries; `-bin` values as bytes). */
export function asMetadataOf(cls: GrpcJs['Metadata'], md: Metadata): Metadata {
  // Its class is another copy's: TypeScript sees one Metadata type, so the check is on the object.
  return (md as object) instanceof cls ? md : cls.fromHttp2Headers(md.toHttp2Headers() as Parameters<GrpcJs['Metadata']['fromHttp2Headers']>[0]);
}
