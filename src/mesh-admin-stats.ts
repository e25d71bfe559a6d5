/**
 * `GET /stats` and `GET /stats/prometheus` on a mesh's admin endpoint, as Envoy's admin serves
 * them: `name: value` lines sorted by name, `?filter=<RE2 regex>` (a stat is listed when the
 * pattern matches part of its name), `?usedonly`, `?format=json` (`{"stats":[{name, value}]}`),
 * and Prometheus' text format with the tags Istio's bootstrap extracts (`cluster_name`,
 * `response_code`, `response_code_class`). The counts are `mesh-stats.ts`'.
 *
 * @module
 */
import { RE2JS } from 're2js';
import type { Mesh } from './mesh.ts';
import { type Stat, type StatsCluster, MeshStats } from './mesh-stats.ts';

/** Longest `?filter` pattern accepted (Istio's limit for a regex in config). */
const MAX_FILTER = 1024;

/** Starts counting `/stats` for `mesh` (the admin endpoint does, once). */
export function startMeshStats(mesh: Mesh): MeshStats {
  return new MeshStats({ identity: mesh.identity, clusters: () => statsClusters(mesh) });
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

/**
 * Answers `/stats` (`prometheus`: `/stats/prometheus`) with `q`'s `filter`, `usedonly` and
 * `format` (`json`, `prometheus`; text by default), as Envoy's admin does.
 */
export function statsAnswer(stats: readonly Stat[], q: URLSearchParams, prometheus: boolean): StatsAnswer {
  const format = prometheus ? 'prometheus' : (q.get('format') ?? 'text');
  const path = prometheus ? '/stats/prometheus' : '/stats';
  if (format !== 'text' && format !== 'json' && format !== 'prometheus') return { status: 400, type: TEXT, body: `admin: ${path}: format "${format}" is not one of json, prometheus (or none, for text)\n` };
  let list = q.has('usedonly') ? stats.filter((s) => s.used) : stats;
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
  if (format === 'json') return { status: 200, type: 'application/json', body: `${JSON.stringify({ stats: list.map((s) => ({ name: s.name, value: s.value })) })}\n` };
  if (format === 'prometheus') return { status: 200, type: 'text/plain; version=0.0.4; charset=utf-8', body: prometheusText(list) };
  return { status: 200, type: TEXT, body: list.map((s) => `${s.name}: ${s.value}\n`).join('') };
}

/** `_rq_503` → response_code, `_rq_5xx` → response_code_class: Istio's bootstrap `stats_tags`. */
const CODE = /_rq_(\d{3})$/;
const CODE_CLASS = /_rq_(\dxx)$/;

/** A stat's Prometheus name and labels, after Istio's tag extraction (`cluster.X;.upstream_rq_503` → `envoy_cluster_upstream_rq{response_code="503",cluster_name="X"}`). */
function tagged(s: Stat): { name: string; labels: [string, string][] } {
  if (s.cluster === undefined || s.stat === undefined) return { name: `envoy_${sanitize(s.name)}`, labels: [] };
  const labels: [string, string][] = [];
  let stat = s.stat;
  const code = CODE.exec(stat) ?? CODE_CLASS.exec(stat);
  if (code !== null) {
    labels.push([code[1]?.endsWith('xx') === true ? 'response_code_class' : 'response_code', code[1] as string]);
    stat = stat.slice(0, code.index + 3);
  }
  labels.push(['cluster_name', s.cluster]);
  return { name: `envoy_cluster_${sanitize(stat)}`, labels };
}

function sanitize(name: string): string {
  return name.replace(/[^a-zA-Z0-9_]/g, '_');
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** Prometheus' text format: counters, then gauges, each metric's `# TYPE` line before its series, as Envoy's `/stats/prometheus`. */
function prometheusText(list: readonly Stat[]): string {
  const byName = new Map<string, { kind: Stat['kind']; lines: string[] }>();
  for (const s of list) {
    const t = tagged(s);
    let m = byName.get(t.name);
    if (m === undefined) {
      m = { kind: s.kind, lines: [] };
      byName.set(t.name, m);
    }
    const labels = t.labels.length === 0 ? '' : `{${t.labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
    m.lines.push(`${t.name}${labels} ${s.value}`);
  }
  const out: string[] = [];
  for (const kind of ['counter', 'gauge'] as const) {
    const names = [...byName.keys()].filter((n) => byName.get(n)?.kind === kind).sort();
    for (const n of names) out.push(`# TYPE ${n} ${kind}`, ...(byName.get(n)?.lines ?? []));
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}
