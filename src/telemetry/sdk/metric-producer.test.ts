import assert from 'node:assert/strict';
import { channel } from 'node:diagnostics_channel';
import { after, afterEach, describe, it } from 'node:test';
import { AggregationTemporality, type DataPoint, MeterProvider, type MetricData, type MetricProducer, MetricReader } from '@opentelemetry/sdk-metrics';
import { InvalidArgumentError } from '../../core/errors.ts';
import type { CallEndMessage, InboundEndMessage, WorkloadIdentity } from '../../core/observe.ts';
import { callEndMessage, inboundEndMessage } from '../../../test/helpers/observe-messages.ts';
import { mergeMetrics } from '../metrics/config.ts';
import { IstioMetrics } from '../metrics/istio-metrics.ts';
import { aggregatingLocally } from '../metrics/outlet.ts';
import { encodePeerMetadata, localPeerMetadata } from '../metrics/peer-metadata.ts';
import { EvictingPrometheusReader } from './evicting-prometheus.ts';
import { meshletMetricProducer } from './metric-producer.ts';

class TestReader extends MetricReader {
  constructor(temporality: AggregationTemporality, producers: MetricProducer[] = []) {
    super({ aggregationTemporalitySelector: () => temporality, metricProducers: producers });
  }
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
  async istio(): Promise<MetricData[]> {
    const { resourceMetrics } = await this.collect();
    return resourceMetrics.scopeMetrics.flatMap((sm) => sm.metrics).filter((m) => m.descriptor.name.startsWith('istio_'));
  }
}

const identity: WorkloadIdentity = Object.freeze({ service: 'reviews', namespace: 'shop', labels: Object.freeze({ app: 'reviews', version: 'v2' }), serviceAccount: 'reviews', workloadName: 'reviews-v2' });
const ratings = Object.freeze({ app: 'ratings', version: 'v1', 'service.istio.io/workload-name': 'ratings-v1' });

function callEnd(over: Partial<CallEndMessage>): CallEndMessage {
  // A new wrapper per call around the endpoint's one labels object, as the kernel makes it.
  return callEndMessage(identity, { destination: { serviceAccount: 'ratings', namespace: 'shop', labels: ratings }, ...over });
}

const caller = encodePeerMetadata(localPeerMetadata({ workload: 'productpage-v1', namespace: 'front', labels: { app: 'productpage', version: 'v1' }, cluster: 'Kubernetes' }));

function inboundEnd(over: Partial<InboundEndMessage>): InboundEndMessage {
  return inboundEndMessage(identity, { headers: { 'x-envoy-peer-metadata-id': 'sidecar~1.2.3.4~productpage-v1.front~front.svc.cluster.local', 'x-envoy-peer-metadata': caller }, ...over });
}

const callEndCh = channel('meshlet:call:end');
const inboundEndCh = channel('meshlet:inbound:end');

/** A mix of requests: several label sets, repeated ones, gRPC, no destination, every bucket range. */
function traffic(): void {
  for (let i = 0; i < 40; i++) callEndCh.publish(callEnd({ durationMs: i * 13.7, responseBytes: i * 97 }));
  for (let i = 0; i < 7; i++) callEndCh.publish(callEnd({ status: 503, flags: 'UF,URX', durationMs: 3000 + i }));
  callEndCh.publish(callEnd({ protocol: 'grpc', status: 200, grpcStatus: 14, durationMs: 0.2 }));
  callEndCh.publish(callEnd({ destination: undefined, destinationService: undefined, cluster: undefined, route: undefined, status: 404, flags: 'NR', authority: 'nowhere:80' }));
  for (let i = 0; i < 25; i++) inboundEndCh.publish(inboundEnd({ status: i % 5 === 0 ? 403 : 200, durationMs: i, requestBytes: i * 1000 }));
  inboundEndCh.publish(inboundEnd({ headers: {}, status: 200 }));
}

let now = 0;
function mesh(provider: MeterProvider): IstioMetrics {
  const m = new IstioMetrics({ identity, workloadName: 'reviews-v2', now: () => now, warn: () => {}, principal: () => '', inMesh: () => true, ip: '10.1.1.1' }, { meterProvider: provider });
  m.start();
  return m;
}

/** The metrics without times, data points sorted by their attributes. */
function comparable(ms: MetricData[]): unknown {
  return ms
    .map((m) => ({
      ...m,
      dataPoints: (m.dataPoints as DataPoint<unknown>[])
        .map((p) => ({ attributes: { ...p.attributes }, value: p.value }))
        .sort((a, b) => JSON.stringify(a.attributes).localeCompare(JSON.stringify(b.attributes))),
    }))
    .sort((a, b) => a.descriptor.name.localeCompare(b.descriptor.name));
}

describe('meshletMetricProducer: Istio metrics aggregated by meshlet', () => {
  const closers: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
    now = 0;
  });
  after(() => assert.equal(aggregatingLocally(), false, 'every producer released'));

  it('refuses an unknown temporality with the InvalidArgumentError every meshlet API throws', () => {
    assert.throws(
      () => meshletMetricProducer({ temporality: 'sideways' as 'delta' }),
      (e: unknown) => e instanceof InvalidArgumentError && e.code === 'MESHLET_ERR_INVALID_ARG' && /temporality must be 'cumulative' or 'delta', got "sideways"/.test(e.message),
    );
    assert.equal(aggregatingLocally(), false, 'a refused producer holds nothing');
    assert.throws(() => meshletMetricProducer({ temporalty: 'delta' } as never), /^InvalidArgumentError: meshletMetricProducer: unknown option "temporalty" \(did you mean "temporality"\?\)$/);
    assert.equal(aggregatingLocally(), false);
  });

  it('gives the same metrics (descriptors, attributes, buckets, sums, min/max) as the SDK aggregating what the API is given', async () => {
    const viaApi = new TestReader(AggregationTemporality.CUMULATIVE);
    const apiProvider = new MeterProvider({ readers: [viaApi] });
    const a = mesh(apiProvider);
    traffic();
    const expected = await viaApi.istio();
    a.close();
    assert.equal(expected.length, 4);

    const producer = meshletMetricProducer();
    closers.push(() => producer.release());
    const viaProducer = new TestReader(AggregationTemporality.CUMULATIVE, [producer]);
    const provider = new MeterProvider({ readers: [viaProducer] });
    const b = mesh(provider);
    closers.push(() => b.close());
    assert.equal(aggregatingLocally(), true);
    traffic();
    const got = await viaProducer.istio();
    assert.deepEqual(comparable(got), comparable(expected));
    // Nothing went through the API as well (the SDK's own storage for the instruments stays empty).
    const { resourceMetrics } = await viaProducer.collect();
    assert.equal(resourceMetrics.scopeMetrics.flatMap((sm) => sm.metrics).filter((m) => m.descriptor.name === 'istio_requests_total').length, 1);
  });

  it('tag overrides (CEL, removed tags) give the same series both ways', async () => {
    const config = mergeMetrics([{ overrides: [{ match: { metric: 'REQUEST_COUNT' }, tagOverrides: { request_host: { value: 'request.host' }, response_flags: { operation: 'REMOVE' } } }, { match: { metric: 'REQUEST_SIZE' }, disabled: true }] }], ['prometheus'], () => true);
    const viaApi = new TestReader(AggregationTemporality.CUMULATIVE);
    const a = mesh(new MeterProvider({ readers: [viaApi] }));
    a.configure(config);
    traffic();
    const expected = await viaApi.istio();
    a.close();
    const producer = meshletMetricProducer();
    closers.push(() => producer.release());
    const viaProducer = new TestReader(AggregationTemporality.CUMULATIVE, [producer]);
    const b = mesh(new MeterProvider({ readers: [viaProducer] }));
    closers.push(() => b.close());
    b.configure(config);
    traffic();
    const got = await viaProducer.istio();
    assert.equal(got.length, 3, 'istio_request_bytes disabled');
    assert.equal(got.find((m) => m.descriptor.name === 'istio_requests_total')?.dataPoints[0]?.attributes['request_host'], 'ratings:9080');
    assert.deepEqual(comparable(got), comparable(expected));
  });

  it('delta: each collection gives what changed since the last one, and only the series that changed', async () => {
    const producer = meshletMetricProducer({ temporality: 'delta' });
    closers.push(() => producer.release());
    const reader = new TestReader(AggregationTemporality.DELTA, [producer]);
    const m = mesh(new MeterProvider({ readers: [reader] }));
    closers.push(() => m.close());
    callEndCh.publish(callEnd({ durationMs: 3 }));
    callEndCh.publish(callEnd({ status: 503, flags: 'UF' }));
    let ms = await reader.istio();
    const count = (x: MetricData[]): Record<string, unknown> => Object.fromEntries((x.find((d) => d.descriptor.name === 'istio_requests_total')?.dataPoints ?? []).map((p) => [p.attributes['response_code'], p.value]));
    assert.deepEqual(count(ms), { '200': 1, '503': 1 });
    assert.equal(ms[0]?.aggregationTemporality, AggregationTemporality.DELTA);
    callEndCh.publish(callEnd({ durationMs: 30 }));
    callEndCh.publish(callEnd({ durationMs: 30 }));
    ms = await reader.istio();
    assert.deepEqual(count(ms), { '200': 2 });
    const d = ms.find((x) => x.descriptor.name === 'istio_request_duration_milliseconds')?.dataPoints[0]?.value as { count: number; sum: number; buckets: { counts: number[] } };
    assert.equal(d.count, 2);
    assert.equal(d.sum, 60);
    assert.equal(d.buckets.counts[5], 2, '(25, 50]');
    assert.equal(d.buckets.counts[2], 0, 'the earlier 3 ms is not counted again');
    assert.deepEqual(await reader.istio(), [], 'nothing changed');
  });

  it('idle series leave the output (and come back from zero); release() sends data points through the API again', async () => {
    const producer = meshletMetricProducer();
    const reader = new TestReader(AggregationTemporality.CUMULATIVE, [producer]);
    const m = new IstioMetrics({ identity, workloadName: 'reviews-v2', now: () => now, warn: () => {}, principal: () => '', inMesh: () => true, ip: '10.1.1.1' }, { meterProvider: new MeterProvider({ readers: [reader] }), idleSeriesMs: 1000 });
    m.start();
    closers.push(() => m.close());
    callEndCh.publish(callEnd({ status: 503 }));
    callEndCh.publish(callEnd({}));
    now = 900;
    callEndCh.publish(callEnd({}));
    const codes = async (): Promise<Record<string, unknown>> =>
      Object.fromEntries(
        (await reader.istio())
          .filter((d) => d.descriptor.name === 'istio_requests_total')
          .flatMap((d) => d.dataPoints as DataPoint<unknown>[])
          .map((p) => [p.attributes['response_code'], p.value]),
      );
    assert.deepEqual(await codes(), { '200': 2, '503': 1 });
    now = 1500;
    callEndCh.publish(callEnd({}));
    assert.deepEqual(await codes(), { '200': 3 }, '503 idle for 1500 ms: gone');
    now = 1600;
    callEndCh.publish(callEnd({ status: 503 }));
    assert.deepEqual(await codes(), { '200': 3, '503': 1 }, 'back, from zero');
    producer.release();
    assert.equal(aggregatingLocally(), false);
    callEndCh.publish(callEnd({ status: 418 }));
    // A released producer hands out nothing; the SDK has the new data point.
    assert.deepEqual(await codes(), { '418': 1 });
  });

  it('two meshes with the same labels add up into one series', async () => {
    const producer = meshletMetricProducer();
    closers.push(() => producer.release());
    const reader = new TestReader(AggregationTemporality.CUMULATIVE, [producer]);
    const provider = new MeterProvider({ readers: [reader] });
    const a = mesh(provider);
    const b = mesh(provider);
    closers.push(() => a.close(), () => b.close());
    callEndCh.publish(callEnd({})); // both meshes have this workload: each counts it
    const points = (await reader.istio()).find((d) => d.descriptor.name === 'istio_requests_total')?.dataPoints ?? [];
    assert.equal(points.length, 1);
    assert.equal(points[0]?.value, 2);
  });

  it("a closed mesh's series are read once more by each producer's next collection (the SDK's final export after mesh.close()), then gone", async () => {
    const a = meshletMetricProducer();
    const b = meshletMetricProducer({ temporality: 'delta' });
    closers.push(() => a.release(), () => b.release());
    const ra = new TestReader(AggregationTemporality.CUMULATIVE, [a]);
    const rb = new TestReader(AggregationTemporality.DELTA, [b]);
    const provider = new MeterProvider({ readers: [ra, rb] });
    const count = async (r: TestReader): Promise<unknown> => (await r.istio()).find((d) => d.descriptor.name === 'istio_requests_total')?.dataPoints[0]?.value;
    const m = mesh(provider);
    callEndCh.publish(callEnd({}));
    assert.equal(await count(rb), 1);
    callEndCh.publish(callEnd({}));
    m.close();
    callEndCh.publish(callEnd({}));
    assert.equal(await count(ra), 2, 'what the mesh counted until it closed');
    assert.equal(await count(rb), 1, 'delta: what it counted since the last collection');
    assert.equal(await count(ra), undefined, 'collected: gone');
    assert.equal(await count(rb), undefined);
    // A producer that never collects holds the last 64 closed meshes' series, no more.
    const many = Array.from({ length: 70 }, () => mesh(provider));
    callEndCh.publish(callEnd({}));
    for (const x of many) x.close();
    const d = meshletMetricProducer();
    closers.push(() => d.release());
    // (d came after the meshes closed: it never sees them.)
    assert.deepEqual((await d.collect()).resourceMetrics.scopeMetrics, []);
    assert.equal(await count(ra), 64, 'the 64 meshes closed last, each counted 1');
  });

  it("the Prometheus endpoint's text is the same through the producer as through the API", async () => {
    const scrape = async (withProducer: boolean): Promise<string> => {
      const producer = withProducer ? meshletMetricProducer() : undefined;
      const reader = new EvictingPrometheusReader({ port: 0, host: '127.0.0.1', withoutTargetInfo: true, ...(producer === undefined ? {} : { metricProducers: [producer] }) });
      const provider = new MeterProvider({ readers: [reader] });
      const m = mesh(provider);
      traffic();
      const first = await reader.text();
      traffic();
      const text = await reader.text();
      m.close();
      producer?.release();
      await provider.shutdown();
      assert.notEqual(first, text);
      return text;
    };
    const api = await scrape(false);
    const local = await scrape(true);
    assert.match(local, /^istio_requests_total\{reporter="source",.*response_code="503".*\} 14$/m);
    assert.equal(local, api);
  });
});
