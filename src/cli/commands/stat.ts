/**
 * `meshlet stat`: a workload's golden metrics — success rate, requests per second, latency
 * percentiles — from its Prometheus endpoint, as `linkerd viz stat` and `linkerd viz routes`
 * show them, computed from Istio's `istio_requests_total` and
 * `istio_request_duration_milliseconds`. Success is classified as Linkerd does (a 5xx, a gRPC
 * status other than OK, or no response at all fails), which is stricter than Istio's dashboards
 * (5xx only): see docs/from-linkerd.md.
 *
 * @module
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { parseDuration } from '../../config/duration.ts';
import { out, UsageError } from '../args.ts';
import { OUTPUT_HELP, OUTPUT_OPTION, outputFormat, printDocument } from '../output.ts';
import { histogramQuantile, parseSamples, type Sample } from '../prometheus-text.ts';
import { table } from '../table.ts';

export const statHelp = `Usage: meshlet stat <metrics-url> [--interval <duration>] [--by workload|route] [options]

Golden metrics of the meshes behind a Prometheus endpoint (startTelemetry()'s
http://<pod>:15020/stats/prometheus), as 'linkerd viz stat' shows them: per served workload
(inbound: reporter="destination") and per called service (outbound: reporter="source"), the
success rate (as Linkerd counts it: a 5xx, a gRPC status other than OK or no response at all
fails; Istio's dashboards count 5xx only), requests per second and
latency p50 / p95 / p99 (ms; Prometheus's histogram_quantile over Envoy's buckets).
Outbound rows are what the caller got (after retries: Linkerd's effective success rate);
inbound rows are every attempt the server answered (the actual one).

Options:
      --interval <duration>  scrape twice this far apart and show the traffic in between, with
                             requests per second (e.g. 10s); without it: totals since the
                             series started, no RPS
      --by <workload|route>  outbound rows per called service (default), or per route too
                             (the route_name label a Telemetry tagOverride adds:
                             route_name: {value: xds.route_name}; docs/from-linkerd.md)
${OUTPUT_HELP}
`;

const REQUESTS = 'istio_requests_total';
/** The longest --interval (a timer longer than 2^31 - 1 ms fires at once in Node). */
const MAX_INTERVAL_MS = 24 * 3600 * 1000;
const DURATION = 'istio_request_duration_milliseconds_bucket';

/** One row of the table. */
export interface StatRow {
  readonly direction: 'inbound' | 'outbound';
  /** `<namespace>/<workload>` that reported. */
  readonly workload: string;
  /** The called service (outbound) or '' (inbound). */
  readonly peer: string;
  /** The route (`--by route`, outbound), or ''. */
  readonly route: string;
  readonly requests: number;
  /** Percent, or null without requests. */
  readonly successRate: number | null;
  /** Requests per second (with `--interval`), else null. */
  readonly rps: number | null;
  readonly p50Ms: number | null;
  readonly p95Ms: number | null;
  readonly p99Ms: number | null;
}

function keyOf(l: Readonly<Record<string, string>>, byRoute: boolean): { key: string; direction: 'inbound' | 'outbound'; workload: string; peer: string; route: string } | undefined {
  if (l.reporter === 'destination') {
    const workload = `${l.destination_workload_namespace ?? 'unknown'}/${l.destination_workload ?? 'unknown'}`;
    return { key: `in ${workload}`, direction: 'inbound', workload, peer: '', route: '' };
  }
  if (l.reporter === 'source') {
    const workload = `${l.source_workload_namespace ?? 'unknown'}/${l.source_workload ?? 'unknown'}`;
    // Keyed on the service's host: two services of one short name in two namespaces are two rows.
    const host = l.destination_service ?? 'unknown';
    const ns = l.destination_service_namespace;
    const peer = ns !== undefined && ns !== '' && ns !== 'unknown' && l.destination_service_name !== undefined ? `${ns}/${l.destination_service_name}` : host;
    const route = byRoute ? (l.route_name ?? '-') : '';
    return { key: `out ${workload} ${host} ${route}`, direction: 'outbound', workload, peer, route };
  }
  return undefined;
}

function ok(l: Readonly<Record<string, string>>): boolean {
  const grpc = l.grpc_response_status;
  const code = l.response_code ?? '';
  // 0: no response (the caller went away, or the connection failed before one): Linkerd counts a failed stream as a failure.
  return !/^5/.test(code) && code !== '0' && (grpc === undefined || grpc === '' || grpc === '0');
}

/** Series value by identity (name + labels), to subtract an earlier scrape. */
function seriesId(s: Sample): string {
  return `${s.name}${JSON.stringify(Object.entries(s.labels).sort(([a], [b]) => (a < b ? -1 : 1)))}`;
}

/** The rows for `now`, minus `before` when given (over `seconds`). */
export function statRows(now: readonly Sample[], before: readonly Sample[] | undefined, seconds: number | undefined, byRoute: boolean): StatRow[] {
  const earlier = new Map((before ?? []).map((s) => [seriesId(s), s.value]));
  // As Prometheus's increase(): a counter lower than before was reset (the process restarted), and counts from 0.
  const delta = (s: Sample) => {
    const was = earlier.get(seriesId(s)) ?? 0;
    return s.value < was ? s.value : s.value - was;
  };
  const groups = new Map<string, { id: NonNullable<ReturnType<typeof keyOf>>; requests: number; good: number; buckets: Map<number, number> }>();
  const group = (l: Readonly<Record<string, string>>) => {
    const id = keyOf(l, byRoute);
    if (id === undefined) return undefined;
    let g = groups.get(id.key);
    if (g === undefined) {
      g = { id, requests: 0, good: 0, buckets: new Map() };
      groups.set(id.key, g);
    }
    return g;
  };
  for (const s of now) {
    const g = group(s.labels);
    if (g === undefined) continue;
    if (s.name === REQUESTS) {
      const d = delta(s);
      g.requests += d;
      if (ok(s.labels)) g.good += d;
    } else {
      const le = s.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.labels.le);
      if (!Number.isNaN(le)) g.buckets.set(le, (g.buckets.get(le) ?? 0) + delta(s));
    }
  }
  const round = (v: number | undefined) => (v === undefined ? null : Math.round(v * 100) / 100);
  return [...groups.values()]
    .filter((g) => g.requests > 0 || before === undefined)
    .map(({ id, requests, good, buckets }) => ({
      direction: id.direction,
      workload: id.workload,
      peer: id.peer,
      route: id.route,
      requests,
      successRate: requests === 0 ? null : round((100 * good) / requests),
      rps: seconds === undefined ? null : round(requests / seconds),
      p50Ms: round(histogramQuantile(0.5, buckets)),
      p95Ms: round(histogramQuantile(0.95, buckets)),
      p99Ms: round(histogramQuantile(0.99, buckets)),
    }))
    .sort((a, b) => (a.direction + a.workload + a.peer + a.route < b.direction + b.workload + b.peer + b.route ? -1 : 1));
}

async function scrape(url: string): Promise<Sample[]> {
  const failed = (err: unknown) => new Error(`meshlet stat: cannot read ${url}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`);
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    throw failed(err);
  }
  if (!res.ok) throw new Error(`meshlet stat: ${url} answered ${res.status}`);
  let text: string;
  try {
    text = await res.text();
  } catch (err) {
    // The body stalled past the 10 s, or the connection broke in the middle of it.
    throw failed(err);
  }
  return parseSamples(text, new Set([REQUESTS, DURATION]));
}

/** Runs the command; returns the exit code. */
export async function statCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { interval: { type: 'string' }, by: { type: 'string' }, ...OUTPUT_OPTION, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help === true) {
    out(statHelp);
    return 0;
  }
  const format = outputFormat(values.output);
  if (positionals.length !== 1) throw new UsageError(`meshlet stat: give one metrics URL (e.g. http://127.0.0.1:15020/stats/prometheus)${positionals.length > 1 ? `, not ${positionals.length}` : ''}`);
  const url = positionals[0] as string;
  if (!/^https?:\/\//.test(url)) throw new UsageError(`meshlet stat: "${url}" is not an http(s) URL`);
  const by = values.by ?? 'workload';
  if (by !== 'workload' && by !== 'route') throw new UsageError(`meshlet stat: --by is workload or route, not "${by}"`);
  let intervalMs: number | undefined;
  if (values.interval !== undefined) {
    const ms = parseDuration(values.interval);
    if (typeof ms !== 'number' || ms <= 0 || ms > MAX_INTERVAL_MS) throw new UsageError(`meshlet stat: --interval: ${typeof ms === 'number' ? 'must be more than 0 and at most 24h' : ms.error}`);
    intervalMs = ms;
  }
  let rows: StatRow[];
  try {
    const first = await scrape(url);
    if (intervalMs === undefined) rows = statRows(first, undefined, undefined, by === 'route');
    else {
      const at = performance.now();
      await sleep(intervalMs);
      const second = await scrape(url);
      // Per second of the time that passed between the two scrapes (not only the interval slept).
      rows = statRows(second, first, (performance.now() - at) / 1000, by === 'route');
    }
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 1;
  }
  if (format !== undefined) {
    printDocument(format, { url, intervalMs: intervalMs ?? null, rows });
    return 0;
  }
  if (rows.length === 0) {
    out(intervalMs === undefined ? `no istio_requests_total at ${url}` : `no requests at ${url} in ${values.interval}`);
    return 0;
  }
  const ms = (v: number | null) => (v === null ? '-' : `${v}ms`);
  const headers = ['DIRECTION', 'WORKLOAD', 'TO', ...(by === 'route' ? ['ROUTE'] : []), 'REQUESTS', 'SUCCESS', 'RPS', 'P50', 'P95', 'P99'];
  out(
    table(
      headers,
      rows.map((r) => [
        r.direction,
        r.workload,
        r.peer === '' ? '-' : r.peer,
        ...(by === 'route' ? [r.route === '' ? '-' : r.route] : []),
        String(r.requests),
        r.successRate === null ? '-' : `${r.successRate.toFixed(2)}%`,
        r.rps === null ? '-' : r.rps.toFixed(2),
        ms(r.p50Ms),
        ms(r.p95Ms),
        ms(r.p99Ms),
      ]),
    ).trimEnd(),
  );
  return 0;
}
