/**
 * `telemetry.flush()`: a serverless handler (AWS Lambda: the process is frozen after it returns,
 * and may be ended without notice) exports what the mesh recorded — Istio's metrics, the
 * sampled calls' spans and the `envoyOtelAls` access-log batch — before returning, without
 * shutting telemetry down, and the mesh keeps working and recording after it.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { createMesh, flushAccessLogs } from '../../src/index.ts';
import { aggregatingLocally } from '../../src/telemetry/metrics/outlet.ts';
import { startTelemetry } from '../../src/telemetry/sdk/index.ts';
import { SVC, upstream } from '../helpers/own-metrics.ts';
import { call, serviceEntry } from '../helpers/upstreams.ts';
import { otelAlsFixture, otelAlsMesh } from '../helpers/otel-access-log.ts';
import { RATINGS } from '../helpers/otel-collector.ts';

/** An OTLP/HTTP (JSON) receiver: Istio's request count per export, and the spans received. */
async function receiver(): Promise<{ endpoint: string; requests: number[]; spans: number; close(): Promise<void> }> {
  const rx = { requests: [] as number[], spans: 0 };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (req.url === '/v1/metrics') {
        const body = JSON.parse(text) as { resourceMetrics: { scopeMetrics: { metrics: { name: string; sum?: { dataPoints: { asInt?: string | number; asDouble?: number }[] } }[] }[] }[] };
        const points = body.resourceMetrics.flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics.filter((m) => m.name === 'istio_requests_total').flatMap((m) => m.sum?.dataPoints ?? [])));
        rx.requests.push(points.reduce((n, p) => n + Number(p.asInt ?? p.asDouble ?? 0), 0));
      }
      if (req.url === '/v1/traces') rx.spans += (text.match(/"spanId"/g) ?? []).length;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get requests() {
      return rx.requests;
    },
    get spans() {
      return rx.spans;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('telemetry.flush()', () => {
  after(() => assert.equal(aggregatingLocally(), false, 'every producer released'));

  test('exports the metrics and spans recorded so far, an hour before the periodic export, and exporting goes on', async () => {
    const up = await upstream('svc');
    const rx = await receiver();
    const telemetry = await startTelemetry({ serviceName: 'handler', prometheus: false, otlp: { protocol: 'http/json', endpoint: rx.endpoint, exportIntervalMs: 3_600_000 } });
    const mesh = await createMesh({ service: 'handler', config: [serviceEntry('svc', SVC, 80, [{ port: up.port }])], telemetry: { tracing: { samplingPercentage: 100 } } });
    try {
      for (let i = 0; i < 3; i++) assert.equal((await call(mesh, 'http://svc/')).status, 200);
      await telemetry.flush();
      assert.deepEqual(rx.requests, [3], 'one export, with the 3 calls');
      assert.ok(rx.spans >= 3, `the spans were sent (${rx.spans})`);
      // The next invocation: still recorded, and flushed again.
      assert.equal((await call(mesh, 'http://svc/')).status, 200);
      await telemetry.flush();
      assert.deepEqual(rx.requests, [3, 4]);
    } finally {
      await mesh.close();
      await telemetry.shutdown();
      await telemetry.flush(); // after shutdown: nothing, no error
      await rx.close();
    }
  });

  describe('an envoyOtelAls access log', () => {
    const fixture = otelAlsFixture();
    test("its batch is sent by the flush, not at the mesh clock's next interval or close, and logging goes on", async () => {
      const telemetry = await startTelemetry({ serviceName: 'handler', prometheus: false });
      // On a ManualClock that is never moved: the 1 s batch interval never comes.
      const s = await otelAlsMesh(fixture, undefined, { envoyOtelAls: { logFormat: { text: '%REQ(:AUTHORITY)% %RESPONSE_CODE%' } } });
      try {
        assert.equal((await call(s.mesh, `http://${RATINGS}:9080/`)).status, 200);
        assert.deepEqual(fixture.collector.bodies(), []);
        await telemetry.flush();
        assert.deepEqual(fixture.collector.bodies(), [`${RATINGS}:9080 200`]);
        assert.equal((await call(s.mesh, `http://${RATINGS}:9080/`)).status, 200);
        await telemetry.flush();
        assert.deepEqual(fixture.collector.bodies(), [`${RATINGS}:9080 200`, `${RATINGS}:9080 200`]);
      } finally {
        await s.mesh.close();
        await telemetry.shutdown();
      }
    });

    test("an app with its own OpenTelemetry SDK flushes it with meshlet's flushAccessLogs()", async () => {
      const s = await otelAlsMesh(fixture, undefined, { envoyOtelAls: { logFormat: { text: '%REQ(:AUTHORITY)% %RESPONSE_CODE%' } } });
      try {
        const before = fixture.collector.bodies().length;
        assert.equal((await call(s.mesh, `http://${RATINGS}:9080/`)).status, 200);
        assert.deepEqual(fixture.collector.bodies().slice(before), []);
        await flushAccessLogs();
        assert.deepEqual(fixture.collector.bodies().slice(before), [`${RATINGS}:9080 200`]);
      } finally {
        await s.mesh.close();
      }
    });
  });
});
