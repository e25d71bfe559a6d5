/**
 * The Export calls of an `envoyOtelAls` access log run in no request's async context: Envoy
 * flushes on its worker's timer (`grpc_access_logger.h`: `flush_timer_` armed on the dispatcher),
 * with no request around. A record is queued while a request ends; its batch must not take that
 * request's deadline (`x-envoy-expected-rq-timeout-ms`, `withDeadline`), nor its `x-request-id`
 * and trace context (an app's own tracing would parent the Export under the request).
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { withDeadline } from '../../src/index.ts';
import { until } from '../helpers/access-log.ts';
import { otelAlsFixture, otelAlsMesh } from '../helpers/otel-access-log.ts';
import { RATINGS } from '../helpers/otel-collector.ts';

const f = otelAlsFixture();

const headersOf = (i: number): Record<string, unknown> => f.collector.metadata[i]?.getMap() ?? {};

test('a record queued while a request ends: its Export carries neither the request deadline nor its x-request-id / trace context', async () => {
  const { collector } = f;
  collector.exports.length = 0;
  collector.metadata.length = 0;
  const { mesh, clock, log } = await otelAlsMesh(f, { accessLogging: [{ providers: [{ name: 'otel' }] }] }, { envoyOtelAls: { logFormat: { text: '%REQ(:PATH)%' } } });
  const server = mesh.createServer(async (_req, res) => {
    // A client-side record too, queued inside the served request (and inside a withDeadline).
    await withDeadline(50, async () => (await mesh.fetch(`http://${RATINGS}:9080/inner`)).text());
    res.end('in');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as AddressInfo).port;
    const r = await fetch(`http://127.0.0.1:${port}/outer`, {
      headers: { 'x-request-id': 'rid-ctx', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'x-envoy-expected-rq-timeout-ms': '50' },
    });
    await r.text();
    // The flush timer fires long after both deadlines passed.
    clock.advance(1000);
    await until(() => collector.records().length === 2, 'both records at the collector');
    assert.deepEqual(collector.bodies().sort(), ['/inner', '/outer']);
    const h = headersOf(0);
    for (const k of ['traceparent', 'x-envoy-expected-rq-timeout-ms', 'grpc-timeout']) assert.equal(h[k], undefined, `${k}: ${JSON.stringify(h)}`);
    assert.notEqual(h['x-request-id'], 'rid-ctx', "the request's x-request-id is not the Export's");
    assert.deepEqual(mesh.diagnostics().otelAccessLogs['otel']?.dropped, 0);
    assert.deepEqual(log.warnings, []);
  } finally {
    server.close();
    await mesh.close();
  }
});
