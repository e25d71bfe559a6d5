/**
 * A mesh's tracing: spans as an Istio sidecar's Envoy makes them, through `@opentelemetry/api`
 * only, from the kernel's observation channels — no require hooks, nothing patched.
 *
 * - an inbound request (`meshlet:inbound:start` → `:end`) is a SERVER span, its parent read from
 *   the request's trace headers; it is made the active OpenTelemetry context for admission and
 *   the app's handler through the message's `wrap`, so what the handler does — its own spans, its
 *   calls through the mesh — continues the trace;
 * - an outbound call (`meshlet:call:start` → `:end`) is a CLIENT span whose parent is the context
 *   active where the call was made; each attempt (`meshlet:attempt:*`) is a child span with its
 *   endpoint and outcome (Envoy's upstream spans, `router <cluster> egress`); the call carries
 *   the client span's context in the configured formats (written into the header object the call
 *   sends), each attempt of a recorded call its own span's instead (as Envoy's upstream request
 *   injects its span), and `x-request-id`.
 *
 * Sampling is Istio's: an upstream decision is kept; otherwise `x-client-trace-id` forces it, and
 * `x-envoy-force-trace` on an app's call only with `trustEnvoyRequestHeaders` (Envoy's
 * cleanInternalHeaders removes it from external requests, which a sidecar's are, before the
 * tracing decision; never on an inbound request: Istio's inbound listener does not use the
 * remote address, so no caller is internal); otherwise a draw from the mesh's Random against the merged
 * `randomSamplingPercentage`. An unsampled request still gets a (non-recording) span context
 * with the sampled flag off, so every hop after it agrees.
 *
 * Cost: the mesh subscribes only once a real tracer provider is registered with the API (checked
 * when the mesh starts, at each config, and once a second until then); each message first checks
 * that it still is. Without an SDK, the channels have no subscriber of this mesh, and nothing is
 * published. The tracer does not subscribe to the attempt channels: a recorded (sampled) call
 * carries the tracer as its `attemptObserver`, so only its attempts are told to it (an unsampled
 * call's attempts build no message for the tracer).
 *
 * The tags of finished spans are written in `span-end.ts`.
 *
 * @module
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { clearInterval, setInterval } from 'node:timers';
import { type Attributes, type Context, context, createContextKey, ROOT_CONTEXT, type Span, type SpanContext, SpanKind, type Tracer, type TracerProvider, trace } from '@opentelemetry/api';
import type { AnyResource } from '../../config/resource.ts';
import type { Headers } from '../../core/handler.ts';
import type { AttemptEndMessage, AttemptObserver, AttemptStartMessage, CallEndMessage, CallStartMessage, InboundEndMessage, InboundStartMessage } from '../../core/observe.ts';
import { selectTelemetry } from '../select.ts';
import { hasAppContext } from './app-context.ts';
import { mergeTracing, type TracingConfig, type TracingSpec, validateTracingOptions } from './config.ts';
import { clearW3c, extract, inject, injectForApp, type PropagationFormat } from './propagation.ts';
import { newRequestId } from './request-id.ts';
import { changed, TRACEPARENT_ONLY, takeDecorator } from './inbound-headers.ts';
import { contextWith, spanContextWith, UnsampledSpan, withActive } from './server-context.ts';
import { newIds, newSpanId, newTraceId, newUnsampledTraceparent, remoteSpanContext, sdkRegistered } from './span-context.ts';
import { type SpanIds, SpanIdStore } from './span-ids.ts';
import { endAttemptSpan, endClientSpan, endServerSpan } from './span-end.ts';
import { compileTags, istioTags, nodeId } from './tags.ts';
import type { CallState, InboundState, MeshTracingOptions, SideState } from './tracer-state.ts';

export type { MeshTracingOptions } from './tracer-state.ts';

/** The `x-request-id` of the request being served, carried to the calls made while serving it. */
const REQUEST_ID = createContextKey('meshlet x-request-id');

/** One mesh's tracer: subscribes to the channels while an SDK is registered, handles only its own mesh's messages. */
export class MeshTracing {
  readonly #o: MeshTracingOptions;
  readonly #formats: readonly PropagationFormat[];
  /** Calls carry W3C trace context only (the default). */
  readonly #w3cOnly: boolean;
  #tracer: Tracer;
  /** The global TracerProvider `#tracer` came from (a new one after the app's SDK was unregistered and another registered). */
  #provider: TracerProvider;
  readonly #common: Attributes;
  /** The Istio tags of this workload's spans (`enableIstioTags`): the same for every span. */
  readonly #istio: Attributes;
  #client!: SideState;
  #server!: SideState;
  readonly #calls = new WeakMap<object, CallState>();
  readonly #inbound = new WeakMap<object, InboundState>();
  /** Recorded served requests in {@link #inbound} whose end has not come yet. */
  #recordedInbound = 0;
  #subscribed = false;
  #poll: ReturnType<typeof setInterval> | undefined;
  #closed = false;
  readonly #handlers: readonly [string, (m: unknown) => void][];
  /** Set on each recorded call: its attempts' spans. */
  readonly #attempts: AttemptObserver;
  /** The ids of the span made for each call and request, while something reads them. */
  readonly #ids = new SpanIdStore();
  /** The server span's name by local port, where a Service reaches it. */
  #operations: ReadonlyMap<number, string> = new Map();

  constructor(o: MeshTracingOptions, resources: readonly AnyResource[], inboundOperations?: ReadonlyMap<number, string>) {
    validateTracingOptions(o.options);
    this.#o = o;
    this.#formats = o.options?.propagation ?? ['w3c'];
    this.#w3cOnly = this.#formats.length === 1 && this.#formats[0] === 'w3c';
    this.#provider = trace.getTracerProvider();
    this.#tracer = trace.getTracer('meshlet');
    const zone = o.locality.split('/')[1] ?? '';
    this.#common = { component: 'proxy', node_id: nodeId(o.workload, o.sourceIp), zone };
    this.#istio = Object.freeze(istioTags(o.workload, o.options?.meshId ?? o.trustDomain, o.options?.clusterId ?? 'Kubernetes'));
    this.#handlers = [
      ['meshlet:inbound:start', (m) => this.#onInboundStart(m as InboundStartMessage)],
      ['meshlet:inbound:end', (m) => this.#onInboundEnd(m as InboundEndMessage)],
      ['meshlet:call:start', (m) => this.#onCallStart(m as CallStartMessage)],
      ['meshlet:call:end', (m) => this.#onCallEnd(m as CallEndMessage)],
    ];
    this.#attempts = { attemptStart: (m) => this.#onAttemptStart(m), attemptEnd: (m) => this.#onAttemptEnd(m) };
    this.install(resources, inboundOperations);
    // Checked every second: an SDK registered later, unregistered (startTelemetry()'s shutdown),
    // or replaced by another.
    this.#poll = setInterval(() => this.#check(), 1000);
    this.#poll.unref();
  }

  /** The merged tracing config in use. */
  config!: TracingConfig;

  /** Whether the ids of the span made for each call and request are kept for {@link spanIdsOf} (an `envoyOtelAls` access log reads them). */
  set keepSpanIds(on: boolean) {
    this.#ids.on = on;
  }

  /** The ids of the span the mesh made for a call (`call:end`'s `call`) or a served request (`inbound:end`'s `request`), while kept. */
  spanIdsOf(callOrRequest: object): SpanIds | undefined {
    return this.#ids.get(callOrRequest);
  }

  /**
   * Applies a config's Telemetry resources, and the name of the server span by local port: the
   * inbound route's decorator istiod writes, `<host>:<service port>/*` of the oldest Service
   * selecting this workload on that port (the same service the server side's metrics report).
   */
  install(resources: readonly AnyResource[], inboundOperations?: ReadonlyMap<number, string>): void {
    if (inboundOperations !== undefined) this.#operations = inboundOperations;
    const w = this.#o.workload;
    const applied = selectTelemetry(resources, { namespace: w.namespace, labels: w.labels }, this.#o.rootNamespace).applied;
    this.config = mergeTracing(applied, this.#o.options ?? {}, this.#o.warn);
    this.#client = { spec: this.config.client, tags: compileTags(this.config.client.customTags, process.env, this.#o.warn) };
    this.#server = { spec: this.config.server, tags: compileTags(this.config.server.customTags, process.env, this.#o.warn) };
    this.#check();
  }

  /** Follows the global SDK: subscribed while one is registered, tracing through the one registered now. */
  #check(): void {
    if (this.#closed) return;
    const provider = trace.getTracerProvider();
    if (provider !== this.#provider) {
      this.#provider = provider;
      this.#tracer = trace.getTracer('meshlet');
    }
    const on = sdkRegistered();
    if (on === this.#subscribed) return;
    // Without an SDK, nothing is observed (and observation costs nothing again).
    for (const [name, fn] of this.#handlers) {
      if (on) subscribe(name, fn);
      else unsubscribe(name, fn);
    }
    this.#subscribed = on;
  }

  close(): void {
    this.#closed = true;
    if (this.#poll !== undefined) clearInterval(this.#poll);
    if (this.#subscribed) for (const [name, fn] of this.#handlers) unsubscribe(name, fn);
    this.#subscribed = false;
  }

  /** `trusted`: the request is internal (Envoy honours `x-envoy-force-trace` only then; `x-client-trace-id` from anyone, tracing.client_enabled). */
  #sampled(spec: TracingSpec, parent: boolean | undefined, h: Headers | undefined, trusted: boolean): boolean {
    if (parent !== undefined) return parent;
    if (h !== undefined && (h['x-client-trace-id'] !== undefined || (trusted && h['x-envoy-force-trace'] !== undefined))) return true;
    const p = spec.samplingPercentage;
    return p >= 100 || (p > 0 && this.#o.random.next() * 100 < p);
  }

  /**
   * A span under `parentCtx`: recorded by the SDK when sampled; otherwise (or when the SDK's own
   * sampler declines) a non-recording span whose context still carries the decision.
   */
  #start(name: string, kind: SpanKind, parentCtx: Context, sampled: boolean, attributes: Attributes | undefined): { span: Span; recording: boolean } {
    const parent = trace.getSpanContext(parentCtx);
    if (sampled) {
      const span = this.#tracer.startSpan(name, { kind, attributes }, parentCtx);
      const sc = span.spanContext();
      // A span of its own (the SDK may still decline to record it, by its own sampler: then its context says so).
      if (trace.isSpanContextValid(sc) && sc.spanId !== parent?.spanId) return { span, recording: span.isRecording() };
    }
    const fresh = newIds();
    const span = trace.wrapSpanContext({ traceId: parent?.traceId ?? fresh.traceId, spanId: fresh.spanId, traceFlags: sampled ? 1 : 0, traceState: parent?.traceState });
    return { span, recording: false };
  }

  // ── server side ──

  #onInboundStart(m: InboundStartMessage): void {
    if (m.workload !== this.#o.workload || !sdkRegistered()) return;
    const h = m.headers;
    let requestId = typeof h['x-request-id'] === 'string' && h['x-request-id'] !== '' ? h['x-request-id'] : undefined;
    if (requestId === undefined) {
      // Envoy's HCM generates it when missing (generate_request_id), and the app sees it.
      requestId = newRequestId();
      h['x-request-id'] = requestId;
    }
    const decorator = takeDecorator(m, this.#o.edge === true);
    // The parent: a span the app's own instrumentation made for this request already, else the request's headers.
    const active = context.active();
    const own = trace.getSpanContext(active);
    const remote = own !== undefined && trace.isSpanContextValid(own) ? undefined : extract(h, this.#formats);
    const side = this.#server;
    let ctx: Context;
    if (side.spec.disabled) {
      // No span, but the request's trace continues through the calls its handler makes.
      ctx = remote === undefined ? contextWith(active, REQUEST_ID, requestId) : spanContextWith(active, trace.wrapSpanContext(remoteSpanContext(remote, remote.sampled === true)), REQUEST_ID, requestId);
    } else {
      const sampled = this.#sampled(side.spec, remote === undefined ? (own === undefined ? undefined : (own.traceFlags & 1) === 1) : remote.sampled, h, false);
      // As Envoy's router injects its span into the request it forwards, the app is handed this
      // server span's context: its own instrumentation's span (made from the request's headers, as
      // @opentelemetry/instrumentation-http does) and headers it forwards by hand are children of it,
      // not its siblings. Not when the app's own span for this request is the parent already.
      const handOn = !side.spec.disableContextPropagation && (remote !== undefined || own === undefined || !trace.isSpanContextValid(own));
      let span: Span;
      if (!sampled) {
        const parent = remote === undefined ? own : remoteSpanContext(remote, false);
        if (handOn && this.#w3cOnly && (parent === undefined || !trace.isSpanContextValid(parent) || parent.traceState === undefined)) {
          // The usual case with an app to hand it to: one flat traceparent, whose ids are the span's.
          const tp = newUnsampledTraceparent(parent !== undefined && trace.isSpanContextValid(parent) ? parent.traceId : undefined);
          h.traceparent = tp;
          changed(m, TRACEPARENT_ONLY);
          // Its ids read out of the header only if something asks for them (a call made while serving it, the app's own spans).
          span = new UnsampledSpan(undefined, tp);
          this.#ids.keep(m.request, tp);
          ctx = spanContextWith(active, span, REQUEST_ID, requestId);
          this.#wrap(m, ctx);
          return;
        }
        // A non-recording span with the decision, its ids drawn only if something reads them.
        span = new UnsampledSpan(parent);
        ctx = spanContextWith(active, span, REQUEST_ID, requestId);
      } else {
        // The parent carries meshlet's decision, so the SDK's parent-based sampler follows it.
        const parentCtx = remote === undefined ? active : trace.setSpanContext(active, remoteSpanContext(remote, sampled));
        const name = decorator ?? this.#operations.get(m.localPort) ?? `${this.#o.workload.service}.${this.#o.workload.namespace}.svc.cluster.local:${m.localPort}/*`;
        const started = this.#start(name, SpanKind.SERVER, parentCtx, sampled, undefined);
        span = started.span;
        // Only a recorded span needs the request's end.
        if (started.recording) {
          this.#inbound.set(m.request, { span, recording: true, requestId });
          this.#recordedInbound++;
        }
        ctx = spanContextWith(parentCtx, span, REQUEST_ID, requestId);
      }
      this.#ids.keep(m.request, span);
      if (handOn) {
        const sc = span.spanContext();
        changed(m, injectForApp(h, { traceId: sc.traceId, spanId: sc.spanId, parentSpanId: remote?.spanId, sampled, traceState: sc.traceState?.serialize() }, this.#formats));
      }
    }
    this.#wrap(m, ctx);
  }

  /** Runs the rest of the request (admission, the app) inside `ctx`, around what other subscribers wrapped. */
  #wrap(m: InboundStartMessage, ctx: Context): void {
    const outer = m.wrap;
    m.wrap = <T>(fn: () => T): T => withActive(ctx, outer === undefined ? fn : () => outer(fn));
  }

  #onInboundEnd(m: InboundEndMessage): void {
    // While no recorded request is in flight (the usual case at 1 %), nothing to look up.
    if (m.workload !== this.#o.workload || this.#recordedInbound === 0) return;
    const st = this.#inbound.get(m.request);
    if (st === undefined) return;
    this.#inbound.delete(m.request);
    this.#recordedInbound--;
    if (!st.recording) return;
    const side = this.#server;
    endServerSpan(st.span, m, st.requestId, this.#common, side.spec.enableIstioTags ? this.#istio : undefined, side.tags);
  }

  // ── client side ──

  #onCallStart(m: CallStartMessage): void {
    if (m.workload !== this.#o.workload || !sdkRegistered()) return;
    const side = this.#client;
    const active = context.active();
    const h = m.headers as Headers;
    // Envoy generates x-request-id on the outbound HCM too; inside a handler, the request's own one travels on.
    let requestId = typeof h['x-request-id'] === 'string' ? h['x-request-id'] : undefined;
    if (requestId === undefined) {
      requestId = (active.getValue(REQUEST_ID) as string | undefined) ?? newRequestId();
      h['x-request-id'] = requestId;
    }
    const parent = trace.getSpanContext(active);
    // Outside any span: the headers the app set on the call, if any (it forwarded a context itself). The app's HTTP
    // client instrumentation's span for this call (written into its headers): the parent, as of a sidecar's span.
    const remote = parent === undefined || !trace.isSpanContextValid(parent) || hasAppContext(h) ? extract(h, this.#formats) : undefined;
    let parentCtx = remote === undefined ? active : trace.setSpanContext(active, remoteSpanContext(remote, remote.sampled === true));
    let parentSc = remote === undefined ? parent : trace.getSpanContext(parentCtx);
    if (side.spec.disabled) {
      // No span: the context the call is made in travels on, as the app's own headers would through a sidecar.
      if (parentSc !== undefined && trace.isSpanContextValid(parentSc) && !side.spec.disableContextPropagation) {
        inject(h, { traceId: parentSc.traceId, spanId: parentSc.spanId, parentSpanId: undefined, sampled: (parentSc.traceFlags & 1) === 1, traceState: parentSc.traceState?.serialize() }, this.#formats);
      }
      return;
    }
    const valid = parentSc !== undefined && trace.isSpanContextValid(parentSc);
    const sampled = this.#sampled(side.spec, remote !== undefined ? remote.sampled : valid ? ((parentSc?.traceFlags ?? 0) & 1) === 1 : undefined, h, this.#o.trustEnvoyRequestHeaders === true);
    if (!sampled) {
      // Unsampled (the usual case): no span and nothing kept for the call's end, only a context with the decision for the next hop.
      if (side.spec.disableContextPropagation) {
        // Envoy's span has ids all the same; drawn only when something reads them.
        if (this.#ids.on) this.#ids.keep(m.call, { traceId: valid ? (parentSc as SpanContext).traceId : newTraceId(), spanId: newSpanId() });
        return;
      }
      if (this.#w3cOnly && (!valid || parentSc?.traceState === undefined)) {
        // No tracestate to carry (a new trace, or the parent has none): what inject() would write, as one string.
        clearW3c(h);
        const tp = newUnsampledTraceparent(valid ? parentSc?.traceId : undefined);
        h.traceparent = tp;
        this.#ids.keep(m.call, tp);
        return;
      }
      const traceId = valid ? (parentSc as SpanContext).traceId : newTraceId();
      const spanId = newSpanId();
      inject(h, { traceId, spanId, parentSpanId: valid ? parentSc?.spanId : undefined, sampled: false, traceState: valid ? parentSc?.traceState?.serialize() : undefined }, this.#formats);
      // An object of its own only when something reads the ids (the usual unsampled call makes none).
      if (this.#ids.on) this.#ids.keep(m.call, { traceId, spanId });
      return;
    }
    if (remote !== undefined) {
      // The received context, flagged with the decision made here (the SDK's parent-based sampler follows it).
      parentCtx = trace.setSpanContext(active, remoteSpanContext(remote, sampled));
      parentSc = trace.getSpanContext(parentCtx);
    }
    const { span, recording } = this.#start(`${m.authority}/*`, SpanKind.CLIENT, parentCtx, sampled, undefined);
    this.#ids.keep(m.call, span);
    // Only a recorded span needs its call's later messages.
    if (recording) {
      (m.call as { attemptObserver?: AttemptObserver }).attemptObserver = this.#attempts;
      this.#calls.set(m.call, { span, recording, headers: h, requestId, attempts: new Map(), propagates: !side.spec.disableContextPropagation });
    }
    if (side.spec.disableContextPropagation) return;
    const sc = span.spanContext();
    inject(h, { traceId: sc.traceId, spanId: sc.spanId, parentSpanId: parentSc?.spanId, sampled: (sc.traceFlags & 1) === 1, traceState: sc.traceState?.serialize() }, this.#formats);
  }

  #onAttemptStart(m: AttemptStartMessage): void {
    if (m.workload !== this.#o.workload) return;
    const st = this.#calls.get(m.call);
    if (st === undefined || !st.recording) return;
    // Under the call's span only: an attempt may start from a connection's callback (a retry), whose context is another request's.
    const span = this.#tracer.startSpan(`router ${m.cluster} egress`, { kind: SpanKind.CLIENT }, trace.setSpan(ROOT_CONTEXT, st.span));
    st.attempts.set(m.attempt, span);
    if (!st.propagates) return;
    // As Envoy's upstream request (`span_->injectContext(...)`): what this attempt sends carries its own span, so the next
    // hop's server span is the child of the attempt that reached it (a retry's answer is not a sibling of the failed one).
    const sc = span.spanContext();
    const call = st.span.spanContext();
    if (!trace.isSpanContextValid(sc) || sc.spanId === call.spanId) return;
    inject((m.call as { headers: Headers }).headers, { traceId: sc.traceId, spanId: sc.spanId, parentSpanId: call.spanId, sampled: (sc.traceFlags & 1) === 1, traceState: sc.traceState?.serialize() }, this.#formats);
  }

  #onAttemptEnd(m: AttemptEndMessage): void {
    if (m.workload !== this.#o.workload) return;
    const st = this.#calls.get(m.call);
    const span = st?.attempts.get(m.attempt);
    if (st === undefined || span === undefined) return;
    st.attempts.delete(m.attempt);
    endAttemptSpan(span, m);
  }

  #onCallEnd(m: CallEndMessage): void {
    // Only a recorded call carries this tracer as its attempt observer: the unsampled one (kept nowhere) is not looked up.
    if (m.workload !== this.#o.workload || (m.call as { attemptObserver?: AttemptObserver }).attemptObserver !== this.#attempts) return;
    const st = this.#calls.get(m.call);
    if (st === undefined) return;
    this.#calls.delete(m.call);
    for (const s of st.attempts.values()) s.end();
    if (!st.recording) return;
    const side = this.#client;
    endClientSpan(st.span, m, st.headers, st.requestId, this.#o.sourceIp, this.#common, side.spec.enableIstioTags ? this.#istio : undefined, side.tags);
  }
}
