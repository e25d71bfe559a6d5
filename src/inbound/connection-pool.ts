/**
 * The `connection-pool` admission phase: the circuit breakers Istio sets on a sidecar's inbound
 * cluster (`inbound|<port>||`), so that the app behind it is given no more requests at once than
 * the configured `connectionPool` allows (`buildInboundCluster` in Istio's cluster_builder.go):
 *
 * 1. the DestinationRule of the workload's own service — the one without a `workloadSelector`
 *    (for inbound traffic Istio honours no selector), as the workload's namespace sees it — with
 *    its port-level settings for the service port that reaches the local port;
 * 2. overridden by the Sidecar that applies to the workload: the `ingress` listener whose
 *    `port.number` is the local port, when it sets a `connectionPool`, else `inboundConnectionPool`
 *    (`SidecarScope.InboundConnectionPoolForPort`).
 *
 * The limits are Envoy's circuit breakers as the outbound side enforces them
 * ({@link RequestLimiter}, {@link poolLimits}): with HTTP/1.1 to the app each request holds a
 * connection, so at most min(`maxConnections`, `http2MaxRequests`) requests are in flight (gRPC:
 * `http2MaxRequests`). Up to `http1MaxPendingRequests` more wait for a slot, oldest first — only
 * while it is a connection that is missing: at `http2MaxRequests` nothing waits, as Envoy checks
 * `max_requests` when it attaches a request, so a gRPC call never waits. Beyond that a request
 * overflows — 503, `x-envoy-overloaded: true`, Envoy's body
 * `upstream connect error or disconnect/reset before headers. reset reason: overflow`, response
 * flag `UO`; UNAVAILABLE for gRPC callers. Istio's defaults (2^32−1) limit nothing: with no
 * setting the phase is not built and costs nothing.
 *
 * The phase is the last one, as Envoy's router (where the breaker is) comes after its jwt, RBAC
 * and rate-limit filters: a refused request never takes a slot. An admitted request holds its
 * slot ({@link InboundRequest.slot}) until the adapter releases it — the response ended or the
 * caller went away; a waiting request whose caller goes away leaves the queue.
 *
 * Limiters belong to the mesh (one per inbound port and protocol, shared by every server it
 * guards) and are kept across config reloads: new limits apply to the same counters, so
 * requests in flight are still counted; a request judged under the config before a reload (it
 * waited on an earlier phase) counts on them too, under the newest limits.
 *
 * @module
 */
import type { AnyResource } from '../config/resource.ts';
import { channels, type PoolOverflowMessage, type WorkloadIdentity } from '../core/observe.ts';
import type { RequestLimiter, SlotWaiter } from '../policies/limits.ts';
import { CompiledInboundPools, type InboundPoolWorkload } from './connection-pool-compile.ts';
import type { Denial, InboundRequest, Phase, PhaseResult, PoolSlot } from './pipeline.ts';

export { CompiledInboundPools, type InboundPoolCounters, type InboundPoolWorkload, type InboundPortPool } from './connection-pool-compile.ts';

/** Envoy's response flag for a circuit-breaker overflow. */
export const OVERFLOW_FLAG = 'UO';

/** Envoy's body (and gRPC message) for an overflow. */
export const OVERFLOW_BODY = 'upstream connect error or disconnect/reset before headers. reset reason: overflow';

/** Envoy's header on an overflow answer. */
export const OVERLOADED_HEADER = 'x-envoy-overloaded';

/** Envoy's `%RESPONSE_CODE_DETAILS%` for an overflow. */
export const OVERFLOW_DETAILS = 'upstream_reset_before_response_started{overflow}';

/** A request's hold on a slot, or its place in the queue. */
class Slot implements SlotWaiter, PoolSlot {
  readonly #limiter: RequestLimiter;
  readonly #req: InboundRequest;
  /** 0 waiting, 1 holding, 2 done. */
  #state: 0 | 1 | 2 = 0;
  #resolve: ((r: PhaseResult) => void) | undefined;

  constructor(limiter: RequestLimiter, req: InboundRequest) {
    this.#limiter = limiter;
    this.#req = req;
  }

  /** Taken at once. */
  hold(): void {
    this.#state = 1;
  }

  /** Queued: settles when a slot is granted (or the caller went away). */
  wait(): Promise<PhaseResult> {
    return new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  grant(): void {
    if (this.#state !== 0) return;
    if (this.#req.alive?.() === false) {
      // The caller is gone (its connection closed with another's, its close not seen yet): the
      // slot goes on to the next waiter, the request to nobody.
      this.#state = 2;
      this.#limiter.release();
      this.#resolve?.(GONE_DENIAL);
      return;
    }
    this.#state = 1;
    this.#resolve?.(undefined);
  }

  release(): void {
    const s = this.#state;
    this.#state = 2;
    if (s === 1) this.#limiter.release();
    else if (s === 0) {
      this.#limiter.cancel(this);
      this.#resolve?.(GONE_DENIAL);
    }
  }
}

/** What a request that waited for a slot and whose caller went away gets (nobody reads it). */
const GONE_DENIAL: Denial = Object.freeze({ status: 503, grpcStatus: 1, body: 'downstream disconnected', reason: 'the caller went away while waiting for a slot', phase: 'connection-pool' });

/** Whether `d` is what a request whose caller went away while it waited gets: the adapter answers nobody. */
export function callerGone(d: Denial): boolean {
  return d === GONE_DENIAL;
}

/** Marks a request whose caller went away before the connection-pool phase ran. */
const GONE: PoolSlot = Object.freeze({ release(): void {} });

/**
 * Releases the slot of `req` (or takes it out of the queue); on a request the phase has not seen
 * yet, makes the phase let it go without a slot. Idempotent.
 */
export function releaseSlot(req: InboundRequest): void {
  const s = req.slot;
  if (s === undefined) req.slot = GONE;
  else s.release();
}

/**
 * A refusal by the connection-pool phase: a {@link Denial} that also names Envoy's response flag.
 * @category Inbound
 */
export interface PoolOverflowDenial extends Denial {
  readonly phase: 'connection-pool';
  /** `UO`. */
  readonly flag: typeof OVERFLOW_FLAG;
}

const OVERFLOW_HEADERS = Object.freeze({ [OVERLOADED_HEADER]: 'true' });

/**
 * `d` as the mesh answers it with Istio's `proxyHeaders.envoyDebugHeaders` disabled: an overflow
 * without `x-envoy-overloaded`, as Envoy's inbound router leaves it out under `suppress_envoy_headers`.
 */
export function withoutEnvoyHeaders(d: Denial): Denial {
  return d.headers === OVERFLOW_HEADERS ? { ...d, headers: undefined } : d;
}

/** The phase over one config's pools. */
export class InboundPoolPhase implements Phase {
  readonly name = 'connection-pool' as const;
  readonly pools: CompiledInboundPools;
  /** The mesh's workload, named in the overflows it publishes. */
  readonly #workload: WorkloadIdentity | undefined;

  constructor(pools: CompiledInboundPools, workload?: WorkloadIdentity) {
    this.pools = pools;
    this.#workload = workload;
  }

  run(req: InboundRequest): PhaseResult | Promise<PhaseResult> {
    if (req.slot === GONE) return GONE_DENIAL;
    const l = this.pools.limiter(req.localPort, req.protocol === 'grpc');
    if (l === undefined) return undefined;
    const slot = new Slot(l, req);
    const r = l.acquire(slot);
    if (r === 'go') {
      slot.hold();
      req.slot = slot;
      return undefined;
    }
    if (r === 'queued') {
      req.slot = slot;
      return slot.wait();
    }
    const cluster = `inbound|${req.localPort}||`;
    const ch = channels.poolOverflow;
    if (ch.hasSubscribers) ch.publish({ workload: this.#workload, call: req, cluster, active: l.active, pending: l.pending } satisfies PoolOverflowMessage);
    const d: PoolOverflowDenial = {
      status: 503,
      grpcStatus: 14,
      body: OVERFLOW_BODY,
      headers: OVERFLOW_HEADERS,
      reason: `${cluster} overflow: ${l}`,
      phase: 'connection-pool',
      flag: OVERFLOW_FLAG,
    };
    return d;
  }

  toString(): string {
    return `connection-pool: ${this.pools}`;
  }
}

/**
 * The connection-pool phase of `resources` for `workload`, or undefined when nothing limits its
 * inbound requests; `previous` (the phase or pools of the config before) hands over its limiters;
 * `identity` (the mesh's) is named in the overflows published on `meshlet:pool:overflow`.
 */
export function compileInboundPool(
  resources: readonly AnyResource[],
  workload: InboundPoolWorkload,
  rootNamespace: string,
  previous?: CompiledInboundPools,
  identity?: WorkloadIdentity,
): { readonly pools: CompiledInboundPools; readonly phase: InboundPoolPhase | undefined } {
  const pools = new CompiledInboundPools(resources, workload, rootNamespace, previous);
  return { pools, phase: pools.canLimit ? new InboundPoolPhase(pools, identity) : undefined };
}

