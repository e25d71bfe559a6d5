/**
 * The OpenTelemetry context a served request runs in, made for what it costs per request: one
 * object instead of the API's two `BaseContext` copies (each a `Map` copy and three closures, for
 * `trace.setSpan(…).setValue(…)`), and, for the usual unsampled request, a span whose ids are
 * drawn only when something reads its context (an outbound call made while serving it, the app's
 * own instrumentation) — most requests never are.
 *
 * What a reader of the context sees is what `trace.setSpan(parent, span).setValue(key, value)`
 * would give: the span under the API's span key, the value under its key, everything else from
 * the parent; `setValue` / `deleteValue` make new contexts and leave this one as it is.
 *
 * @module
 */
import { type Context, context, createContextKey, ROOT_CONTEXT, type Span, type SpanContext, type SpanStatus, trace } from '@opentelemetry/api';
import { asyncContextFrames, runInRestoringScope } from '../../core/context.ts';
import { newIds } from './span-context.ts';

/** The key `trace.setSpan` stores the span under (the API's keys are `Symbol.for` their description). */
const SPAN_KEY = createContextKey('OpenTelemetry Context Key SPAN');

/** A context over `parent` with up to two keys set (`k2` unset: one). */
class Layered implements Context {
  readonly #parent: Context;
  readonly #k1: symbol;
  readonly #v1: unknown;
  readonly #k2: symbol | undefined;
  readonly #v2: unknown;

  constructor(parent: Context, k1: symbol, v1: unknown, k2?: symbol, v2?: unknown) {
    this.#parent = parent;
    this.#k1 = k1;
    this.#v1 = v1;
    this.#k2 = k2;
    this.#v2 = v2;
  }

  getValue(key: symbol): unknown {
    if (key === this.#k2) return this.#v2;
    if (key === this.#k1) return this.#v1;
    return this.#parent.getValue(key);
  }

  setValue(key: symbol, value: unknown): Context {
    return new Layered(this, key, value);
  }

  deleteValue(key: symbol): Context {
    // As BaseContext: the key reads as undefined from the new context on.
    return new Layered(this, key, undefined);
  }
}

/** True when a {@link Layered} context is read by the API as `trace.setSpan` would have made it (checked once). */
const LAYERED_OK = ((): boolean => {
  const probe = trace.wrapSpanContext({ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 0 });
  return trace.getSpan(new Layered(ROOT_CONTEXT, SPAN_KEY, probe)) === probe;
})();

/** `trace.setSpan(parent, span).setValue(key, value)`, in one object. */
export function spanContextWith(parent: Context, span: Span, key: symbol, value: unknown): Context {
  return LAYERED_OK ? new Layered(parent, SPAN_KEY, span, key, value) : trace.setSpan(parent, span).setValue(key, value);
}

/** `parent.setValue(key, value)`, in one object. */
export function contextWith(parent: Context, key: symbol, value: unknown): Context {
  return new Layered(parent, key, value);
}

/**
 * The span of an unsampled request: non-recording, as `trace.wrapSpanContext` makes it, with the
 * sampled flag off; its span id (and a trace id when there is no parent) drawn when its context
 * is first read, then kept.
 */
export class UnsampledSpan implements Span {
  readonly #parent: SpanContext | undefined;
  /** The unsampled `traceparent` written for the request, whose ids are this span's (then no parent's trace state to keep). */
  readonly #traceparent: string | undefined;
  #sc: SpanContext | undefined;

  /**
   * `parent`: the span context it continues (its trace id and trace state), if any; or
   * `traceparent`: the span's ids are those of this unsampled W3C header (read out when first asked for).
   */
  constructor(parent: SpanContext | undefined, traceparent?: string) {
    this.#parent = parent;
    this.#traceparent = traceparent;
  }

  spanContext(): SpanContext {
    if (this.#sc === undefined) {
      const tp = this.#traceparent;
      if (tp !== undefined) this.#sc = { traceId: tp.slice(3, 35), spanId: tp.slice(36, 52), traceFlags: 0 };
      else {
        const fresh = newIds();
        const p = this.#parent;
        this.#sc = { traceId: p?.traceId ?? fresh.traceId, spanId: fresh.spanId, traceFlags: 0, traceState: p?.traceState };
      }
    }
    return this.#sc;
  }

  setAttribute(): this {
    return this;
  }

  setAttributes(): this {
    return this;
  }

  addEvent(): this {
    return this;
  }

  addLink(): this {
    return this;
  }

  addLinks(): this {
    return this;
  }

  setStatus(_status: SpanStatus): this {
    return this;
  }

  updateName(): this {
    return this;
  }

  end(): void {}

  isRecording(): boolean {
    return false;
  }

  recordException(): void {}
}

const FRAMES = asyncContextFrames();

/** The context manager behind the API, when it can enter a context in place (`attach`: the Node SDK's `AsyncLocalStorageContextManager`). */
type Attaching = { attach?: (ctx: Context) => unknown };

function attachThen<T>(m: Attaching, ctx: Context, fn: () => T): T {
  (m.attach as (ctx: Context) => unknown).call(m, ctx);
  return fn();
}

/**
 * `context.with(ctx, fn)` for the rest of a served request, made for what it costs: where async
 * context lives in frames (Node 24), the manager's `AsyncLocalStorage.run` copies the frame (a
 * `Map` of every store's value, through its iterator) once on the way in and again on the way
 * out; here an `AsyncResource` scope, which puts the frame it was made in back on exit without
 * copying, is entered and the context attached inside it — one copy; the request's mesh context,
 * entered at the end of admission inside it, is entered in place (`runInRestoringScope`). What runs inside, and every
 * async continuation it makes, sees `ctx` as the active context, and the caller's context is as
 * it was afterwards, as with `context.with`. Other context managers (no `attach`), or stores kept
 * by async hooks: `context.with`.
 */
export function withActive<T>(ctx: Context, fn: () => T): T {
  const m = (context as unknown as { _getContextManager?: () => Attaching })._getContextManager?.();
  if (m?.attach === undefined || !FRAMES) return context.with(ctx, fn);
  return runInRestoringScope(attachThen<T>, m, ctx, fn);
}
