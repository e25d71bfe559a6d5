/**
 * The OpenTelemetry API pieces the tracer needs beyond spans: whether an SDK is registered, span
 * contexts made from received headers, and fresh ids for a span context no SDK makes (an
 * unsampled request still carries one).
 *
 * @module
 */
import { ProxyTracerProvider, type SpanContext, type TraceState, trace } from '@opentelemetry/api';
import { writeHex } from './hex.ts';
import type { RemoteContext } from './propagation.ts';
import { POOL, takeRandom } from './random-pool.ts';

/** The API's no-op provider (what a proxy provider delegates to until an SDK is registered). */
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();

/** True when the app registered an OpenTelemetry SDK (a tracer provider other than the no-op one). */
export function sdkRegistered(): boolean {
  const p = trace.getTracerProvider();
  const d = p instanceof ProxyTracerProvider ? p.getDelegate() : p;
  return d !== NOOP_PROVIDER;
}

/**
 * The offset of `n` random bytes in the pool (random-pool.ts), taken. An all-zero id is invalid
 * (W3C): as the SDK, its last byte is made 1. Each id is then one `toString('hex')` of its bytes
 * (a flat string: built from 2-character pieces it was a rope that undici flattens again when it
 * checks the header value).
 */
function take(n: number): number {
  const at = takeRandom(n);
  let zero = true;
  for (let i = at; i < at + n; i++) {
    if (POOL[i] !== 0) {
      zero = false;
      break;
    }
  }
  if (zero) POOL[at + n - 1] = 1;
  return at;
}

/** `n` random bytes from the pool, as lower-case hex. */
function randomHex(n: number): string {
  const at = take(n);
  return POOL.toString('hex', at, at + n);
}

/** The unsampled `traceparent` being written (its ids at 3 and 36). */
const TRACEPARENT = Buffer.from(`00-${'0'.repeat(32)}-${'0'.repeat(16)}-00`, 'latin1');

/**
 * The W3C `traceparent` of an unsampled call (`00-<trace id>-<new span id>-00`): under `traceId`
 * (32 hex digits, written as given), else a new trace. One flat string written in one go, instead
 * of ids and a template (a rope that undici flattens again when it checks the header value). The
 * same ids as {@link newTraceId} (when drawn) then {@link newSpanId}.
 */
export function newUnsampledTraceparent(traceId?: string): string {
  if (traceId === undefined) writeHex(TRACEPARENT, 3, POOL, take(16), 16);
  else for (let i = 0; i < 32; i++) TRACEPARENT[3 + i] = traceId.charCodeAt(i);
  writeHex(TRACEPARENT, 36, POOL, take(8), 8);
  return TRACEPARENT.toString('latin1');
}

/** A new trace id and span id (for a span context no SDK makes). */
export function newIds(): { traceId: string; spanId: string } {
  return { traceId: randomHex(16), spanId: randomHex(8) };
}

/** A new span id alone (a span context under a known trace). */
export function newSpanId(): string {
  return randomHex(8);
}

/** A new trace id alone. */
export function newTraceId(): string {
  return randomHex(16);
}

/** The received context as the API's, flagged with the decision meshlet made (an upstream one, or its own for a deferred B3 one). */
export function remoteSpanContext(r: RemoteContext, sampled: boolean): SpanContext {
  return {
    traceId: r.traceId,
    spanId: r.spanId,
    traceFlags: sampled ? 1 : 0,
    isRemote: true,
    traceState: r.traceState === undefined ? undefined : traceStateOf(r.traceState),
  };
}

/** A W3C tracestate kept as received (the API's TraceState interface over the raw header). */
function traceStateOf(raw: string): TraceState {
  const entries = raw
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  const make = (list: string[]): TraceState => ({
    get: (k) => list.find((e) => e.startsWith(`${k}=`))?.slice(k.length + 1),
    set: (k, v) => make([`${k}=${v}`, ...list.filter((e) => !e.startsWith(`${k}=`))]),
    unset: (k) => make(list.filter((e) => !e.startsWith(`${k}=`))),
    serialize: () => list.join(','),
  });
  return make(entries);
}
