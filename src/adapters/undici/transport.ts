/**
 * The undici transport: one `Pool` per endpoint of a cluster (so least-request balancing,
 * outlier detection and circuit breaking see each endpoint), configured from the cluster's
 * connection-pool settings, plus an `Agent` for hosts outside the mesh.
 *
 * Keep-alive: with no `idleTimeout` in the DestinationRule, undici's defaults apply — idle
 * sockets close after 4 s, and a server's `Keep-Alive: timeout=N` hint is honoured minus 2 s
 * — so the client gives up an idle connection before a Node server (5 s) or a load balancer
 * would, instead of racing it (Istio's own 1 h default races Node servers; see
 * user-needs §8). An explicit `idleTimeout` is used as given.
 *
 * @module
 */
import { Agent, Pool } from 'undici';
import { bodyForAttempt } from '../../core/body.ts';
import type { Clock, Timer } from '../../core/clock.ts';
import { MeshletError } from '../../core/errors.ts';

/** Envoy's header with the time the caller still waits, in ms. */
const EXPECTED_TIMEOUT_HEADER = 'x-envoy-expected-rq-timeout-ms';
import type { Dispatch, Exchange } from '../../core/exchange.ts';
import type { ClusterState, ClusterTransport } from '../../outbound/cluster-state.ts';
import { UNLIMITED } from '../../policies/limits.ts';
import type { HostState } from '../../routing/balancer/host.ts';

/** The undici Pool options for a cluster, from its compiled connection-pool settings. */
export function poolOptions(cs: ClusterState): Pool.Options {
  const pool = cs.cluster.settings.connectionPool;
  const o: Pool.Options = { connectTimeout: pool.connectTimeoutMs };
  const maxConn = cs.limiter.limits.maxConnections;
  if (maxConn !== UNLIMITED) o.connections = maxConn;
  if (pool.idleTimeoutMs !== undefined) {
    o.keepAliveTimeout = pool.idleTimeoutMs;
    o.keepAliveMaxTimeout = pool.idleTimeoutMs;
  }
  if (pool.maxRequestsPerConnection !== undefined) o.maxRequestsPerClient = pool.maxRequestsPerConnection;
  if (cs.h2) {
    o.allowH2 = true;
    (o as { useH2c?: boolean }).useH2c = true;
    o.maxConcurrentStreams = pool.maxConcurrentStreams;
    o.pipelining = o.maxConcurrentStreams;
  } else o.allowH2 = false;
  return o;
}

function hostPart(address: string): string {
  return address.includes(':') && !address.startsWith('[') ? `[${address}]` : address;
}

/** The pools of one cluster, by endpoint. */
class ClusterPools implements ClusterTransport {
  // Keyed by the endpoint's state object: no string building per request.
  readonly #http = new Map<HostState, Pool>();
  readonly #https = new Map<HostState, Pool>();
  readonly options: Pool.Options;
  /** The name plain-HTTP attempts give undici as `servername` (see dispatchOptions). */
  readonly httpServername: string | undefined;
  readonly #clock: Clock;
  constructor(options: Pool.Options, serviceHost: string, clock: Clock) {
    this.#clock = clock;
    this.options = options;
    this.httpServername = serviceHost.startsWith('*') ? undefined : serviceHost;
  }
  get(host: HostState, scheme: string, servername: string): Pool {
    const m = scheme === 'https' ? this.#https : this.#http;
    let p = m.get(host);
    if (p === undefined) {
      // TLS to an endpoint address still names (SNI) and verifies the service's host.
      const opts = scheme === 'https' && !servername.startsWith('*') ? { ...this.options, connect: { servername } } : this.options;
      p = new Pool(`${scheme}://${hostPart(host.endpoint.address)}:${host.endpoint.port}`, opts);
      m.set(host, p);
    }
    return p;
  }
  removeHost(host: HostState): void {
    for (const m of [this.#http, this.#https]) {
      const p = m.get(host);
      if (p === undefined) continue;
      m.delete(host);
      // close() lets requests in flight finish first.
      void p.close().catch(() => undefined);
    }
  }
  /** Closes the pools: calls in flight may finish for `graceMs`, then they are cancelled. */
  async close(graceMs = Number.POSITIVE_INFINITY): Promise<void> {
    const pools = [...this.#http.values(), ...this.#https.values()];
    this.#http.clear();
    this.#https.clear();
    await closeWithin(pools, graceMs, this.#clock);
  }
}

/**
 * Closes dispatchers gracefully (calls in flight finish), but for at most `graceMs`: then what is
 * left is destroyed, and its callers get MESHLET_ERR_CLOSED (a call to a hung upstream on a route
 * without a timeout must not hold `mesh.close()` forever).
 */
async function closeWithin(dispatchers: readonly (Pool | Agent)[], graceMs: number, clock: Clock): Promise<void> {
  if (dispatchers.length === 0) return;
  const closing = Promise.all(dispatchers.map((d) => d.close().catch(() => undefined)));
  if (graceMs === Number.POSITIVE_INFINITY) {
    await closing;
    return;
  }
  let timer: Timer | undefined;
  // On the mesh clock, and keeping the process alive: the caller awaits close().
  const timedOut = await Promise.race([closing.then(() => false), new Promise<boolean>((r) => (timer = clock.setTimer(() => r(true), graceMs, true)))]);
  timer?.clear();
  if (!timedOut) return;
  const err = new MeshletError('MESHLET_ERR_CLOSED', `mesh.close(): the call was still running after closeTimeoutMs (${graceMs} ms) and was cancelled`);
  await Promise.all(dispatchers.map((d) => d.destroy(err).catch(() => undefined)));
}

/** The dispatch options undici needs for one attempt. */
function dispatchOptions(ex: Exchange, origin: string | undefined, httpServername?: string): Record<string, unknown> {
  ex.headers.host = ex.authority;
  // As Envoy's router: tell the upstream how long the caller still waits, so its own calls can
  // stop in time (meshlet's server side turns this into the request's MeshContext deadline).
  if (ex.deadline !== Number.POSITIVE_INFINITY && ex.clock !== undefined) ex.headers[EXPECTED_TIMEOUT_HEADER] = String(Math.max(1, Math.ceil(ex.deadline - ex.clock.now())));
  const src = ex.options as Record<string, unknown> | undefined;
  const o: Record<string, unknown> = { path: ex.path, method: ex.method, headers: ex.headers, body: bodyForAttempt(ex.body) };
  if (origin !== undefined) o.origin = origin;
  // Plain HTTP has no SNI; undici still derives a name from the Host header for every request
  // (a hostname parse and two IP regexes) and only uses it to label new connections. Give it
  // the service's host, what it would derive from an unrewritten Host header. TLS keeps
  // undici's derivation.
  else if (httpServername !== undefined && ex.scheme === 'http') o.servername = httpServername;
  if (src !== undefined) {
    if (src.headersTimeout !== undefined) o.headersTimeout = src.headersTimeout;
    if (src.bodyTimeout !== undefined) o.bodyTimeout = src.bodyTimeout;
    if (src.upgrade !== undefined) o.upgrade = src.upgrade;
    if (src.reset !== undefined) o.reset = src.reset;
    if (src.blocking !== undefined) o.blocking = src.blocking;
    if (src.idempotent !== undefined) o.idempotent = src.idempotent;
    if (src.expectContinue !== undefined) o.expectContinue = src.expectContinue;
  }
  return o;
}

/** The name of the undici transport: its slot in each cluster's state. */
const SLOT = 'http';

/** The undici side of a mesh: endpoint pools per cluster and a passthrough agent. */
export class UndiciTransport {
  readonly #agent = new Agent();
  readonly #clock: Clock;

  /** `clock`: the mesh clock (close()'s grace period runs on it). */
  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Sends an attempt to the endpoint the balance layer picked. */
  readonly dispatch: Dispatch = (ex, handler) => {
    const cs = ex.cluster as ClusterState;
    const host = ex.host as HostState | undefined;
    if (host === undefined) {
      // Resolution NONE / PASSTHROUGH: the original destination.
      this.passthrough(ex, handler);
      return;
    }
    // An HTTP call to an HTTP/2 upstream is an HTTP/2 call (telemetry's request_protocol).
    if (cs.h2 && ex.protocol === 'http1') ex.protocol = 'http2';
    let pools = cs.transports.get(SLOT)?.pools as ClusterPools | undefined;
    if (pools === undefined) {
      pools = new ClusterPools(poolOptions(cs), cs.cluster.host, this.#clock);
      cs.transports.set(SLOT, { pools, key: JSON.stringify(pools.options) });
    }
    pools.get(host, ex.scheme, cs.cluster.host).dispatch(dispatchOptions(ex, undefined, pools.httpServername) as never, handler as never);
  };

  /** Sends a request for a host outside the mesh, unchanged. */
  readonly passthrough: Dispatch = (ex, handler) => {
    // The original destination is the URL's, never the Host header's (which only chose the route).
    this.#agent.dispatch(dispatchOptions(ex, `${ex.scheme}://${ex.urlAuthority}`) as never, handler as never);
  };

  /** Rebuilds a cluster's pools when its connection settings changed (old pools drain). */
  refresh(cs: ClusterState): void {
    const t = cs.transports.get(SLOT);
    if (t === undefined) return;
    const next = poolOptions(cs);
    const key = JSON.stringify(next);
    if (key === t.key) return;
    cs.transports.set(SLOT, { pools: new ClusterPools(next, cs.cluster.host, this.#clock), key });
    void t.pools.close();
  }

  /** Closes the passthrough agent: calls in flight may finish for `graceMs`, then they are cancelled. */
  async close(graceMs = Number.POSITIVE_INFINITY): Promise<void> {
    await closeWithin([this.#agent], graceMs, this.#clock);
  }
}
