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

const ids = Buffer.alloc(24);
/** A new trace id and span id (for a span context no SDK makes). */
export function newIds(): { traceId: string; spanId: string } {
  randomFillSync(ids);
  return { traceId: ids.toString('hex', 0, 16), spanId: ids.toString('hex', 16, 24) };
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
