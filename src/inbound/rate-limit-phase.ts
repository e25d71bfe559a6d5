/**
 * The `rate-limit` admission phase: Envoy's local rate limit filter
 * (`envoy.filters.http.local_ratelimit`) as the EnvoyFilters of Istio's rate-limit task put it
 * on a sidecar's inbound side. The filters active on the port a request arrived on
 * (`rate-limit-compile.ts`) decide it as Envoy does (`policies/rate-limit/run-filters.ts`, shared
 * with the outbound side); a refusal is a {@link RateLimitDenial} (429 or the configured status,
 * body `local_rate_limited`, flag `RL`). Adapters take the `x-ratelimit-*` headers of admitted
 * requests from {@link rateLimitResponseHeaders}.
 *
 * Each filter runs where its EnvoyFilter puts it in Istio's inbound chain: before `ext_authz`,
 * `jwt_authn` or `rbac` (`INSERT_FIRST`, `INSERT_BEFORE` without a sub-filter or next to one of
 * them), or after them all (`INSERT_BEFORE envoy.filters.http.router`). {@link RateLimitPhase.phases}
 * gives one admission phase per place in use, each running that place's filters over the same
 * buckets, counters and draws — one engine, split only by where it runs.
 *
 * Buckets belong to the mesh (one set per workload, shared by every server it guards, per
 * inbound port as Envoy has one filter chain per port) and are kept across config reloads when
 * their settings do not change (`previous`).
 *
 * @module
 */
import type { Clock, Random } from '../core/clock.ts';
import { systemRandom } from '../core/clock.ts';
import type { AnyResource } from '../config/resource.ts';
import type { RateLimitRequest, RateLimitSite } from '../policies/rate-limit/descriptors.ts';
import { LocalRateLimiter } from '../policies/rate-limit/local-rate-limiter.ts';
import type { LocalRateLimitSettings } from '../config/types/local-rate-limit.ts';
import { RATE_LIMITED_BODY, RATE_LIMITED_FLAG, type RateLimitRefusal, RateLimitRunner, type RateLimitStats, type RunNotes } from '../policies/rate-limit/run-filters.ts';
import type { RateLimitServiceClient } from '../policies/rate-limit/rls-client.ts';
import type { AdmissionGate } from '../policies/rate-limit/envoy-filters.ts';
import type { Denial, InboundRequest, Phase, PhaseName, PhaseResult } from './pipeline.ts';
import { type ActiveFilter, CompiledRateLimits, type RateLimitWorkload } from './rate-limit-compile.ts';

export type { RateLimitWorkload } from './rate-limit-compile.ts';
export { RATE_LIMITED_BODY, RATE_LIMITED_FLAG } from '../policies/rate-limit/run-filters.ts';
export type { RateLimitStats } from '../policies/rate-limit/run-filters.ts';

/**
 * A refusal by the rate-limit phase: a {@link Denial} that also names Envoy's response flag.
 * @category Inbound
 */
export interface RateLimitDenial extends Denial {
  readonly phase: 'rate-limit';
  /** `RL`, or `RLSE` (a global filter's rate limit service failed, with `failure_mode_deny`). */
  readonly flag: typeof RATE_LIMITED_FLAG | 'RLSE';
}

/**
 * Options of {@link compileRateLimit}.
 * @category Inbound
 */
export interface RateLimitOptions {
  /** Draws for `filter_enabled` / `filter_enforced` percentages. @defaultValue the system random */
  readonly random?: Random;
  /** The phase of the config before; its buckets are kept where their settings did not change. */
  readonly previous?: RateLimitPhase;
  /** Calls the rate limit services of global rate limit filters (`envoy.filters.http.ratelimit`). @defaultValue none: every call fails */
  readonly rls?: RateLimitServiceClient;
}

const responseHeaders = new WeakMap<InboundRequest, Record<string, string>>();

/**
 * The `x-ratelimit-*` headers to add to the response of an admitted request (filters with
 * `enable_x_ratelimit_headers: DRAFT_VERSION_03`), or undefined.
 * @category Inbound
 */
export function rateLimitResponseHeaders(req: InboundRequest): Readonly<Record<string, string>> | undefined {
  return responseHeaders.get(req);
}

/** How many `port/tls` keys of the config before a new phase builds up front at most. */
const MAX_CARRIED_PORTS = 1024;

/** The admission phase each of Istio's admission filters is (a filter before it runs just before that phase). */
export const GATE_PHASES: Readonly<Record<AdmissionGate, PhaseName>> = Object.freeze({ ext_authz: 'ext-authz', jwt_authn: 'jwt', rbac: 'authorization' });

/** The places filters run at, in order: before each admission filter, then after them all. */
const PLACES: readonly (AdmissionGate | undefined)[] = ['ext_authz', 'jwt_authn', 'rbac', undefined];

/** A port's active filters: all of them in chain order, and those of each place. */
interface Plan {
  readonly all: readonly ActiveFilter[];
  readonly at: ReadonlyMap<AdmissionGate | undefined, readonly ActiveFilter[]>;
  /** The port's clusters for descriptors (made once per port, not per request). */
  readonly site: () => RateLimitSite;
}

const NO_FILTERS: readonly ActiveFilter[] = [];

/** Connections without an object to key on (a grpc-js listener the mesh did not make) remembered by address, at most. */
const MAX_ADDRESSED_CONNECTIONS = 4096;

/** One connection's limiter, and the config generation (the phase) it was made for. */
interface ConnectionLimiter {
  generation: object;
  limiter: LocalRateLimiter;
}

/**
 * The limiters of configs with buckets per downstream connection: Envoy keeps one per connection
 * (`per_connection_local_rate_limiter` in the connection's filter state), made from the first
 * config that asks for one on it. A new config (a reload) makes the connection's limiter again
 * from its own settings — keeping the buckets whose settings did not change — so that a
 * tightened limit reaches connections already open (Envoy drains a listener's connections when
 * its filter chain changes; new ones get the new limiter). Within one config, the first filter
 * that asks makes it, as in Envoy.
 */
class PerConnectionLimiters {
  readonly #byConnection = new WeakMap<object, ConnectionLimiter>();
  /** By `address|port|local port`, most recent last; only for requests whose adapter knows no connection object. */
  readonly #byAddress = new Map<string, ConnectionLimiter>();

  /** The connection's limiter, or undefined when the request's connection cannot be told apart (no object, no address: the filter's own limiter is used). */
  of(req: InboundRequest, config: LocalRateLimitSettings, clock: Clock, generation: object): LocalRateLimiter | undefined {
    const conn = req.connection;
    if (conn !== undefined) {
      const e = this.#byConnection.get(conn);
      if (e === undefined) {
        this.#byConnection.set(conn, { generation, limiter: new LocalRateLimiter(config, clock) });
        return (this.#byConnection.get(conn) as ConnectionLimiter).limiter;
      }
      return current(e, config, clock, generation);
    }
    // Without an address and port, clients cannot be told apart: never one bucket shared by several.
    if (req.remoteAddress === undefined || req.remoteAddress === '' || !(req.remotePort > 0)) return undefined;
    const key = `${req.remoteAddress}|${req.remotePort}|${req.localPort}`;
    let e = this.#byAddress.get(key);
    if (e === undefined) {
      e = { generation, limiter: new LocalRateLimiter(config, clock) };
      if (this.#byAddress.size >= MAX_ADDRESSED_CONNECTIONS) this.#byAddress.delete(this.#byAddress.keys().next().value as string);
    } else {
      this.#byAddress.delete(key);
    }
    this.#byAddress.set(key, e);
    return current(e, config, clock, generation);
  }
}

/** The entry's limiter for this config generation (made again from `config` after a reload, its unchanged buckets kept). */
function current(e: ConnectionLimiter, config: LocalRateLimitSettings, clock: Clock, generation: object): LocalRateLimiter {
  if (e.generation !== generation) {
    e.limiter = new LocalRateLimiter(config, clock, e.limiter);
    e.generation = generation;
  }
  return e.limiter;
}

/** {@link verdict} once a global filter's rate limit service answered (a function of its own: a closure in the caller, even one never made, would make V8 allocate what it captures on every call). */
function verdictLater(req: InboundRequest, r: Promise<{ readonly refusal: RateLimitRefusal | undefined; readonly notes: RunNotes }>): Promise<PhaseResult> {
  return r.then((v) => verdict(req, v.refusal, v.notes));
}

/** A run's verdict for the request: its denial, or undefined with the request's changes and response headers noted. */
function verdict(req: InboundRequest, refusal: RateLimitRefusal | undefined, notes: RunNotes): PhaseResult {
  if (notes.headersChanged) req.headersChanged = true;
  // x-ratelimit-* headers of filters that ran at an earlier place (a later filter's replace them).
  const earlier = responseHeaders.get(req);
  if (refusal !== undefined) {
    const headers = earlier === undefined ? refusal.headers : { ...earlier, ...refusal.headers };
    const denial: RateLimitDenial = { ...refusal, headers, body: refusal.body ?? RATE_LIMITED_BODY, phase: 'rate-limit', flag: refusal.flag ?? RATE_LIMITED_FLAG };
    return denial;
  }
  if (notes.xHeaders !== undefined) responseHeaders.set(req, earlier === undefined ? notes.xHeaders : { ...earlier, ...notes.xHeaders });
  return undefined;
}

/**
 * The rate-limit phase of one workload. As a {@link Phase} it runs every filter of the request's
 * port at one place; a mesh adds {@link RateLimitPhase.phases} instead, which run each filter
 * where Envoy's chain has it.
 * @category Inbound
 */
export class RateLimitPhase implements Phase {
  readonly name = 'rate-limit' as const;
  readonly #compiled: CompiledRateLimits;
  readonly #runner: RateLimitRunner;
  /** Active filters by local port, plaintext and mTLS, built on the first request to a port (ports the services name are built up front). */
  readonly #raw = new Map<number, Plan>();
  readonly #tls = new Map<number, Plan>();
  readonly #notes: RunNotes = { xHeaders: undefined, headersChanged: false };
  readonly #places: readonly (AdmissionGate | undefined)[];
  readonly #clock: Clock;
  readonly #perConnection: PerConnectionLimiters;

  /** Use {@link compileRateLimit}. */
  constructor(compiled: CompiledRateLimits, random: Random, warmPorts: Iterable<string>, clock: Clock, previous?: RateLimitPhase, rls?: RateLimitServiceClient) {
    this.#compiled = compiled;
    this.#runner = new RateLimitRunner(random, rls, previous === undefined ? undefined : previous.#runner);
    // Envoy's cluster is there before the first request: the services are made ready now, not by it.
    rls?.warm(compiled.globalTargets);
    this.#clock = clock;
    // A connection's buckets live as long as it does, config reloads or not (Envoy's filter state).
    this.#perConnection = previous === undefined ? new PerConnectionLimiters() : previous.#perConnection;
    const used = compiled.gates();
    this.#places = PLACES.filter((g) => used.has(g));
    for (const key of warmPorts) {
      const [port, tls] = key.split('/');
      this.#plan(Number(port), tls === 'tls');
    }
  }

  #plan(port: number, tls: boolean): Plan {
    const plans = tls ? this.#tls : this.#raw;
    let p = plans.get(port);
    if (p === undefined) {
      const all = this.#compiled.forPort(port, tls);
      const at = new Map<AdmissionGate | undefined, ActiveFilter[]>();
      for (const f of all) {
        const list = at.get(f.gate);
        if (list === undefined) at.set(f.gate, [f]);
        else list.push(f);
      }
      const site: RateLimitSite = { sourceCluster: this.#compiled.sourceCluster, destinationCluster: `inbound|${port}||` };
      p = { all, at, site: () => site };
      plans.set(port, p);
    }
    return p;
  }

  /** Runs every active filter of the request's port, in chain order. */
  run(req: InboundRequest): PhaseResult | Promise<PhaseResult> {
    const plan = this.#plan(req.localPort, req.scheme === 'https');
    return this.#runFilters(plan.all, plan, req);
  }

  readonly #connectionLimiter = (config: LocalRateLimitSettings, req: RateLimitRequest): LocalRateLimiter | undefined => this.#perConnection.of(req as InboundRequest, config, this.#clock, this);

  #runFilters(filters: readonly ActiveFilter[], plan: Plan, req: InboundRequest): PhaseResult | Promise<PhaseResult> {
    if (filters.length === 0) return undefined;
    const notes = this.#notes;
    const r = this.#runner.run(filters, req, plan.site, notes, this.#connectionLimiter, req.signal);
    // A global filter asked its rate limit service: the verdict (and its notes) come with the answer.
    if (r instanceof Promise) return verdictLater(req, r);
    return verdict(req, r, notes);
  }

  /**
   * The admission phases to run, in order: one per place the workload's filters sit at — just
   * before `ext-authz`, `jwt` or `authorization` (the phase's `before`), or after authorization
   * (no `before`) — each running the filters of the request's port that sit there.
   */
  phases(): Phase[] {
    return this.#places.map((gate) => {
      const run = (req: InboundRequest): PhaseResult | Promise<PhaseResult> => {
        const plan = this.#plan(req.localPort, req.scheme === 'https');
        return this.#runFilters(plan.at.get(gate) ?? NO_FILTERS, plan, req);
      };
      return gate === undefined ? { name: 'rate-limit', run } : { name: 'rate-limit', before: GATE_PHASES[gate], run };
    });
  }

  /** Envoy-style counters per `stat_prefix`. */
  get stats(): ReadonlyMap<string, Readonly<RateLimitStats>> {
    return this.#runner.stats;
  }

  /** The active filters of a port, in chain order, for `meshlet routes`-style explanations. */
  filtersFor(localPort: number, tls = false): readonly ActiveFilter[] {
    return this.#plan(localPort, tls).all;
  }

  /**
   * What meshlet cannot place as Envoy does, one line each: a filter `INSERT_AFTER
   * envoy.filters.http.rbac` that lands between two of the RBAC filters istiod builds per action.
   */
  get approximations(): string[] {
    return this.#compiled.betweenRbac.map(
      (source) =>
        `meshlet: ${source}: istiod puts this local rate limit filter between two of the RBAC filters it builds for AUDIT, DENY and ALLOW policies (after the first); meshlet judges them in one step and runs the filter after it, so a request the later RBAC filter (ALLOW) denies takes no token here, where in Envoy it takes one. Insert it before envoy.filters.http.jwt_authn or envoy.filters.http.router to have both agree`,
    );
  }

  /** The sidecar's service cluster the filters' descriptors name (`source_cluster`). */
  get sourceCluster(): string {
    return this.#compiled.sourceCluster;
  }

  /** @internal The limiters, for the next config's phase to keep. */
  get limiters(): ReadonlyMap<string, LocalRateLimiter> {
    return this.#compiled.limiters;
  }

  /** @internal The `port/tls` keys requests have reached, for the next config's phase to build up front. */
  get portKeys(): string[] {
    return [...[...this.#raw.keys()].map((p) => `${p}/raw`), ...[...this.#tls.keys()].map((p) => `${p}/tls`)];
  }

  toString(): string {
    const lines = [`rate-limit phase (${this.#compiled.sourceCluster})`];
    for (const [tls, plans] of [['plaintext', this.#raw], ['mTLS', this.#tls]] as const) {
      for (const [port, plan] of plans) for (const f of plan.all) lines.push(`  port ${port} (${tls}): ${f.name} from ${f.source}${f.gate === undefined ? '' : ` (before ${f.gate})`}: ${f.limiter}`);
    }
    return lines.join('\n');
  }
}

/**
 * Compiles the local rate limits of `resources` (their local rate limit EnvoyFilters) for the
 * inbound side of `workload`: the rate-limit admission phase, or undefined when no rate limit
 * filter that can limit anything applies to it. `rootNamespace` holds the mesh-wide EnvoyFilters (Istio's default:
 * `istio-system`). Buckets run on `clock`.
 * @category Inbound
 */
export function compileRateLimit(
  resources: readonly AnyResource[],
  workload: RateLimitWorkload,
  rootNamespace: string,
  clock: Clock,
  options: RateLimitOptions = {},
): RateLimitPhase | undefined {
  const compiled = new CompiledRateLimits(resources, workload, rootNamespace, clock, options.previous?.limiters);
  if (!compiled.canLimit) return undefined;
  const warm = new Set<string>();
  for (const p of compiled.knownPorts) for (const t of ['raw', 'tls']) warm.add(`${p}/${t}`);
  // Ports requests reached before (bounded: inbound requests arrive on the workload's listeners only;
  // limiters of ports not carried over are dropped with the config before).
  if (options.previous !== undefined) for (const k of options.previous.portKeys.slice(0, MAX_CARRIED_PORTS)) warm.add(k);
  return new RateLimitPhase(compiled, options.random ?? systemRandom, warm, clock, options.previous, options.rls);
}
