/**
 * `GET /stats` and `GET /stats/prometheus` on a mesh's admin endpoint, as Envoy's admin serves
 * them: `name: value` lines sorted by name, `?filter=<RE2 regex>` (a stat is listed when the
 * pattern matches part of its name), `?usedonly`, `?format=json` (`{"stats":[{name, value}]}`),
 * and Prometheus' text format with the tags Istio's bootstrap extracts (`cluster_name`,
 * `response_code`, `response_code_class`); `?type=` (Counters, Gauges, Histograms, TextReadouts,
 * All) and `?histogram_buckets=` (cumulative, disjoint, detailed, none) as Envoy's
 * `StatsParams`. The counts are `mesh-stats.ts`'.
 *
 * @module
 */
import { RE2JS } from 're2js';
import type { Mesh } from './mesh.ts';
import { type Stat, type StatsCluster, MeshStats } from './mesh-stats.ts';
import { bucketSummary, DEFAULT_BUCKETS, detailedText, disjoint, disjointSummary, format32g, type HistogramBin, type HistogramStatistics, quantileSummary, SUPPORTED_QUANTILES } from './mesh-stats-histogram.ts';

/** Longest `?filter` pattern accepted (Istio's limit for a regex in config). */
const MAX_FILTER = 1024;

/** Starts counting `/stats` for `mesh` (the admin endpoint does, once). */
export function startMeshStats(mesh: Mesh): MeshStats {
  return new MeshStats({
    identity: mesh.identity,
    clusters: () => statsClusters(mesh),
    now: () => mesh.outbound.clock.now(),
    owns: (cluster, owner) => mesh.outbound.clusters.get(cluster) === owner,
    jwtApplies: () => mesh.parts.servers.guard.phases.includes('jwt'),
    // Inbound and outbound filters with one stat_prefix write the same counters, as in Envoy's one stats store.
    localRateLimits: () => localLimits([mesh.parts.servers.rateLimitStats, mesh.outbound.rateLimits?.stats]),
  });
}

/** The local rate limit filters' counters (the global filters' `ratelimit.<domain>` are left out: Envoy counts those per rate limit cluster). */
function* localLimits(maps: readonly (ReadonlyMap<string, Readonly<Record<'enabled' | 'enforced' | 'ok' | 'rate_limited', number>>> | undefined)[]): Generator<readonly [string, Readonly<Record<'enabled' | 'enforced' | 'ok' | 'rate_limited', number>>]> {
  for (const m of maps) {
    if (m === undefined) continue;
    for (const [prefix, st] of m) if (!prefix.startsWith('ratelimit.')) yield [prefix, st];
  }
}

/** The config's clusters, then any other the data plane still holds, with their state's gauges. */
function* statsClusters(mesh: Mesh): Generator<StatsCluster> {
  const states = mesh.outbound.clusters;
  const snapshot = mesh.snapshot.clusters;
  for (const [name, c] of snapshot) {
    const s = states.get(name);
    yield gauges(name, s ?? undefined, c.settings, s === undefined ? c.endpoints.length : undefined);
  }
  for (const [name, s] of states) if (!snapshot.has(name)) yield gauges(name, s, s.cluster.settings, undefined);
}

type State = NonNullable<ReturnType<Mesh['outbound']['clusters']['get']>>;

function gauges(name: string, s: State | undefined, settings: State['cluster']['settings'], configEndpoints: number | undefined): StatsCluster {
  const l = settings.connectionPool.limits;
  const limits = { maxConnections: l.maxConnections, maxPending: l.maxPending, maxRequests: l.maxRequests };
  if (s === undefined) return { name, used: false, outlierDetection: settings.outlierDetection !== undefined, endpoints: configEndpoints ?? 0, ejected: 0, rqActive: 0, rqPending: 0, cxActive: 0, limits };
  let ejected = 0;
  let cx = 0;
  const hosts = s.hostSet.hosts;
  for (const h of hosts) {
    if (h.ejected) ejected++;
    for (const t of s.transports.values()) cx += t.pools.connections?.(h) ?? 0;
  }
  return { name, used: true, outlierDetection: settings.outlierDetection !== undefined, endpoints: hosts.length, ejected, rqActive: s.limiter.active, rqPending: s.limiter.pending, cxActive: cx, limits };
}

/** An answer of the admin endpoint: status, content type, body. */
export interface StatsAnswer {
  readonly status: number;
  readonly type: string;
  readonly body: string;
}

const TEXT = 'text/plain; charset=utf-8';

/** `?type=` (Envoy's `StatLabels`): the kinds of stats listed; text readouts are none of meshlet's. */
const TYPES: Readonly<Record<string, Stat['kind'] | 'all' | 'none'>> = { All: 'all', Counters: 'counter', Gauges: 'gauge', Histograms: 'histogram', TextReadouts: 'none' };
type Buckets = 'none' | 'cumulative' | 'disjoint' | 'detailed';
const BUCKETS: readonly Buckets[] = ['none', 'cumulative', 'disjoint', 'detailed'];
type Hist = NonNullable<Stat['histogram']>;

/**
 * Answers `/stats` (`prometheus`: `/stats/prometheus`) with `q`'s `filter`, `usedonly`, `type`,
 * `histogram_buckets` and `format` (`json`, `prometheus`; text by default), as Envoy's admin does.
 */
export function statsAnswer(stats: readonly Stat[], q: URLSearchParams, prometheus: boolean): StatsAnswer {
  const format = prometheus ? 'prometheus' : q.get('format') || 'text';
  const path = prometheus ? '/stats/prometheus' : '/stats';
  if (format !== 'text' && format !== 'json' && format !== 'prometheus') return { status: 400, type: TEXT, body: `admin: ${path}: format "${format}" is not one of json, prometheus (or none, for text)\n` };
  const type = q.get('type') ?? 'All';
  const kind = Object.hasOwn(TYPES, type) ? TYPES[type] : undefined;
  if (kind === undefined) return { status: 400, type: TEXT, body: `admin: ${path}: type "${type}" is not one of ${Object.keys(TYPES).join(', ')} (Envoy: invalid &type= param)\n` };
  const buckets = (q.get('histogram_buckets') || 'none') as Buckets;
  if (!BUCKETS.includes(buckets)) return { status: 400, type: TEXT, body: `admin: ${path}: histogram_buckets "${buckets}" is not one of ${BUCKETS.join(', ')} (Envoy: usage: /stats?histogram_buckets=(cumulative|disjoint|none))\n` };
  let list = q.has('usedonly') ? stats.filter((s) => s.used) : stats;
  if (kind !== 'all') list = list.filter((s) => s.kind === kind);
  const filter = q.get('filter');
  if (filter !== null && filter !== '') {
    if (filter.length > MAX_FILTER) return { status: 400, type: TEXT, body: `admin: ${path}: filter is longer than ${MAX_FILTER} characters\n` };
    let re: RE2JS;
    try {
      re = RE2JS.compile(filter);
    } catch (e) {
      return { status: 400, type: TEXT, body: `admin: ${path}: filter "${filter}" is not a valid RE2 regex: ${(e as Error).message}\n` };
    }
    list = list.filter((s) => re.test(s.name));
  }
  if (format === 'json') return { status: 200, type: 'application/json', body: `${JSON.stringify({ stats: jsonStats(list, buckets) })}\n` };
  if (format === 'prometheus') return { status: 200, type: 'text/plain; version=0.0.4; charset=utf-8', body: prometheusText(list) };
  // Counters and gauges, then the histograms (`name: P0(interval,cumulative) …`, or their buckets), as Envoy's text output.
  const plain = list.filter((s) => s.histogram === undefined).map((s) => `${s.name}: ${s.value}\n`);
  const histograms = list.filter((s) => s.histogram !== undefined).map((s) => `${s.name}:${histogramText(s.histogram as Hist, buckets)}\n`);
  return { status: 200, type: TEXT, body: [...plain, ...histograms].join('') };
}

/** `StatsTextRender::generate` for a histogram: what follows `name:`. */
function histogramText(h: Hist, buckets: Buckets): string {
  if (buckets === 'detailed') return detailedText(h);
  return ` ${buckets === 'cumulative' ? bucketSummary(h) : buckets === 'disjoint' ? disjointSummary(h) : quantileSummary(h)}`;
}

const num = (v: number | undefined): number | null => (v === undefined || Number.isNaN(v) ? null : v);

/** `StatsJsonRender::populatePercentiles`: `{cumulative, interval}` per supported quantile (NaN as null). */
function percentiles(h: Hist): unknown[] {
  return SUPPORTED_QUANTILES.map((_, i) => ({ cumulative: num(h.cumulative.quantiles[i]), interval: num(h.interval.quantiles[i]) }));
}

/** `StatsJsonRender::collectBuckets`: `{upper_bound, interval, cumulative}` per default bucket. */
function bucketList(h: Hist, disjointCounts: boolean): unknown[] {
  const view = (s: HistogramStatistics): readonly number[] => (disjointCounts ? disjoint(s.buckets) : s.buckets);
  const iv = view(h.interval);
  const cu = view(h.cumulative);
  return DEFAULT_BUCKETS.map((b, i) => ({ upper_bound: b, interval: iv[i] ?? 0, cumulative: cu[i] ?? 0 }));
}

const verbose = (bins: readonly HistogramBin[]): unknown[] => bins.map((b) => ({ lower_bound: b.lower, width: b.width, count: b.count }));

/**
 * Envoy's JSON: `{name, value}` of counters and gauges, then one histograms element — by default
 * `{histograms: {supported_quantiles, computed_quantiles}}`; with `histogram_buckets`
 * cumulative/disjoint `{histograms: [{name, buckets}]}`; detailed `{histograms:
 * {supported_percentiles, details: [{name, totals, intervals, percentiles}]}}`.
 */
function jsonStats(list: readonly Stat[], buckets: Buckets): unknown[] {
  const out: unknown[] = list.filter((s) => s.histogram === undefined).map((s) => ({ name: s.name, value: s.value }));
  const hs = list.filter((s) => s.histogram !== undefined).map((s) => ({ name: s.name, h: s.histogram as Hist }));
  if (hs.length === 0) return out;
  const supported = SUPPORTED_QUANTILES.map((q) => q * 100);
  if (buckets === 'cumulative' || buckets === 'disjoint') out.push({ histograms: hs.map(({ name, h }) => ({ name, buckets: bucketList(h, buckets === 'disjoint') })) });
  else if (buckets === 'detailed') out.push({ histograms: { supported_percentiles: supported, details: hs.map(({ name, h }) => ({ name, totals: verbose(h.cumulative.bins), intervals: verbose(h.interval.bins), percentiles: percentiles(h) })) } });
  else out.push({ histograms: { supported_quantiles: supported, computed_quantiles: hs.map(({ name, h }) => ({ name, values: percentiles(h) })) } });
  return out;
}

/**
 * Istio's bootstrap `stats_tags` (tools/packaging/common/envoy_bootstrap.json) on what follows
 * `cluster.<name>;.` or `http.<prefix>;.`: `_rq_503` → response_code, `_rq_5xx` →
 * response_code_class, `rbac.allowed` → authz_enforce_result, `istio_dry_run_allow_` →
 * authz_dry_run_action, `.shadow_denied` → authz_dry_run_result.
 */
const CODE = /_rq_(\d{3})$/;
const CODE_CLASS = /_rq_(\dxx)$/;
const ENFORCE = /^rbac\.(allowed|denied)$/;
const DRY_RUN = /^(?:istio_dry_run_(allow|deny)_)?rbac\.shadow_(allowed|denied)$/;

/** A stat's Prometheus name and labels, after Istio's tag extraction (`cluster.X;.upstream_rq_503` → `envoy_cluster_upstream_rq{response_code="503",cluster_name="X"}`). */
function tagged(s: Stat): { name: string; labels: [string, string][] } {
  const scope =
    s.cluster !== undefined
      ? (['cluster', 'cluster_name', s.cluster] as const)
      : s.httpPrefix !== undefined
        ? (['http', 'http_conn_manager_prefix', s.httpPrefix] as const)
        : s.listenerAddress !== undefined
          ? (['listener', 'listener_address', s.listenerAddress] as const)
          : undefined;
  if (scope === undefined || s.stat === undefined) return { name: `envoy_${sanitize(s.name)}`, labels: [] };
  const labels: [string, string][] = [];
  let stat = s.stat;
  const code = CODE.exec(stat) ?? CODE_CLASS.exec(stat);
  const enforce = ENFORCE.exec(stat);
  const dry = DRY_RUN.exec(stat);
  if (code !== null) {
    labels.push([code[1]?.endsWith('xx') === true ? 'response_code_class' : 'response_code', code[1] as string]);
    stat = stat.slice(0, code.index + 3);
  } else if (enforce !== null) {
    labels.push(['authz_enforce_result', enforce[1] as string]);
    stat = 'rbac';
  } else if (dry !== null) {
    if (dry[1] !== undefined) labels.push(['authz_dry_run_action', dry[1]]);
    labels.push(['authz_dry_run_result', dry[2] as string]);
    stat = 'rbac';
  }
  labels.push([scope[1], scope[2]]);
  return { name: `envoy_${scope[0]}_${sanitize(stat)}`, labels };
}

function sanitize(name: string): string {
  return name.replace(/[^a-zA-Z0-9_]/g, '_');
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** A histogram's series (PrometheusStatsFormatter's histogram output): cumulative `_bucket`s over Envoy's default buckets, `+Inf`, `_sum` (`%.32g`), `_count`. */
function histogramLines(name: string, tags: string, h: NonNullable<Stat['histogram']>): string[] {
  const c = h.cumulative;
  const lead = tags === '' ? '' : `${tags},`;
  const lines = DEFAULT_BUCKETS.map((b, i) => `${name}_bucket{${lead}le="${format32g(b)}"} ${c.buckets[i] ?? 0}`);
  lines.push(`${name}_bucket{${lead}le="+Inf"} ${c.count}`, `${name}_sum{${tags}} ${format32g(c.sum)}`, `${name}_count{${tags}} ${c.count}`);
  return lines;
}

/** Prometheus' text format: counters, then gauges, then histograms, each metric's `# TYPE` line before its series, as Envoy's `/stats/prometheus`. */
function prometheusText(list: readonly Stat[]): string {
  const byName = new Map<string, { kind: Stat['kind']; lines: string[] }>();
  for (const s of list) {
    const t = tagged(s);
    let m = byName.get(t.name);
    if (m === undefined) {
      m = { kind: s.kind, lines: [] };
      byName.set(t.name, m);
    }
    const tags = t.labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',');
    if (s.histogram !== undefined) m.lines.push(...histogramLines(t.name, tags, s.histogram));
    else m.lines.push(`${t.name}${tags === '' ? '' : `{${tags}}`} ${s.value}`);
  }
  const out: string[] = [];
  for (const kind of ['counter', 'gauge', 'histogram'] as const) {
    const names = [...byName.keys()].filter((n) => byName.get(n)?.kind === kind).sort();
    for (const n of names) out.push(`# TYPE ${n} ${kind}`, ...(byName.get(n)?.lines ?? []));
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}
