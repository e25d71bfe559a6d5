/**
 * Trace context in headers, as Envoy's tracers read and write it: W3C Trace Context
 * (`traceparent`, `tracestate` — Envoy's OpenTelemetry tracer) and B3 (`b3` single header and the
 * `x-b3-*` multi headers — Envoy's Zipkin tracer). Parsing is strict (a malformed header is
 * ignored, as if absent: a new trace starts), and never throws.
 *
 * @module
 */
import type { Headers } from '../../core/handler.ts';

/**
 * A propagation format meshlet reads and writes: `w3c` (`traceparent`/`tracestate`), `b3`
 * (the `x-b3-*` multi headers, as Envoy's Zipkin tracer writes them), `b3-single` (one `b3`
 * header).
 * @category Telemetry
 */
export type PropagationFormat = 'w3c' | 'b3' | 'b3-single';

/** A trace context as received. */
export interface RemoteContext {
  /** 32 lower-case hex digits (a 64-bit B3 id is left-padded with zeros, as OpenTelemetry does). */
  readonly traceId: string;
  /** 16 lower-case hex digits. */
  readonly spanId: string;
  /** The upstream decision: true, false, or undefined when the caller deferred it (B3 without a sampling state). */
  readonly sampled: boolean | undefined;
  /** W3C `tracestate`, when one came with a `traceparent`. */
  readonly traceState: string | undefined;
  /** The format it was read from. */
  readonly format: PropagationFormat;
}

/** Every header a format uses (removed before a call's own are written). */
export const TRACE_HEADERS = Object.freeze(['traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags']);

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const ZERO32 = '0'.repeat(32);
const ZERO16 = '0'.repeat(16);

function one(h: Headers, name: string): string | undefined {
  const v = h[name];
  return typeof v === 'string' ? v : v?.[0];
}

function validIds(traceId: string, spanId: string): boolean {
  return HEX32.test(traceId) && HEX16.test(spanId) && traceId !== ZERO32 && spanId !== ZERO16;
}

/** W3C `traceparent`: `00-<trace-id>-<parent-id>-<flags>` (a higher version is read by its first four fields, as the spec says). */
export function parseTraceparent(value: string | undefined, tracestate: string | undefined): RemoteContext | undefined {
  if (value === undefined) return undefined;
  const v = value.trim().toLowerCase();
  const m = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/.exec(v);
  if (m === null) return undefined;
  const version = m[1] as string;
  if (version === 'ff' || (version === '00' && m[5] !== undefined)) return undefined;
  const traceId = m[2] as string;
  const spanId = m[3] as string;
  if (!validIds(traceId, spanId)) return undefined;
  const flags = Number.parseInt(m[4] as string, 16);
  return { traceId, spanId, sampled: (flags & 1) === 1, traceState: tracestate === undefined || tracestate === '' ? undefined : tracestate, format: 'w3c' };
}

function padTraceId(id: string): string {
  return id.length === 16 ? ZERO16 + id : id;
}

/** B3 sampling state: `1`/`true`/`d` (debug) sampled, `0`/`false` not; anything else deferred. */
function b3Sampled(s: string | undefined, flags?: string): boolean | undefined {
  if (flags === '1') return true;
  if (s === undefined) return undefined;
  const v = s.toLowerCase();
  if (v === '1' || v === 'true' || v === 'd') return true;
  if (v === '0' || v === 'false') return false;
  return undefined;
}

/** The `b3` single header: `{trace}-{span}[-{sampling}[-{parent}]]`, or just `{sampling}` (a decision with no ids: not a context). */
export function parseB3Single(value: string | undefined): RemoteContext | undefined {
  if (value === undefined) return undefined;
  const parts = value.trim().toLowerCase().split('-');
  if (parts.length < 2 || parts.length > 4) return undefined;
  const traceId = padTraceId(parts[0] as string);
  const spanId = parts[1] as string;
  if (!validIds(traceId, spanId)) return undefined;
  const s = parts[2];
  if (s !== undefined && !/^(0|1|d)$/.test(s)) return undefined;
  if (parts[3] !== undefined && !HEX16.test(parts[3])) return undefined;
  return { traceId, spanId, sampled: b3Sampled(s), traceState: undefined, format: 'b3-single' };
}

/** The `x-b3-*` multi headers. */
export function parseB3Multi(h: Headers): RemoteContext | undefined {
  const t = one(h, 'x-b3-traceid');
  const s = one(h, 'x-b3-spanid');
  if (t === undefined || s === undefined) return undefined;
  const traceId = padTraceId(t.trim().toLowerCase());
  const spanId = s.trim().toLowerCase();
  if (!validIds(traceId, spanId)) return undefined;
  return { traceId, spanId, sampled: b3Sampled(one(h, 'x-b3-sampled'), one(h, 'x-b3-flags')), traceState: undefined, format: 'b3' };
}

function readFormat(h: Headers, f: PropagationFormat): RemoteContext | undefined {
  switch (f) {
    case 'w3c':
      return parseTraceparent(one(h, 'traceparent'), one(h, 'tracestate'));
    case 'b3':
      return parseB3Multi(h);
    case 'b3-single':
      return parseB3Single(one(h, 'b3'));
  }
}

const ALL: readonly PropagationFormat[] = ['w3c', 'b3', 'b3-single'];

/**
 * The trace context of a request: the configured formats first, in their order, then the others
 * (a caller speaking another format still continues its trace). Undefined when none is there
 * or valid.
 */
export function extract(h: Headers, formats: readonly PropagationFormat[]): RemoteContext | undefined {
  // Every format needs one of these three (the usual request has none: nothing to parse).
  if (h.traceparent === undefined && h.b3 === undefined && h['x-b3-traceid'] === undefined) return undefined;
  for (const f of formats) {
    const c = readFormat(h, f);
    if (c !== undefined) return c;
  }
  for (const f of ALL) {
    if (formats.includes(f)) continue;
    const c = readFormat(h, f);
    if (c !== undefined) return c;
  }
  return undefined;
}

/**
 * Removes W3C's trace headers (before a call's own context is written; {@link clearB3} the other
 * {@link TRACE_HEADERS}). Each name is read as a named property: a loop over the list reads the
 * request's header object with a different key each time, a keyed lookup V8 cannot cache (each
 * miss walking the object's prototype: ≈ 110 ns a call for all eight, a sixth of an unsampled
 * call's tracing); these loads are cached.
 */
export function clearW3c(h: Headers): void {
  if (h.traceparent !== undefined) delete h.traceparent;
  if (h.tracestate !== undefined) delete h.tracestate;
}

/** Removes B3's trace headers, single and multi (a B3 reader takes the single header first). */
export function clearB3(h: Headers): void {
  if (h.b3 !== undefined) delete h.b3;
  if (h['x-b3-traceid'] !== undefined) delete h['x-b3-traceid'];
  if (h['x-b3-spanid'] !== undefined) delete h['x-b3-spanid'];
  if (h['x-b3-parentspanid'] !== undefined) delete h['x-b3-parentspanid'];
  if (h['x-b3-sampled'] !== undefined) delete h['x-b3-sampled'];
  if (h['x-b3-flags'] !== undefined) delete h['x-b3-flags'];
}

/** What a call carries downstream. */
export interface OutgoingContext {
  readonly traceId: string;
  readonly spanId: string;
  /** The span that is the parent of `spanId` (B3's `x-b3-parentspanid`), when there is one. */
  readonly parentSpanId: string | undefined;
  readonly sampled: boolean;
  readonly traceState: string | undefined;
}

/**
 * Writes `c` into the headers of a request the app is handed (as Envoy's router writes its span
 * into the request it forwards): each of `formats`, leaving other formats' headers as they came.
 * Returns the names written.
 */
export function injectForApp(h: Headers, c: OutgoingContext, formats: readonly PropagationFormat[]): string[] {
  const names: string[] = [];
  const set = (k: string, v: string | undefined) => {
    if (v === undefined) {
      if (h[k] === undefined) return;
      delete h[k];
    } else h[k] = v;
    names.push(k);
  };
  for (const f of formats) {
    switch (f) {
      case 'w3c':
        set('traceparent', `00-${c.traceId}-${c.spanId}-${c.sampled ? '01' : '00'}`);
        set('tracestate', c.traceState);
        break;
      case 'b3':
        set('x-b3-traceid', c.traceId);
        set('x-b3-spanid', c.spanId);
        set('x-b3-parentspanid', c.parentSpanId);
        set('x-b3-sampled', c.sampled ? '1' : '0');
        break;
      case 'b3-single':
        set('b3', `${c.traceId}-${c.spanId}-${c.sampled ? '1' : '0'}${c.parentSpanId === undefined ? '' : `-${c.parentSpanId}`}`);
        break;
    }
  }
  return names;
}

/**
 * Writes `c` into `h` in each of `formats`, replacing what was there in those formats. Headers of
 * the other formats are left as the app wrote them, as Envoy's tracers set their own headers only
 * (Zipkin's `ZipkinSpan::injectContext` the `x-b3-*` ones, OpenTelemetry's `traceparent`/`tracestate`):
 * under a B3 mesh the app's own W3C instrumentation keeps its trace across the hop.
 */
export function inject(h: Headers, c: OutgoingContext, formats: readonly PropagationFormat[]): void {
  for (const f of formats) {
    if (f === 'w3c') clearW3c(h);
    else clearB3(h);
  }
  for (const f of formats) {
    switch (f) {
      case 'w3c':
        h.traceparent = `00-${c.traceId}-${c.spanId}-${c.sampled ? '01' : '00'}`;
        if (c.traceState !== undefined) h.tracestate = c.traceState;
        break;
      case 'b3':
        h['x-b3-traceid'] = c.traceId;
        h['x-b3-spanid'] = c.spanId;
        if (c.parentSpanId !== undefined) h['x-b3-parentspanid'] = c.parentSpanId;
        h['x-b3-sampled'] = c.sampled ? '1' : '0';
        break;
      case 'b3-single':
        h.b3 = `${c.traceId}-${c.spanId}-${c.sampled ? '1' : '0'}${c.parentSpanId === undefined ? '' : `-${c.parentSpanId}`}`;
        break;
    }
  }
}
