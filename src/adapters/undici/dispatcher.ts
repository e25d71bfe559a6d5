/**
 * `mesh.dispatcher`: an undici `Dispatcher` that sends every request through the mesh's
 * outbound pipeline. It works with `undici.request/stream/pipeline`, `undici.fetch`
 * (`mesh.fetch` uses it) and — only if the application asks — `setGlobalDispatcher`.
 *
 * The adapter only translates: undici dispatch options become an {@link Exchange} (header
 * names lower-cased into an object the exchange owns; a streamed body wrapped so retries can
 * replay it under a cap), and the caller's handler receives the exchange as its controller.
 *
 * @module
 */
// A namespace import: a named one would fail to link on a Node without it, before meshlet's own version check can say so.
import * as threads from 'node:worker_threads';
import { Dispatcher } from 'undici';
import { ReplayableBody } from '../../core/body.ts';
import { callBody } from '../../core/call-body.ts';
import type { Clock } from '../../core/clock.ts';
import { InvalidArgumentError } from '../../core/errors.ts';
import { isGrpcContentType } from '../../core/classify.ts';
import type { ErrorMode, Exchange } from '../../core/exchange.ts';
import type { Dispatch } from '../../core/layer.ts';
import { NO_CONTROLLER } from '../../core/exchange.ts';
import type { WorkloadIdentity } from '../../core/observe.ts';
import { UndiciExchange } from './exchange.ts';
import { normalizeHeaders } from '../../core/headers.ts';
import { outboundRequestId } from '../../telemetry/request-id.ts';
import { toResponseHandler } from './legacy-handler.ts';
import { appRequestsObserved, PublishingHandler, publishAppRequest } from './app-request.ts';

interface ParsedOrigin {
  readonly scheme: string;
  readonly authority: string;
}

const originCache = new Map<string, ParsedOrigin>();

function parseOrigin(origin: unknown): ParsedOrigin {
  const key = typeof origin === 'string' ? origin : origin instanceof URL ? origin.origin : undefined;
  if (key === undefined) throw new InvalidArgumentError('mesh.dispatcher: the request has no origin (pass a full URL, e.g. http://reviews:9080/)');
  const hit = originCache.get(key);
  if (hit !== undefined) return hit;
  const u = new URL(key);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new InvalidArgumentError(`mesh.dispatcher: unsupported protocol ${u.protocol} in ${key}`);
  const parsed = Object.freeze({ scheme: u.protocol.slice(0, -1), authority: u.host });
  if (originCache.size > 10_000) originCache.clear();
  originCache.set(key, parsed);
  return parsed;
}

function withQuery(path: string, query: unknown): string {
  if (query == null || typeof query !== 'object') return path;
  const qs = new URLSearchParams(query as Record<string, string>).toString();
  if (qs === '') return path;
  return `${path}${path.includes('?') ? '&' : '?'}${qs}`;
}

/** What the dispatcher needs from the mesh. */
export interface MeshDispatcherOptions {
  readonly clock: Clock;
  readonly errors: ErrorMode;
  /** Largest streamed request body kept for replay by retries. */
  readonly retryBufferBytes: number;
  /** The mesh's workload (named in observation messages). */
  readonly workload?: WorkloadIdentity;
  /** A call without `x-request-id` gets a new one (Istio's `proxyHeaders.requestId` not disabled). @defaultValue true */
  readonly requestId?: boolean;
  /** Responses get `x-envoy-upstream-service-time`, overflow answers `x-envoy-overloaded` (Istio's `proxyHeaders.envoyDebugHeaders` not disabled). @defaultValue true */
  readonly envoyHeaders?: boolean;
  /** The pipeline. */
  pipeline(): Dispatch;
  /** Called by close()/destroy(): the mesh decides what closing means. */
  onClose(): Promise<void>;
}

/**
 * The mesh as an undici Dispatcher.
 * @category Mesh
 */
export class MeshDispatcher extends Dispatcher {
  readonly #o: MeshDispatcherOptions;
  #closed = false;

  /** @internal the mesh makes its dispatcher. */
  constructor(o: MeshDispatcherOptions) {
    super();
    this.#o = o;
    // A mesh lives in one thread. Structured clone would copy the dispatcher into another thread (new
    // Worker's workerData, postMessage) as a plain object without `dispatch`, which fails there far
    // from the cause (`this.dispatch is not a function`); refused where it is sent instead: DataCloneError.
    threads.markAsUncloneable(this);
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    // Node's built-in fetch and undici 7 pass handlers of undici's older API; an invalid
    // handler throws here, as undici's own dispatchers do.
    let h = toResponseHandler(handler);
    let ex: Exchange;
    try {
      if (this.#closed) throw new InvalidArgumentError('mesh.dispatcher: the mesh is closed');
      const { scheme, authority } = parseOrigin(opts.origin);
      const headers = normalizeHeaders(opts.headers);
      // Envoy's connection manager takes the app's proxy-connection off what it forwards (undici
      // refuses keep-alive, transfer-encoding and upgrade itself; connection is undici's to act on).
      if (headers['proxy-connection'] !== undefined) delete headers['proxy-connection'];
      const path = opts.query === undefined ? opts.path : withQuery(opts.path, opts.query);
      // The app's request as undici would publish it (an instrumentation's span for it, its context in the headers).
      if (appRequestsObserved()) h = new PublishingHandler(h, publishAppRequest(`${scheme}://${authority}`, opts.method ?? 'GET', path, headers));
      outboundRequestId(headers, this.#o.requestId !== false);
      const hostHeader = headers.host;
      const auth = typeof hostHeader === 'string' && hostHeader !== '' ? hostHeader : authority;
      // Strings and bytes as they are; streams, iterables and Blobs recorded for retries and mirrors.
      const body = callBody(opts.body, headers, this.#o.retryBufferBytes);
      const protocol = isGrpcContentType(headers['content-type']) ? 'grpc' : 'http1';
      const ux = new UndiciExchange(h, this.#o.errors, this.#o.clock.now(), opts.method ?? 'GET', scheme, auth, path, headers, body, opts, protocol, 'http');
      ex = ux;
      ex.urlAuthority = authority;
      ex.workload = this.#o.workload;
      ex.clock = this.#o.clock;
      ux.envoyHeaders = this.#o.envoyHeaders !== false;
      if (ux.envoyHeaders) {
        // Envoy's request-complete time: now, or when a streamed body has been read to its end.
        if (body instanceof ReplayableBody && body.deferUntilSent(ux)) ux.requestCompleteAt = -1;
        else ux.requestCompleteAt = ux.startedAt;
      }
    } catch (err) {
      queueMicrotask(() => h.onResponseError?.(NO_CONTROLLER, err as Error));
      return true;
    }
    ex.begin();
    if (ex.aborted) {
      ex.onResponseError(ex, ex.reason as Error);
      return true;
    }
    try {
      this.#o.pipeline()(ex, ex);
    } catch (err) {
      // A layer that threw (a bug, or an injected Clock/Random that throws): the call ends with
      // that error, so what it holds (its cluster's count, telemetry) is let go of.
      if (!ex.done) ex.onResponseError(ex, err as Error);
    }
    return true;
  }

  /** @internal From now on, calls are refused (`mesh.close()`, once its servers have drained). */
  refuseNewCalls(): void {
    this.#closed = true;
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | undefined {
    this.#closed = true;
    const p = this.#o.onClose();
    if (callback !== undefined) {
      void p.then(callback, callback);
      return undefined;
    }
    return p;
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(a?: unknown, b?: unknown): Promise<void> | undefined {
    const cb = typeof a === 'function' ? (a as () => void) : typeof b === 'function' ? (b as () => void) : undefined;
    if (cb === undefined) return this.close();
    this.close(cb);
    return undefined;
  }
}
