/**
 * A Prometheus scrape endpoint that forgets idle series — what the OpenTelemetry SDK's own
 * `PrometheusExporter` cannot do: with the cumulative temporality Prometheus needs, the SDK keeps
 * every label set it has seen until the process ends, so per-request labels (a peer workload
 * that went away, an old canary version, a response code seen once) would pile up.
 *
 * This reader asks the SDK for DELTA temporality (the SDK then reports only the series recorded
 * since the last collection and keeps nothing), adds each scrape's deltas up itself into
 * cumulative series, and drops a series that has not changed for `idleSeriesMs`. A dropped
 * series that comes back starts again from zero — for Prometheus a counter reset, which
 * `rate()` and `increase()` handle — which is exactly how Istio's proxy behaves when it rotates
 * its stats scope. The text is written by the exporter package's `PrometheusSerializer`, so
 * names, `_total` and `_bucket`/`_sum`/`_count` come out as the OTel Prometheus exporter writes
 * them.
 *
 * @module
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import {
  AggregationTemporality,
  type DataPoint,
  DataPointType,
  type Histogram,
  type MetricData,
  type MetricProducer,
  MetricReader,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';

/** Options of {@link EvictingPrometheusReader}. */
export interface EvictingPrometheusOptions {
  /** @defaultValue 15020 (the port Istio's merged metrics are scraped on) */
  readonly port?: number;
  /** @defaultValue '0.0.0.0' */
  readonly host?: string;
  /** Paths served. @defaultValue ['/stats/prometheus', '/metrics'] (Istio's path, and the usual one) */
  readonly paths?: readonly string[];
  /** A series unchanged for this long leaves the output. @defaultValue 600000 (10 minutes) */
  readonly idleSeriesMs?: number;
  /** Leave out the `target_info` series (the resource's attributes). @defaultValue false */
  readonly withoutTargetInfo?: boolean;
  /** Series per metric the SDK keeps between two scrapes. @defaultValue 10000 */
  readonly cardinalityLimit?: number;
  /** Time source. @defaultValue Date.now */
  readonly now?: () => number;
  /**
   * More sources of metrics (such as {@link meshletMetricProducer}). Cumulative metrics they give
   * are served as given (they forget their idle series themselves); delta ones are added up.
   * @defaultValue none
   */
  readonly metricProducers?: readonly MetricProducer[];
}

interface Series {
  readonly attributes: DataPoint<unknown>['attributes'];
  readonly startTime: DataPoint<unknown>['startTime'];
  endTime: DataPoint<unknown>['endTime'];
  value: number | Histogram;
  changedAt: number;
}

interface Family {
  data: MetricData;
  readonly series: Map<string, Series>;
}

function attributesKey(a: DataPoint<unknown>['attributes']): string {
  return JSON.stringify(Object.keys(a).sort().map((k) => [k, a[k]]));
}

function addHistogram(into: Histogram, d: Histogram): Histogram {
  const same = into.buckets.boundaries.length === d.buckets.boundaries.length && into.buckets.boundaries.every((b, i) => b === d.buckets.boundaries[i]);
  if (!same) return { ...d, buckets: { boundaries: [...d.buckets.boundaries], counts: [...d.buckets.counts] } };
  return {
    buckets: { boundaries: into.buckets.boundaries, counts: into.buckets.counts.map((c, i) => c + (d.buckets.counts[i] ?? 0)) },
    count: into.count + d.count,
    sum: (into.sum ?? 0) + (d.sum ?? 0),
    min: into.min === undefined ? d.min : d.min === undefined ? into.min : Math.min(into.min, d.min),
    max: into.max === undefined ? d.max : d.max === undefined ? into.max : Math.max(into.max, d.max),
  };
}

/** A MetricReader serving Prometheus text over HTTP, forgetting idle series. */
export class EvictingPrometheusReader extends MetricReader {
  readonly #o: EvictingPrometheusOptions;
  readonly #now: () => number;
  readonly #families = new Map<string, Family>();
  readonly #serializer: PrometheusSerializer;
  #server: Server | undefined;
  #resource: ResourceMetrics['resource'] | undefined;
  /** Collections run one at a time (two scrapes must not both take the same deltas). */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(o: EvictingPrometheusOptions = {}) {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.DELTA, cardinalitySelector: () => o.cardinalityLimit ?? 10_000, metricProducers: [...(o.metricProducers ?? [])] });
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#serializer = new PrometheusSerializer(undefined, false, undefined, o.withoutTargetInfo ?? false, true);
  }

  /** Starts the HTTP server; resolves with its address. */
  listen(): Promise<AddressInfo> {
    const paths = new Set(this.#o.paths ?? ['/stats/prometheus', '/metrics']);
    const server = createServer((req, res) => this.#handle(req, res, paths));
    this.#server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#o.port ?? 15020, this.#o.host ?? '0.0.0.0', () => {
        server.off('error', reject);
        resolve(server.address() as AddressInfo);
      });
    });
  }

  #handle(req: IncomingMessage, res: ServerResponse, paths: ReadonlySet<string>): void {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method !== 'GET' || !paths.has(path)) {
      res.statusCode = 404;
      res.end();
      return;
    }
    this.text().then(
      (text) => {
        res.setHeader('content-type', 'text/plain; version=0.0.4; charset=utf-8');
        res.end(text);
      },
      (e: unknown) => {
        res.statusCode = 500;
        res.end(`# failed to collect metrics: ${String(e)}\n`);
      },
    );
  }

  /** Collects, merges, evicts idle series, and renders the Prometheus text. */
  text(): Promise<string> {
    const run = this.#queue.then(() => this.#collectText());
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** How many series are held (for tests and diagnostics). */
  get seriesCount(): number {
    let n = 0;
    for (const f of this.#families.values()) n += f.series.size;
    return n;
  }

  async #collectText(): Promise<string> {
    const { resourceMetrics } = await this.collect();
    this.#resource = resourceMetrics.resource;
    const now = this.#now();
    for (const sm of resourceMetrics.scopeMetrics) {
      for (const m of sm.metrics) this.#merge(`${sm.scope.name}\u0000${sm.scope.version ?? ''}\u0000${m.descriptor.name}`, m, now);
    }
    const idle = this.#o.idleSeriesMs ?? 600_000;
    for (const [k, f] of this.#families) {
      for (const [sk, s] of f.series) if (now - s.changedAt > idle) f.series.delete(sk);
      if (f.series.size === 0) this.#families.delete(k);
    }
    return this.#serializer.serialize(this.#snapshot(resourceMetrics.resource));
  }

  #merge(key: string, m: MetricData, now: number): void {
    let f = this.#families.get(key);
    if (f === undefined || f.data.dataPointType !== m.dataPointType) {
      f = { data: m, series: new Map() };
      this.#families.set(key, f);
    }
    f.data = m;
    if (m.aggregationTemporality === AggregationTemporality.CUMULATIVE) {
      // A producer's cumulative series: served as given (it forgets idle ones itself).
      f.series.clear();
      for (const p of m.dataPoints as DataPoint<unknown>[]) f.series.set(attributesKey(p.attributes), { attributes: p.attributes, startTime: p.startTime, endTime: p.endTime, value: p.value as number | Histogram, changedAt: now });
      return;
    }
    for (const p of m.dataPoints as DataPoint<unknown>[]) {
      const sk = attributesKey(p.attributes);
      const s = f.series.get(sk);
      const v = p.value as number | Histogram;
      if (s === undefined) {
        f.series.set(sk, { attributes: p.attributes, startTime: p.startTime, endTime: p.endTime, value: typeof v === 'number' ? v : addHistogram({ ...v, buckets: { boundaries: [...v.buckets.boundaries], counts: v.buckets.counts.map(() => 0) }, count: 0, sum: 0, min: undefined, max: undefined }, v), changedAt: now });
        continue;
      }
      s.endTime = p.endTime;
      if (m.dataPointType === DataPointType.GAUGE) {
        if (s.value !== v) s.changedAt = now;
        s.value = v;
      } else if (typeof v === 'number') {
        if (v !== 0) s.changedAt = now;
        s.value = (s.value as number) + v;
      } else {
        if (v.count !== 0) s.changedAt = now;
        s.value = addHistogram(s.value as Histogram, v);
      }
    }
  }

  #snapshot(resource: ResourceMetrics['resource']): ResourceMetrics {
    const byScope = new Map<string, ResourceMetrics['scopeMetrics'][number]>();
    for (const [key, f] of this.#families) {
      const scopeKey = key.slice(0, key.lastIndexOf('\u0000'));
      const [name = '', version = ''] = scopeKey.split('\u0000');
      let sm = byScope.get(scopeKey);
      if (sm === undefined) {
        sm = { scope: version === '' ? { name } : { name, version }, metrics: [] };
        byScope.set(scopeKey, sm);
      }
      const dataPoints = [...f.series.values()].map((s) => ({ attributes: s.attributes, startTime: s.startTime, endTime: s.endTime, value: s.value }));
      (sm.metrics as MetricData[]).push({ ...f.data, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPoints } as MetricData);
    }
    return { resource, scopeMetrics: [...byScope.values()] };
  }

  protected override async onForceFlush(): Promise<void> {}

  protected override async onShutdown(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    if (s === undefined) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  /** The resource of the last collection (for tests). */
  get resource(): ResourceMetrics['resource'] | undefined {
    return this.#resource;
  }
}
