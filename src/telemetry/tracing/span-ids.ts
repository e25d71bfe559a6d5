/**
 * The ids of the span the mesh made for each call and each served request — Envoy's active span
 * of the request, which its OpenTelemetry access logger writes into a record's `trace_id` and
 * `span_id` (`access_loggers/open_telemetry/access_log_impl.cc` `emitLog`). Kept only while
 * something reads them (an `envoyOtelAls` access log), for as long as the call or request object
 * lives; what is kept is what the tracer has at hand (the span, the `traceparent` it wrote, or
 * the ids), read as hex ids only when asked.
 *
 * @module
 */
import { type Span, trace } from '@opentelemetry/api';

/** A span's ids, in lower-case hex (32 and 16 digits). */
export interface SpanIds {
  readonly traceId: string;
  readonly spanId: string;
}

/** A span; a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`); or the ids. */
type Held = Span | string | SpanIds;

/** The ids of the spans made for calls and requests, by their call / request object. */
export class SpanIdStore {
  /** Whether ids are kept (something reads them). */
  on = false;
  readonly #held = new WeakMap<object, Held>();

  /** Keeps the span (or `traceparent`, or ids) made for `key`, when ids are wanted. */
  keep(key: object, held: Held): void {
    if (this.on) this.#held.set(key, held);
  }

  /** The ids of the span made for `key`, or undefined when none was (tracing off for it, or ids not kept). */
  get(key: object): SpanIds | undefined {
    const h = this.#held.get(key);
    if (h === undefined) return undefined;
    if (typeof h === 'string') return { traceId: h.slice(3, 35), spanId: h.slice(36, 52) };
    if ('spanContext' in h) {
      const sc = h.spanContext();
      return trace.isSpanContextValid(sc) ? { traceId: sc.traceId, spanId: sc.spanId } : undefined;
    }
    return h;
  }
}
