/**
 * The documented shutdown order (docs/telemetry.md): `await mesh.close(); await
 * telemetry.shutdown();` — the final export, made by the SDK's shutdown after the mesh closed,
 * carries what the mesh recorded since the last export: Istio's metrics (meshlet's own series,
 * read by its metric producer) and meshlet's own metrics. Through `startTelemetry()` (OTLP to a
 * local receiver) and through an app's own SDK with `meshletMetricProducer()`.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type DataPoint, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { createMesh } from '../../src/index.ts';
import { aggregatingLocally } from '../../src/telemetry/metrics/outlet.ts';
import { meshletMetricProducer, startTelemetry } from '../../src/telemetry/sdk/index.ts';
import { SVC, upstream } from '../helpers/own-metrics.ts';
import { call, serviceEntry } from '../helpers/upstreams.ts';

type Sums = Map<string, number>;

/** Adds each metric's points (counters: values) of OTLP/JSON export bodies into `sums`, by `name{reporter}` for Istio's. */
function addJson(sums: Sums, body: { resourceMetrics?: { scopeMetrics?: { metrics?: { name: string; sum?: { dataPoints: { asInt?: string | number; asDouble?: number; attributes?: { key: string; value: { stringValue?: string } }[] }[] } }[] }[] }[] }): void {
  for (const rm of body.resourceMetrics ?? []) {
    for (const sm of rm.scopeMetrics ?? []) {
      for (const m of sm.metrics ?? []) {
        for (const p of m.sum?.dataPoints ?? []) {
          const reporter = p.attributes?.find((a) => a.key === 'reporter')?.value.stringValue;
          const key = reporter === undefined ? m.name : `${m.name}{${reporter}}`;
          sums.set(key, (sums.get(key) ?? 0) + Number(p.asInt ?? p.asDouble ?? 0));
        }
      }
    }
  }
}

/** The same, from the SDK's in-memory exporter (the last export: values are cumulative). */
function addSdk(sums: Sums, exports: readonly ResourceMetrics[]): void {
  const last = exports.at(-1);
  for (const sm of last?.scopeMetrics ?? []) {
    for (const m of sm.metrics) {
      if (m.descriptor.name.endsWith('_bytes') || m.descriptor.name.endsWith('_milliseconds')) continue;
      for (const p of m.dataPoints as DataPoint<number>[]) {
        if (typeof p.value !== 'number') continue;
        const reporter = p.attributes['reporter'];
        const key = reporter === undefined ? m.descriptor.name : `${m.descriptor.name}{${String(reporter)}}`;
        sums.set(key, (sums.get(key) ?? 0) + p.value);
      }
    }
  }
}

/** An OTLP/HTTP (JSON) receiver of metrics. */
async function receiver(): Promise<{ endpoint: string; sums: Sums; close(): Promise<void> }> {
  const sums: Sums = new Map();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/metrics') addJson(sums, JSON.parse(Buffer.concat(chunks).toString('utf8')));
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, sums, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe('metrics recorded before mesh.close() are exported by the SDK shutdown that follows it', () => {
  after(() => assert.equal(aggregatingLocally(), false, 'every producer released'));

  test('startTelemetry (OTLP): `await mesh.close(); await telemetry.shutdown();` exports the Istio and meshlet metrics of the closed mesh', async () => {
    const up = await upstream('svc');
    const rx = await receiver();
    try {
      // An hour between exports: only the shutdown's final export sends anything.
      const telemetry = await startTelemetry({ serviceName: 'client', prometheus: false, otlp: { protocol: 'http/json', endpoint: rx.endpoint, exportIntervalMs: 3_600_000, traces: false } });
      const mesh = await createMesh({ service: 'client', config: [serviceEntry('svc', SVC, 80, [{ port: up.port }])] });
      for (let i = 0; i < 5; i++) assert.equal((await call(mesh, 'http://svc/')).status, 200);
      await mesh.close();
      await telemetry.shutdown();
      assert.equal(rx.sums.get('istio_requests_total{source}'), 5, `exported: ${JSON.stringify([...rx.sums])}`);
      assert.equal(rx.sums.get('meshlet_config_applied_total'), 1, "meshlet's own metrics too");
    } finally {
      await rx.close();
    }
  });

  test("the app's own SDK with meshletMetricProducer(): closing the mesh, then the MeterProvider, exports them", async () => {
    const up = await upstream('svc');
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const producer = meshletMetricProducer();
    const provider = new MeterProvider({ readers: [new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000, metricProducers: [producer] })] });
    try {
      const mesh = await createMesh({ service: 'client', config: [serviceEntry('svc', SVC, 80, [{ port: up.port }])], telemetry: { metrics: { meterProvider: provider }, ownMetrics: { meterProvider: provider } } });
      for (let i = 0; i < 5; i++) assert.equal((await call(mesh, 'http://svc/')).status, 200);
      await mesh.close();
      // The exporter's results are cleared by its shutdown: read them as the final export hands them over.
      const exported: ResourceMetrics[] = [];
      const exportFn = exporter.export.bind(exporter);
      exporter.export = (m, cb) => {
        exported.push(m);
        exportFn(m, cb);
      };
      await provider.shutdown();
      const sums: Sums = new Map();
      addSdk(sums, exported);
      assert.equal(sums.get('istio_requests_total{source}'), 5, `exported: ${JSON.stringify([...sums])}`);
      assert.equal(sums.get('meshlet_config_applied_total'), 1, "meshlet's own metrics too");
    } finally {
      producer.release();
    }
  });
});
