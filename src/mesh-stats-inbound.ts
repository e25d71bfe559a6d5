/**
 * The inbound side of the admin endpoint's `/stats`: what an Istio sidecar's inbound HTTP
 * connection manager and its filters count, under its names —
 * `http.inbound_0.0.0.0_<port>;.downstream_rq_total` / `_<N>xx` / `_completed` / `_active`, the
 * `downstream_rq_time` histogram, the RBAC filters' `rbac.allowed` / `rbac.denied` and their dry-run
 * `istio_dry_run_allow_rbac.shadow_allowed` …, and `jwt_authn.allowed` / `denied`.
 *
 * Istio names the inbound connection manager's stat prefix `inbound_<bind>_<port>` with its stats
 * delimiter `;` (pilot/pkg/networking/core/listener_inbound.go `StatPrefix`,
 * pilot/pkg/networking/util/util.go `DelimitedStatsPrefix`); meshlet's servers bind the app's
 * port, so `<bind>` is `0.0.0.0` as in a sidecar's inbound chain.
 *
 * Counted from the messages of the observation channels, as `mesh-stats.ts` counts the clusters.
 *
 * @module
 */
import type { InboundConnectionMessage } from './core/observe-connections.ts';
import type { InboundEndMessage, InboundStartMessage } from './core/observe.ts';
import type { AuthzDecisionMessage } from './inbound/authz-phase.ts';
import { FlushedHistogram } from './mesh-stats-histogram.ts';

/** `http.<prefix>;.` of a local port (Istio's inbound stat prefix). */
export function inboundHttpPrefix(port: number): string {
  return `inbound_0.0.0.0_${port}`;
}

/** The phases that run before Envoy's jwt_authn filter in Istio's chain: a request they refused never reached it. */
const BEFORE_JWT = new Set(['path', 'peer-identity', 'ext-authz']);

/** Whether the phase that refused `m` ran before the jwt phase (a local rate limit placed before `ext-authz` or `jwt` too). */
function refusedBeforeJwt(m: InboundEndMessage): boolean {
  const by = m.deniedBy;
  if (by === undefined) return false;
  if (BEFORE_JWT.has(by)) return true;
  return m.deniedBefore === 'jwt' || (m.deniedBefore !== undefined && BEFORE_JWT.has(m.deniedBefore));
}

/** Counters every inbound prefix shows, 0 until written. */
const HTTP_COUNTERS = ['downstream_rq_completed', 'downstream_rq_total', 'downstream_rq_1xx', 'downstream_rq_2xx', 'downstream_rq_3xx', 'downstream_rq_4xx', 'downstream_rq_5xx'] as const;

/** The listener address of a local port in Envoy's stat names (`listener.0.0.0.0_<port>.`). */
export function listenerAddress(port: number): string {
  return `0.0.0.0_${port}`;
}

/** One inbound stat as the renderer takes it: under `http.<prefix>;.`, or (`listener`) `listener.<address>.`. */
export interface InboundStat {
  readonly listener?: boolean;
  readonly prefix: string;
  readonly stat: string;
  readonly value: number;
  readonly kind: 'counter' | 'gauge';
  readonly used: boolean;
}

/** What the inbound side needs of the mesh. */
export interface InboundSource {
  /** Whether a RequestAuthentication applies now (Istio adds the jwt_authn filter only then). */
  jwtApplies(): boolean;
}

/** Envoy's RBAC shadow stat prefix of a dry-run action (pilot/pkg/security/authz/builder/builder.go `shadowRuleStatPrefix`). */
function shadowPrefix(action: string): string {
  return action === 'ALLOW' ? 'istio_dry_run_allow_' : action === 'DENY' ? 'istio_dry_run_deny_' : '';
}

/** The inbound HTTP stats of one mesh, per local port. */
export class InboundStats {
  readonly #counts = new Map<string, Map<string, number>>();
  readonly #time = new Map<string, FlushedHistogram>();
  /** Requests started since counting began (their end lowers `downstream_rq_active`). */
  readonly #started = new WeakSet<object>();
  readonly #active = new Map<string, number>();
  /** Per listener address: Envoy's listener counters (`downstream_cx_total`, `ssl.*`). */
  readonly #listeners = new Map<string, Map<string, number>>();
  /** Gauges: connections open per listener address; served per HTTP prefix (all, and over TLS). */
  readonly #gauges = new Map<string, number>();
  readonly #source: InboundSource;
  readonly #start: number;

  constructor(source: InboundSource, start: number) {
    this.#source = source;
    this.#start = start;
  }

  /** One more of an HTTP prefix's `stat`. */
  #inc(prefix: string, stat: string): void {
    this.#count(this.#counts, prefix, stat);
  }

  #count(map: Map<string, Map<string, number>>, key: string, stat: string): void {
    let m = map.get(key);
    if (m === undefined) {
      m = new Map();
      map.set(key, m);
    }
    m.set(stat, (m.get(stat) ?? 0) + 1);
  }

  #gauge(key: string, d: number): void {
    this.#gauges.set(key, Math.max(0, (this.#gauges.get(key) ?? 0) + d));
  }

  /**
   * `meshlet:inbound:connection`: Envoy's listener stats (`downstream_cx_total`, `ssl.handshake`,
   * `ssl.connection_error`, `ssl.fail_verify_error`, `ssl.fail_verify_no_cert` — source/common/tls
   * context_impl `ALL_SSL_STATS`) and the connection manager's (`downstream_cx_total`,
   * `downstream_cx_ssl_total`, and their `_active`) for the connections handed to the server.
   */
  connection(m: InboundConnectionMessage): void {
    const l = listenerAddress(m.localPort);
    const p = inboundHttpPrefix(m.localPort);
    switch (m.event) {
      case 'open':
        this.#count(this.#listeners, l, 'downstream_cx_total');
        this.#gauge(`l|${l}`, 1);
        break;
      case 'close':
        this.#gauge(`l|${l}`, -1);
        break;
      case 'handshake':
        this.#count(this.#listeners, l, 'ssl.handshake');
        break;
      case 'tls-error':
        this.#count(this.#listeners, l, 'ssl.connection_error');
        break;
      case 'verify-failed':
        this.#count(this.#listeners, l, m.noCertificate ? 'ssl.fail_verify_no_cert' : 'ssl.fail_verify_error');
        break;
      case 'served':
        this.#inc(p, 'downstream_cx_total');
        this.#gauge(`h|${p}`, 1);
        if (m.tls) {
          this.#inc(p, 'downstream_cx_ssl_total');
          this.#gauge(`s|${p}`, 1);
        }
        break;
      case 'served-close':
        this.#gauge(`h|${p}`, -1);
        if (m.tls) this.#gauge(`s|${p}`, -1);
        break;
    }
  }

  /** `meshlet:inbound:start`: the connection manager decoded a request's headers. */
  started(m: InboundStartMessage): void {
    const p = inboundHttpPrefix(m.localPort);
    this.#started.add(m.request);
    this.#inc(p, 'downstream_rq_total');
    this.#active.set(p, (this.#active.get(p) ?? 0) + 1);
  }

  /** `meshlet:inbound:end`: the response was sent (or the caller went away); `now` on the mesh's clock. */
  ended(m: InboundEndMessage, now: number): void {
    const p = inboundHttpPrefix(m.localPort);
    if (this.#started.has(m.request)) {
      this.#started.delete(m.request);
      this.#active.set(p, Math.max(0, (this.#active.get(p) ?? 0) - 1));
    }
    if (m.status > 0) {
      // Envoy's HCM charges every response it encoded, local replies included (conn_manager_impl.cc, chargeStats).
      this.#inc(p, `downstream_rq_${Math.floor(m.status / 100)}xx`);
      this.#inc(p, 'downstream_rq_completed');
    }
    let h = this.#time.get(p);
    if (h === undefined) {
      h = new FlushedHistogram(this.#start);
      this.#time.set(p, h);
    }
    h.record(m.durationMs, now);
    // jwt_authn: a request that got past the filter was allowed, one it refused denied (filter.cc onComplete).
    if (m.deniedBy === 'jwt') this.#inc(p, 'jwt_authn.denied');
    else if (!refusedBeforeJwt(m) && m.status > 0 && this.#source.jwtApplies()) this.#inc(p, 'jwt_authn.allowed');
  }

  /**
   * `meshlet:authz:decision`: the RBAC filters Istio builds — AUDIT (LOG), DENY, ALLOW, in that
   * order, one each for the enforced policies of that action — each count `rbac.allowed` or
   * `rbac.denied` (a refusal stops the chain); each dry-run rule set its shadow result.
   */
  decided(m: Pick<AuthzDecisionMessage, 'result' | 'filters'>, port: number): void {
    const p = inboundHttpPrefix(port);
    const r = m.result;
    if (r.action === 'CUSTOM') return;
    for (const d of r.dryRun) this.#inc(p, `${shadowPrefix(d.action)}rbac.shadow_${d.result === 'allow' ? 'allowed' : 'denied'}`);
    const f = m.filters;
    if (f === undefined) return;
    if (f.audit) this.#inc(p, 'rbac.allowed');
    if (f.deny) {
      if (r.decision === 'deny' && r.action === 'DENY') {
        this.#inc(p, 'rbac.denied');
        return;
      }
      this.#inc(p, 'rbac.allowed');
    }
    if (f.allow) this.#inc(p, r.decision === 'allow' ? 'rbac.allowed' : 'rbac.denied');
  }

  /** Every inbound prefix's stats. */
  *stats(): Generator<InboundStat> {
    for (const [prefix, counts] of this.#counts) {
      const names = new Set<string>([...HTTP_COUNTERS, ...counts.keys()]);
      for (const stat of names) {
        const value = counts.get(stat) ?? 0;
        yield { prefix, stat, value, kind: 'counter', used: value > 0 };
      }
      yield { prefix, stat: 'downstream_rq_active', value: this.#active.get(prefix) ?? 0, kind: 'gauge', used: true };
      if (counts.has('downstream_cx_total')) {
        yield { prefix, stat: 'downstream_cx_active', value: this.#gauges.get(`h|${prefix}`) ?? 0, kind: 'gauge', used: true };
        yield { prefix, stat: 'downstream_cx_ssl_active', value: this.#gauges.get(`s|${prefix}`) ?? 0, kind: 'gauge', used: true };
      }
    }
    for (const [address, counts] of this.#listeners) {
      for (const stat of new Set<string>(['downstream_cx_total', 'ssl.connection_error', 'ssl.fail_verify_error', 'ssl.fail_verify_no_cert', 'ssl.handshake', ...counts.keys()])) {
        const value = counts.get(stat) ?? 0;
        yield { listener: true, prefix: address, stat, value, kind: 'counter', used: value > 0 };
      }
      yield { listener: true, prefix: address, stat: 'downstream_cx_active', value: this.#gauges.get(`l|${address}`) ?? 0, kind: 'gauge', used: true };
    }
  }

  /** The `downstream_rq_time` histogram of each prefix. */
  histograms(): ReadonlyMap<string, FlushedHistogram> {
    return this.#time;
  }
}
