/**
 * The OpenTelemetry API pieces the tracer needs beyond spans: whether an SDK is registered, span
 * contexts made from received headers, and fresh ids for a span context no SDK makes (an
 * unsampled request still carries one).
 *
 * @module
 */
import { randomFillSync } from 'node:crypto';
import { ProxyTracerProvider, type SpanContext, type TraceState, trace } from '@opentelemetry/api';
import type { RemoteContext } from './propagation.ts';

/** The API's no-op provider (what a proxy provider delegates to until an SDK is registered). */
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();

/** True when the app registered an OpenTelemetry SDK (a tracer provider other than the no-op one). */
export function sdkRegistered(): boolean {
  const p = trace.getTracerProvider();
  const d = p instanceof ProxyTracerProvider ? p.getDelegate() : p;
  return d !== NOOP_PROVIDER;
}

/**
 * Random bytes for ids, filled 4 KiB at a time, written as hex through a table: one
 * `randomFillSync` per id cost more than the rest of a call's tracing, so ids are cut from a pool
 * (`crypto.randomUUID`, used for `x-request-id`, buffers its entropy the same way).
 */
const POOL = Buffer.alloc(4080);
let used = POOL.length;
const HEX: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** `n` random bytes from the pool, as lower-case hex. */
function randomHex(n: number): string {
  if (used + n > POOL.length) {
    randomFillSync(POOL);
    used = 0;
  }
  let s = '';
  for (let i = used, end = used + n; i < end; i++) s += HEX[POOL[i] as number];
  used += n;
  return s;
}

/** A new trace id and span id (for a span context no SDK makes). */
export function newIds(): { traceId: string; spanId: string } {
  return { traceId: randomHex(16), spanId: randomHex(8) };
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
