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
 * It implements the SDK's `IMetricReader` itself rather than extending its `MetricReader` class,
 * so importing `meshlet/telemetry` loads no SDK package; the exporter package's serializer is
 * loaded by {@link EvictingPrometheusReader.listen} (or the first {@link EvictingPrometheusReader.text}).
 *
 * @module
 */
import cluster from 'node:cluster';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import type { AggregationOption, AggregationTemporality, CollectionResult, DataPoint, Histogram, IMetricReader, MetricCollectOptions, MetricData, MetricProducer, ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { loadPeers } from './peers.ts';
import { CUMULATIVE, DEFAULT_AGGREGATION, DELTA, GAUGE_POINTS } from './sdk-values.ts';
import { formatHostPort } from '../../core/host-port.ts';

/** Options of {@link EvictingPrometheusReader}. */
export interface EvictingPrometheusOptions {
  /** @defaultValue 15020 (the port Istio's merged metrics are scraped on) */
  readonly port?: number | undefined;
  /** @defaultValue '0.0.0.0' */
  readonly host?: string | undefined;
  /** Paths served. @defaultValue ['/stats/prometheus', '/metrics'] (Istio's path, and the usual one) */
  readonly paths?: readonly string[] | undefined;
  /** A series unchanged for this long leaves the output. @defaultValue 600000 (10 minutes) */
  readonly idleSeriesMs?: number | undefined;
  /** Leave out the `target_info` series (the resource's attributes). @defaultValue false */
  readonly withoutTargetInfo?: boolean | undefined;
  /** Series per metric the SDK keeps between two scrapes. @defaultValue 10000 */
  readonly cardinalityLimit?: number | undefined;
  /** Time source for idleness, in ms on a monotonic time line (a wall clock stepped by NTP would evict every series at once, or none for an hour). @defaultValue performance.now */
  readonly now?: (() => number) | undefined;
  /**
   * More sources of metrics (such as {@link meshletMetricProducer}). Cumulative metrics they give
   * are served as given (they forget their idle series themselves); delta ones are added up.
   * @defaultValue none
   */
  readonly metricProducers?: readonly MetricProducer[] | undefined;
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
export class EvictingPrometheusReader implements IMetricReader {
  readonly #o: EvictingPrometheusOptions;
  readonly #now: () => number;
  readonly #families = new Map<string, Family>();
  readonly #producers: readonly MetricProducer[];
  #serializer: PrometheusSerializer | undefined;
  #sdkProducer: MetricProducer | undefined;
  #shutdown = false;
  #server: Server | undefined;
  #resource: ResourceMetrics['resource'] | undefined;
  /** Collections run one at a time (two scrapes must not both take the same deltas). */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(o: EvictingPrometheusOptions = {}) {
    this.#o = o;
    this.#now = o.now ?? (() => performance.now());
    this.#producers = [...(o.metricProducers ?? [])];
  }

  /** Called once by the MeterProvider the reader is given to. */
  setMetricProducer(metricProducer: MetricProducer): void {
    if (this.#sdkProducer !== undefined) throw new Error('MetricReader can not be bound to a MeterProvider again.');
    this.#sdkProducer = metricProducer;
  }

  selectAggregation(): AggregationOption {
    return DEFAULT_AGGREGATION;
  }

  /** DELTA for every instrument: the SDK keeps nothing between scrapes; this reader adds up. */
  selectAggregationTemporality(): AggregationTemporality {
    return DELTA;
  }

  selectCardinalityLimit(): number {
    return this.#o.cardinalityLimit ?? 10_000;
  }

  /** The SDK's metrics and the extra producers', as the SDK's `MetricReader.collect()` merges them. */
  async collect(options?: MetricCollectOptions): Promise<CollectionResult> {
    if (this.#sdkProducer === undefined) throw new Error('MetricReader is not bound to a MetricProducer');
    if (this.#shutdown) throw new Error('MetricReader is shutdown');
    const o = options?.timeoutMillis === undefined ? {} : { timeoutMillis: options.timeoutMillis };
    const [sdk, ...more] = await Promise.all([this.#sdkProducer.collect(o), ...this.#producers.map((p) => p.collect(o))]);
    const first = sdk as CollectionResult;
    return {
      resourceMetrics: { resource: first.resourceMetrics.resource, scopeMetrics: first.resourceMetrics.scopeMetrics.concat(more.flatMap((r) => r.resourceMetrics.scopeMetrics)) },
      errors: first.errors.concat(more.flatMap((r) => r.errors)),
    };
  }

  async forceFlush(): Promise<void> {}

  /** Closes the HTTP server. */
  async shutdown(): Promise<void> {
    if (this.#shutdown) return;
    this.#shutdown = true;
    const s = this.#server;
    this.#server = undefined;
    if (s === undefined) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  /** The exporter package's serializer; an error naming the package when it is not installed. */
  async #loadSerializer(): Promise<PrometheusSerializer> {
    if (this.#serializer === undefined) {
      const [{ PrometheusSerializer }] = await loadPeers('EvictingPrometheusReader', [['@opentelemetry/exporter-prometheus', () => import('@opentelemetry/exporter-prometheus')]]);
      this.#serializer ??= new PrometheusSerializer(undefined, false, undefined, this.#o.withoutTargetInfo ?? false, true);
    }
    return this.#serializer;
  }

  /**
   * Starts the HTTP server; resolves with its address. Needs `@opentelemetry/exporter-prometheus` (rejects naming it when it is missing).
   *
   * The port is bound by this process itself (`exclusive`), never shared: in a node:cluster worker
   * a plain `listen()` is handed to the primary, which shares one socket among the workers that
   * ask for the same port and gives each scrape to one of them — each worker's counters in turn,
   * which Prometheus reads as counter resets. A port another worker holds is then `EADDRINUSE`.
   */
  async listen(): Promise<AddressInfo> {
    await this.#loadSerializer();
    const paths = new Set(this.#o.paths ?? ['/stats/prometheus', '/metrics']);
    const server = createServer((req, res) => this.#handle(req, res, paths));
    this.#server = server;
    const port = this.#o.port ?? 15020;
    const host = this.#o.host ?? '0.0.0.0';
    return new Promise((resolve, reject) => {
      const failed = (e: NodeJS.ErrnoException): void => {
        this.#server = undefined;
        reject(e.code === 'EADDRINUSE' ? inUse(e, host, port) : e);
      };
      server.once('error', failed);
      server.listen({ port, host, exclusive: true }, () => {
        server.off('error', failed);
        resolve(server.address() as AddressInfo);
      });
    });
  }

  #handle(req: IncomingMessage, res: ServerResponse, paths: ReadonlySet<string>): void {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method !== 'GET' || !paths.has(path)) {
      res.statusCode = 404;
      // Say where the metrics are (a scrape config or a browser pointed at the port's root).
      res.setHeader('content-type', 'text/plain; charset=utf-8');
      res.end(`not found: the metrics are at ${[...paths].join(', ')}\n`);
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
    const serializer = await this.#loadSerializer();
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
    return serializer.serialize(this.#snapshot(resourceMetrics.resource));
  }

  #merge(key: string, m: MetricData, now: number): void {
    let f = this.#families.get(key);
    if (f === undefined || f.data.dataPointType !== m.dataPointType) {
      f = { data: m, series: new Map() };
      this.#families.set(key, f);
    }
    f.data = m;
    if (m.aggregationTemporality === CUMULATIVE) {
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
      if (m.dataPointType === GAUGE_POINTS) {
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
      (sm.metrics as MetricData[]).push({ ...f.data, aggregationTemporality: CUMULATIVE, dataPoints } as MetricData);
    }
    return { resource, scopeMetrics: [...byScope.values()] };
  }

  /** The resource of the last collection (for tests). */
  get resource(): ResourceMetrics['resource'] | undefined {
    return this.#resource;
  }
}

/** EADDRINUSE, saying what to do when it is another worker of a node:cluster that holds the port. */
function inUse(e: NodeJS.ErrnoException, host: string, port: number): Error {
  const worker = cluster.isWorker ? ` (in a node:cluster worker: another worker, or the primary, may hold it — each process serves its own metrics on a port of its own, e.g. port ${port} + cluster.worker.id; see docs/deploying.md "node:cluster, PM2")` : '';
  const err: NodeJS.ErrnoException = new Error(`the Prometheus endpoint cannot listen on ${formatHostPort(host, port)}: address in use (EADDRINUSE)${worker}`, { cause: e });
  err.code = 'EADDRINUSE';
  return err;
}
