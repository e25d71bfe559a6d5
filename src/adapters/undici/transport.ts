/**
 * The undici transport: one `Pool` per endpoint of a cluster (so least-request balancing,
 * outlier detection and circuit breaking see each endpoint), configured from the cluster's
 * connection-pool settings, plus an `Agent` for hosts outside the mesh.
 *
 * Keep-alive: with no `idleTimeout` in the DestinationRule, undici's defaults apply — idle sockets close after 4 s, and a
 * server's `Keep-Alive: timeout=N` hint is honoured minus 2 s — so the client gives up an idle connection before a Node
 * server (5 s) or a load balancer would, instead of racing it (Istio's own 1 h default races Node servers; see user-needs
 * §8). An explicit `idleTimeout` caps the idle time; a server's shorter hint (minus 2 s) still wins.
 *
 * @module
 */
import { type Agent, Pool } from 'undici';
import type { Clock } from '../../core/clock.ts';
import { formatHostPort } from '../../core/host-port.ts';
import type { AnyResource } from '../../config/resource.ts';
import type { ClientTlsDecision } from '../../outbound/tls-decision.ts';
import { CredentialHolder } from '../../security/identity/credentials.ts';
import type { TlsFiles } from '../../security/tls-files.ts';
import { keepaliveConnector } from '../keepalive.ts';
import { closeWithin, trackedAgent } from './close-within.ts';
import { clockedConnector } from './clocked-connector.ts';
import { dispatchOptions, fail } from './dispatch-options.ts';
import { CertificateRefusalHandler, sniOfAuthority, tlsConnector } from './tls-connector.ts';
import { dispatchUntraced, upstreamClient } from './untraced.ts';
import { observedPool } from './pool-events.ts';
import { type ClientTlsOptions, ClusterTlsPlans, TlsEnvironment } from './tls-plans.ts';

import type { Exchange } from '../../core/exchange.ts';
import type { Dispatch } from '../../core/layer.ts';
import type { ClusterState, ClusterTransport } from '../../outbound/cluster-state.ts';
import { UNLIMITED } from '../../policies/limits.ts';
import type { HostState } from '../../routing/balancer/host.ts';
import { DEFAULT_CONNECT_TIMEOUT_MS, type TcpKeepalive } from '../../routing/cluster-settings.ts';

/** The undici Pool options for a cluster, from its compiled connection-pool settings. */
export function poolOptions(cs: ClusterState): Pool.Options {
  const pool = cs.cluster.settings.connectionPool;
  // The connectors run outside the suppressed context the mesh's requests are handed over in (untraced.ts).
  // No headersTimeout/bodyTimeout of undici's (300 s each): a sidecar has no stream idle timeout (Istio sets the HCM's
  // stream_idle_timeout to 0) and a route without `timeout` none either; a caller's own still applies per request.
  const o: Pool.Options = { connectTimeout: cs.connectTimeoutMs, factory: upstreamClient, headersTimeout: 0, bodyTimeout: 0 };
  const maxConn = cs.limiter.limits.maxConnections;
  if (maxConn !== UNLIMITED) o.connections = maxConn;
  if (pool.idleTimeoutMs !== undefined) {
    o.keepAliveTimeout = pool.idleTimeoutMs;
    o.keepAliveMaxTimeout = pool.idleTimeoutMs;
  }
  if (pool.maxRequestsPerConnection !== undefined) o.maxRequestsPerClient = pool.maxRequestsPerConnection;
  // maxConnectionDuration: a connection older than this is given no new request and closes once its requests end (Envoy drains it).
  if (pool.maxConnectionDurationMs !== undefined) o.clientTtl = pool.maxConnectionDurationMs;
  // TCP keepalive: undici's default (probes after 60 s idle) unless the DestinationRule or MeshConfig sets it.
  const keepalive = cs.tcpKeepalive;
  if (keepalive !== undefined) o.connect = keepaliveConnector(cs.connectTimeoutMs, cs.h2, keepalive) as never;
  if (cs.h2) {
    o.allowH2 = true;
    (o as { useH2c?: boolean }).useH2c = true;
    o.maxConcurrentStreams = pool.maxConcurrentStreams;
    o.pipelining = o.maxConcurrentStreams;
    // http2KeepAlive: PINGs at the interval (undici has no PING timeout: a dead peer is found by TCP).
    if (pool.http2KeepAlive !== undefined) o.h2Options = { pingInterval: pool.http2KeepAlive.intervalMs };
  } else o.allowH2 = false;
  return o;
}

/** One endpoint's connections: the pool its TLS decision calls for, and the app's own `https://` pool. */
interface HostPools {
  /** The endpoint (labels, port) the decision was made for. */
  endpoint: HostState['endpoint'];
  /** The TLS epoch it was made in. */
  epoch: number;
  /** The plan's key ('' = plaintext). */
  key: string;
  /** The pool, or why calls fail (fail closed: never plaintext instead of TLS). */
  pool: Pool | undefined;
  failure: string | undefined;
  /** The pool originates TLS from the DestinationRule (also used for `https://` URLs). */
  originates: boolean;
  /** Its connections present a client certificate (MUTUAL, ISTIO_MUTUAL): a silent refusal is reported as one. */
  presentsCert: boolean;
  /** An `https://` call with no DestinationRule TLS: the app's own TLS to the service's host. */
  https: Pool | undefined;
  /** The rule originates TLS without an `sni`: each connection names the request's Host (Envoy's auto_sni, as Istio sets it). */
  autoSni: boolean;
  /** The last Host of an auto-SNI pool's calls, and its SNI (calls repeat it: parsed once). */
  sniFor: string | undefined;
  sni: string;
}

/** The pools of one cluster, by endpoint. */
class ClusterPools implements ClusterTransport {
  // Keyed by the endpoint's state object: no string building per request.
  readonly #hosts = new Map<HostState, HostPools>();
  readonly options: Pool.Options;
  /** The name plain-HTTP attempts give undici as `servername` (see dispatchOptions). */
  readonly httpServername: string | undefined;
  readonly #clock: Clock;
  readonly #cs: ClusterState;
  readonly #env: TlsEnvironment;
  #plans: ClusterTlsPlans | undefined;
  /** Passthrough clusters with TLS: an agent per plan key. */
  #passthrough: { key: string; agent: Agent } | undefined;
  /** Passthrough clusters, plaintext or the app's own TLS (`https://`): the cluster's pool settings, to the original destinations. */
  #plain: Agent | undefined;
  /** The cluster's connect timeout as its pools were made with it (`options.connectTimeout`). */
  readonly #connectTimeoutMs: number;
  /** Pools replaced (new certificate, new TLS settings) whose calls are still finishing: close() bounds them too. */
  readonly #draining = new Set<Pool | Agent>();
  /** What close() closed, for a later close() with a grace period to bound. */
  readonly #closing = new Set<Pool | Agent>();
  constructor(options: Pool.Options, cs: ClusterState, clock: Clock, env: TlsEnvironment) {
    this.#clock = clock;
    this.options = options;
    this.#cs = cs;
    this.#env = env;
    this.#connectTimeoutMs = cs.connectTimeoutMs;
    const serviceHost = cs.cluster.host;
    this.httpServername = serviceHost.startsWith('*') ? undefined : serviceHost;
  }

  /** The cluster's TLS plans of the current epoch. */
  plans(): ClusterTlsPlans {
    let p = this.#plans;
    if (p === undefined || p.epoch !== this.#env.epoch) {
      p = new ClusterTlsPlans(this.#cs.cluster, this.#env, this.#cs.h2);
      this.#plans = p;
    }
    return p;
  }

  /** The endpoint's pools as last decided, without deciding (undefined when none were made). */
  peek(host: HostState): HostPools | undefined {
    return this.#hosts.get(host);
  }

  /** The endpoint's pools, re-decided when the endpoint or the TLS epoch changed. */
  get(host: HostState): HostPools {
    const e = this.#hosts.get(host);
    if (e !== undefined && e.endpoint === host.endpoint && e.epoch === this.#env.epoch) return e;
    return this.#decide(host, e);
  }

  #decide(host: HostState, e: HostPools | undefined): HostPools {
    const { plan, failure } = this.plans().planFor(host.endpoint);
    const key = failure !== undefined ? `fail|${failure}` : (plan?.key ?? '');
    // A LOGICAL_DNS host keeps its state while its address follows the answers: new connections go to the new one.
    if (e !== undefined && e.key === key && e.endpoint.address === host.endpoint.address) {
      e.endpoint = host.endpoint;
      e.epoch = this.#env.epoch;
      return e;
    }
    const origin = `${plan === undefined ? 'http' : 'https'}://${formatHostPort(host.endpoint.address, host.endpoint.port)}`;
    const opts = plan === undefined ? this.options : { ...this.options, connect: tlsConnector(plan, this.#connectTimeoutMs, this.#clock, this.#cs.tcpKeepalive, host.endpoint.hostname) as never };
    const next: HostPools = {
      endpoint: host.endpoint,
      epoch: this.#env.epoch,
      key,
      pool: failure === undefined ? observedPool(new Pool(origin, opts), this.#cs) : undefined,
      failure,
      originates: plan !== undefined && plan.mode !== 'ISTIO_MUTUAL',
      presentsCert: plan !== undefined && plan.mode !== 'SIMPLE',
      https: undefined,
      autoSni: plan !== undefined && plan.mode !== 'ISTIO_MUTUAL' && plan.servername === undefined,
      sniFor: undefined,
      sni: '',
    };
    this.#hosts.set(host, next);
    // Connections made with the old settings (an older certificate) drain: calls on them finish.
    if (e !== undefined) this.#drain(e);
    return next;
  }

  /** The app's own TLS (`https://`) to the endpoint, naming (SNI) and verifying the service's host. */
  https(host: HostState, e: HostPools, servername: string): Pool {
    if (e.https === undefined) {
      const sn = servername.startsWith('*') ? undefined : servername;
      const opts = { ...this.options, connect: clockedConnector(this.#connectTimeoutMs, this.#clock, this.#cs.h2, this.#cs.tcpKeepalive, sn) as never };
      e.https = observedPool(new Pool(`https://${formatHostPort(host.endpoint.address, host.endpoint.port)}`, opts), this.#cs);
    }
    return e.https;
  }

  /** A passthrough cluster's TLS (DestinationRule SIMPLE/MUTUAL/ISTIO_MUTUAL): an agent to the original destinations, or why calls fail. */
  passthrough(): Agent | string | undefined {
    const { plan, failure } = this.plans().planFor(undefined);
    if (failure !== undefined) return failure;
    if (plan === undefined) return undefined;
    const p = this.#passthrough;
    if (p !== undefined && p.key === plan.key) return p.agent;
    const agent = trackedAgent({ ...this.options, connect: tlsConnector(plan, this.#connectTimeoutMs, this.#clock, this.#cs.tcpKeepalive) as never });
    this.#passthrough = { key: plan.key, agent };
    if (p !== undefined) this.#drainOne(p.agent);
    return agent;
  }

  /**
   * A passthrough cluster's agent without the cluster's TLS (none declared, or an `https://` URL):
   * its connection pool settings and connect timeout, as istiod builds a resolution-NONE
   * ServiceEntry's ORIGINAL_DST cluster (an `https://` URL's handshake timed on the mesh clock).
   */
  plain(): Agent {
    if (this.#plain === undefined) {
      // HTTP/2 by prior knowledge to an HTTP/2 port; else an https:// URL may agree on it, as through the mesh's own agent.
      const connect = clockedConnector(this.#connectTimeoutMs, this.#clock, this.#cs.h2 ? true : undefined, this.#cs.tcpKeepalive);
      this.#plain = trackedAgent({ ...this.options, connect: connect as never });
    }
    return this.#plain;
  }

  connections(host: HostState): number {
    const e = this.#hosts.get(host);
    return (e?.pool?.stats.connected ?? 0) + (e?.https?.stats.connected ?? 0);
  }

  removeHost(host: HostState): void {
    const e = this.#hosts.get(host);
    if (e !== undefined && this.#hosts.delete(host)) this.#drain(e);
  }

  #drain(e: HostPools): void {
    if (e.pool !== undefined) this.#drainOne(e.pool);
    if (e.https !== undefined) this.#drainOne(e.https);
  }

  /** close() lets requests in flight finish first. */
  #drainOne(d: Pool | Agent): void {
    this.#draining.add(d);
    void d
      .close()
      .catch(() => undefined)
      .finally(() => this.#draining.delete(d));
  }
  /** Closes the pools: calls in flight may finish for `graceMs`, then they are cancelled. */
  async close(graceMs = Number.POSITIVE_INFINITY): Promise<void> {
    // Closed before (a replaced cluster's pools draining): this call bounds the same pools.
    const pools = this.#closing;
    for (const e of this.#hosts.values()) {
      if (e.pool !== undefined) pools.add(e.pool);
      if (e.https !== undefined) pools.add(e.https);
    }
    if (this.#passthrough !== undefined) pools.add(this.#passthrough.agent);
    if (this.#plain !== undefined) pools.add(this.#plain);
    for (const d of this.#draining) pools.add(d);
    this.#passthrough = undefined;
    this.#plain = undefined;
    this.#hosts.clear();
    await closeWithin([...pools], graceMs, this.#clock);
  }
}

/** The SNI of an auto-SNI pool's call (its Host, after any rewrite), remembered for the next call with the same Host. */
function autoSni(e: HostPools, authority: string): string {
  if (e.sniFor !== authority) {
    e.sniFor = authority;
    e.sni = sniOfAuthority(authority);
  }
  return e.sni;
}

/** The name of the undici transport: its slot in each cluster's state. */
const SLOT = 'http';

/** The undici side of a mesh: endpoint pools per cluster and a passthrough agent. */
export class UndiciTransport {
  /** PassthroughCluster: no request timeout (as poolOptions), MeshConfig's `connectTimeout`. */
  #agent: ReturnType<typeof trackedAgent>;
  #passthroughConnectTimeoutMs: number;
  /** MeshConfig's `tcpKeepalive`: istiod applies it to the PassthroughCluster as to every cluster (cluster_builder.go buildDefaultPassthroughCluster → applyConnectionPool). */
  #keepalive: TcpKeepalive | undefined;
  /** Passthrough agents a changed connect timeout or keepalive replaced, draining their calls in flight. */
  readonly #retiring = new Set<ReturnType<typeof trackedAgent>>();
  readonly #clock: Clock;
  readonly #env: TlsEnvironment;
  /** Calls carry `x-envoy-expected-rq-timeout-ms` (Istio's `proxyHeaders.envoyDebugHeaders` not disabled). */
  readonly #expected: boolean;

  /**
   * `clock`: the mesh clock (close()'s grace period runs on it); `credentials`: the workload's
   * certificate for mTLS (new connections use a new issue at once); `tls`: MeshConfig's settings;
   * `envoyHeaders`: false when Istio's `proxyHeaders.envoyDebugHeaders` is disabled;
   * `connectTimeoutMs`: MeshConfig's `connectTimeout` (PassthroughCluster's); `tcpKeepalive`: MeshConfig's (PassthroughCluster's too).
   */
  constructor(clock: Clock, credentials: CredentialHolder = new CredentialHolder(), tls: ClientTlsOptions = {}, envoyHeaders = true, connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_MS, tcpKeepalive?: TcpKeepalive) {
    this.#keepalive = tcpKeepalive;
    // An https:// URL's connect timeout on the mesh clock, as the clusters' TLS connects are timed.
    this.#agent = passthroughAgent(connectTimeoutMs, clock, tcpKeepalive);
    this.#passthroughConnectTimeoutMs = connectTimeoutMs;
    this.#clock = clock;
    this.#env = new TlsEnvironment(credentials, tls, clock);
    this.#expected = envoyHeaders;
  }

  /** A config is in use: its PeerAuthentications decide auto-mTLS, its DestinationRules' TLS files are read now (returned, with findings). */
  install(resources: readonly AnyResource[]): TlsFiles {
    return this.#env.install(resources);
  }

  /** The TLS a call to `endpoint` of the cluster would use, and why (for explain). */
  tlsDecision(cs: ClusterState, endpoint: HostState['endpoint'] | undefined): ClientTlsDecision {
    return new ClusterTlsPlans(cs.cluster, this.#env, cs.h2).decide(endpoint);
  }

  /**
   * Whether calls to `host` of `cs` go over Istio mTLS (ISTIO_MUTUAL, auto or declared), as its
   * pools were last set up — telemetry's client-side principals. Decides nothing.
   */
  usesIstioMtls(cs: ClusterState, host: HostState): boolean {
    const e = (cs.transports.get(SLOT)?.pools as ClusterPools | undefined)?.peek(host);
    return e !== undefined && e.failure === undefined && e.presentsCert && !e.originates;
  }

  /** Sends an attempt to the endpoint the balance layer picked. */
  readonly dispatch: Dispatch = (ex, handler) => {
    const cs = ex.cluster as ClusterState;
    const host = ex.host as HostState | undefined;
    let pools = cs.transports.get(SLOT)?.pools as ClusterPools | undefined;
    if (pools === undefined) {
      pools = new ClusterPools(poolOptions(cs), cs, this.#clock, this.#env);
      cs.transports.set(SLOT, { pools, key: poolKey(pools.options, cs) });
    }
    // An HTTP call to an HTTP/2 upstream is an HTTP/2 call (telemetry's %PROTOCOL% / request.protocol),
    // a resolution-NONE cluster's too: its agents speak HTTP/2 to an HTTP/2 port as the endpoints' pools do.
    if (cs.h2 && ex.protocol === 'http1') ex.protocol = 'http2';
    if (host === undefined) {
      // Resolution NONE / PASSTHROUGH: the original destination (with the cluster's TLS, when it has one).
      if (cs.cluster.settings.tls === undefined) this.#toOriginal(pools.plain(), ex, handler);
      else this.#passthroughTls(pools, ex, handler);
      return;
    }
    const e = pools.get(host);
    let pool = e.pool;
    // The app's own TLS (an https:// URL) — unless the cluster's TLS settings failed: then the call
    // fails naming why, never going out without the rule's CA, SANs or client certificate.
    if (ex.scheme === 'https' && !e.originates && e.failure === undefined) pool = pools.https(host, e, cs.cluster.host);
    else if (pool === undefined) {
      fail(ex, handler, e.failure as string);
      return;
    }
    const servername = e.autoSni ? autoSni(e, ex.authority) : pools.httpServername;
    const h = e.presentsCert ? new CertificateRefusalHandler(handler) : handler;
    dispatchUntraced(pool, dispatchOptions(ex, this.#expected, undefined, servername) as never, h as never);
  };

  #passthroughTls(pools: ClusterPools, ex: Exchange, handler: Parameters<Dispatch>[1]): void {
    const agent = pools.passthrough();
    if (typeof agent === 'string') fail(ex, handler, agent);
    else if (agent === undefined || ex.scheme === 'https') this.#toOriginal(pools.plain(), ex, handler);
    else this.#toOriginal(agent, ex, handler, `https://${ex.urlAuthority}`);
  }

  /** Sends a request to its original destination (the URL's address, never the Host header's, which only chose the route); `origin`: over the cluster's TLS. */
  #toOriginal(agent: Agent, ex: Exchange, handler: Parameters<Dispatch>[1], origin = `${ex.scheme}://${ex.urlAuthority}`): void {
    dispatchUntraced(agent, dispatchOptions(ex, this.#expected, origin) as never, handler as never);
  }

  /** Sends a request for a host outside the mesh (the PassthroughCluster), unchanged. */
  readonly passthrough: Dispatch = (ex, handler) => this.#toOriginal(this.#agent, ex, handler);

  /** Rebuilds a cluster's pools when its connection settings changed (old pools drain). */
  refresh(cs: ClusterState): void {
    const t = cs.transports.get(SLOT);
    if (t === undefined) return;
    const next = poolOptions(cs);
    const key = poolKey(next, cs);
    if (key === t.key) return;
    cs.transports.set(SLOT, { pools: new ClusterPools(next, cs, this.#clock, this.#env), key });
    cs.retire(t.pools);
  }

  /**
   * MeshConfig's `connectTimeout` or `tcpKeepalive` changed (a control plane's, live): a new PassthroughCluster agent
   * for new calls; the old one drains (its calls in flight finish, then it closes), as Envoy drains a replaced
   * cluster's connection pools (cluster_manager_impl.cc `ClusterEntry::~ClusterEntry` → drainConnPools).
   */
  passthroughSettings(ms: number, keepalive: TcpKeepalive | undefined): void {
    if (ms === this.#passthroughConnectTimeoutMs && JSON.stringify(keepalive ?? null) === JSON.stringify(this.#keepalive ?? null)) return;
    const old = this.#agent;
    this.#agent = passthroughAgent(ms, this.#clock, keepalive);
    this.#passthroughConnectTimeoutMs = ms;
    this.#keepalive = keepalive;
    this.#retiring.add(old);
    old.close().catch(() => undefined).finally(() => this.#retiring.delete(old));
  }

  /** Closes the passthrough agent: calls in flight may finish for `graceMs`, then they are cancelled. */
  async close(graceMs = Number.POSITIVE_INFINITY): Promise<void> {
    this.#env.close();
    await closeWithin([this.#agent, ...this.#retiring], graceMs, this.#clock);
  }
}

/** The PassthroughCluster's agent: no request timeout (as poolOptions), connects within `connectTimeoutMs` on the mesh clock. */
function passthroughAgent(connectTimeoutMs: number, clock: Clock, keepalive: TcpKeepalive | undefined): ReturnType<typeof trackedAgent> {
  return trackedAgent({ headersTimeout: 0, bodyTimeout: 0, connect: clockedConnector(connectTimeoutMs, clock, undefined, keepalive) as never });
}

/** What a cluster's pools are made with (a connect function is not in JSON: its keepalive settings stand for it). */
function poolKey(o: Pool.Options, cs: ClusterState): string {
  return JSON.stringify([o, cs.tcpKeepalive ?? null]);
}
