/**
 * `envoyOtelAls` access logs end to end, as Istio's task "OpenTelemetry access logging" sets them
 * up (MeshConfig `extensionProviders: [{name: otel, envoyOtelAls: {service, port}}]`, a Telemetry
 * naming `otel`), with a grpc-js LogsService stand-in on 127.0.0.1: records from real calls
 * (mesh.fetch, the client side) and real requests (mesh.createServer, the server side); Istio's
 * default body; labels as attributes; `filter.expression` and `match.mode`; the batching timer on
 * a ManualClock; the collector down (requests unaffected, records dropped and counted); close
 * sending what is batched. The mesh's own Export calls are not themselves logged.
 *
 * Istio's own checks this follows: tests/integration/telemetry/api/accesslogs_test.go (a
 * Telemetry with an OTel provider: the collector receives a record for the request made),
 * pilot/pkg/model/telemetry_logging_test.go (the generated config: default format text, labels
 * as attributes, no resource attributes).
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { T0, until } from '../helpers/access-log.ts';
import { sdk } from '../helpers/metric-reader.ts';
import { flush, otelAlsFixture, otelAlsMesh } from '../helpers/otel-access-log.ts';
import { collectorAndRatings, localServiceEntry as se, OTEL_HOST, RATINGS } from '../helpers/otel-collector.ts';
import { startUpstream } from '../helpers/upstreams.ts';

/** Calls through the mesh and reads the answer. */
async function get(mesh: Mesh, path: string, headers: Record<string, string> = {}): Promise<number> {
  const r = await mesh.fetch(`http://${RATINGS}:9080${path}`, { headers });
  await r.text();
  return r.status;
}

describe('envoyOtelAls: records at an OpenTelemetry collector (Istio task "OpenTelemetry access logging")', () => {
  const f = otelAlsFixture((req, res) => {
    res.statusCode = req.url?.startsWith('/fail') ? 503 : 200;
    res.end('ratings');
  });

  test('client side: Istio default body, sent after the 1 s flush interval, one ResourceLogs/ScopeLogs; the Export call itself is not logged', async () => {
    const { collector, up } = f;
    collector.exports.length = 0;
    const s = await otelAlsMesh(f, { accessLogging: [{ providers: [{ name: 'otel' }] }] });
    try {
      assert.equal(await get(s.mesh, '/ok', { 'x-request-id': 'rid-1', 'user-agent': 'ua' }), 200);
      assert.equal(await get(s.mesh, '/two', { 'x-request-id': 'rid-2', 'user-agent': 'ua' }), 200);
      s.clock.advance(999);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(collector.exports.length, 0, 'nothing before the flush interval');
      await flush(s, collector, 2);
      assert.equal(collector.exports.length, 1, 'one Export for the batch');
      const ep = `127.0.0.1:${up.port}`;
      // The upstream connection's local end (an ephemeral port) as <local>: test/telemetry/access-log-default-local.test.ts checks its value.
      assert.deepEqual(collector.bodies().map((b) => b.replace(/( outbound\|\S+) 127\.0\.0\.1:\d+ /, '$1 <local> ')), [
        `[2026-12-03T04:05:06.000Z] "GET /ok HTTP/1.1" 200 - via_upstream - "-" 0 7 0 0 "-" "ua" "rid-1" "${RATINGS}:9080" "${ep}" outbound|9080||${RATINGS} <local> - - - default\n`,
        `[2026-12-03T04:05:06.000Z] "GET /two HTTP/1.1" 200 - via_upstream - "-" 0 7 0 0 "-" "ua" "rid-2" "${RATINGS}:9080" "${ep}" outbound|9080||${RATINGS} <local> - - - default\n`,
      ]);
      const r = collector.records()[0];
      assert.equal(r?.time_unix_nano, String(BigInt(T0) * 1_000_000n));
      assert.deepEqual(r?.attributes, [], 'no labels: no attributes');
      assert.deepEqual(collector.exports[0]?.resource_logs[0]?.resource?.attributes, []);
      // Another flush interval: the Export call made no record of its own.
      s.clock.advance(1000);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(collector.records().length, 2);
      assert.deepEqual(s.log.warnings, []);
      // Counted when the collector's answer arrives, which can be after the records are there.
      await until(() => s.mesh.diagnostics().otelAccessLogs?.['otel']?.written === 2, 'the two records counted as written');
      assert.deepEqual(s.mesh.diagnostics().otelAccessLogs, { otel: { written: 2, dropped: 0 } });
    } finally {
      await s.mesh.close();
    }
  });

  test('labels become string attributes (sorted, as istiod writes them), logFormat.text the body; CLIENT-only match and a filter expression', async () => {
    const { collector } = f;
    collector.exports.length = 0;
    const s = await otelAlsMesh(
      f,
      { accessLogging: [{ match: { mode: 'CLIENT' }, providers: [{ name: 'otel' }], filter: { expression: 'response.code >= 400' } }] },
      { envoyOtelAls: { logFormat: { text: '%REQ(:METHOD)% %RESPONSE_CODE%', labels: { status: '%RESPONSE_CODE%', path: '%REQ(:PATH)%', missing: '%REQ(X-NONE)%', number: 5 } } } },
    );
    const server = s.mesh.createServer((_req, res) => res.end('in'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      assert.equal(await get(s.mesh, '/ok'), 200);
      assert.equal(await get(s.mesh, '/fail'), 503);
      // A server-side request: CLIENT-only, so no record.
      await (await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/in`)).text();
      await flush(s, collector, 1);
      s.clock.advance(1000);
      await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(collector.bodies(), ['GET 503']);
      assert.deepEqual(
        collector.records()[0]?.attributes.map((kv) => [kv.key, kv.value.string_value]),
        [
          ['missing', '-'],
          ['number', ''],
          ['path', '/fail'],
          ['status', '503'],
        ],
      );
    } finally {
      server.close();
      await s.mesh.close();
    }
  });

  test('server side (SERVER match): a record per request the mesh server answers', async () => {
    const { collector } = f;
    collector.exports.length = 0;
    const s = await otelAlsMesh(f, { accessLogging: [{ match: { mode: 'SERVER' }, providers: [{ name: 'otel' }] }] }, { envoyOtelAls: { logFormat: { text: '%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %UPSTREAM_CLUSTER_RAW%' } } });
    const server = s.mesh.createServer((_req, res) => res.end('in'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      await (await fetch(`http://127.0.0.1:${port}/in`)).text();
      assert.equal(await get(s.mesh, '/client-not-logged'), 200);
      await flush(s, collector, 1);
      assert.deepEqual(collector.bodies(), [`GET /in 200 inbound|${port}||`]);
    } finally {
      server.close();
      await s.mesh.close();
    }
  });

  test('the collector down: requests are unaffected; the batch is dropped, counted and warned once', async () => {
    const { collector } = f;
    collector.exports.length = 0;
    collector.mode = 'error';
    const m = sdk();
    const s = await otelAlsMesh(f, { accessLogging: [{ providers: [{ name: 'otel' }] }] }, { mesh: { telemetry: { ownMetrics: { meterProvider: m.provider } } } });
    try {
      for (let i = 0; i < 3; i++) assert.equal(await get(s.mesh, `/${i}`), 200);
      s.clock.advance(1000);
      await until(() => s.mesh.diagnostics().otelAccessLogs['otel']?.dropped === 3, 'the failed batch to be counted');
      assert.equal(await get(s.mesh, '/after'), 200);
      s.clock.advance(1000);
      await until(() => s.mesh.diagnostics().otelAccessLogs['otel']?.dropped === 4, 'the second failed batch');
      assert.equal(await m.value('meshlet_access_log_dropped_total', { provider: 'otel', reason: 'export-failed' }), 4);
      assert.equal(s.log.warnings.length, 1, s.log.warnings.join('\n'));
      assert.match(s.log.warnings[0] as string, /access log "otel": export to opentelemetry-collector\.observability\.svc\.cluster\.local:4317 failed: .*collector down.*; its 3 record\(s\) are dropped \(requests are not affected\)/);
      collector.mode = 'ok';
      assert.equal(await get(s.mesh, '/back'), 200);
      await flush(s, collector, 1);
      assert.match(collector.bodies()[0] as string, /"GET \/back HTTP\/1\.1" 200/);
      await until(() => s.log.warnings.length === 2, 'the recovery to be said');
      assert.match(s.log.warnings[1] as string, /exports to .* succeed again \(4 record\(s\) dropped so far\)/);
    } finally {
      collector.mode = 'ok';
      await s.mesh.close();
    }
  });

  test('the Export call is routed by the mesh: a VirtualService for the collector host sends it to another service', async () => {
    const { collector, up } = f;
    collector.exports.length = 0;
    const { mesh, clock } = await otelAlsMesh(f, { accessLogging: [{ providers: [{ name: 'otel' }] }] }, {
      envoyOtelAls: { service: `observability/${OTEL_HOST}`, logFormat: { text: '%REQ(:PATH)%' } },
      services: [
        // The collector's own endpoint is a port nothing listens on; the route sends the calls to otel-v2.
        se('otel-collector', 'observability', OTEL_HOST, 4317, 'GRPC', 1),
        se('otel-v2', 'observability', 'otel-v2.observability.svc.cluster.local', 4317, 'GRPC', collector.port),
        { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'otel', namespace: 'observability' }, spec: { hosts: [OTEL_HOST], http: [{ route: [{ destination: { host: 'otel-v2.observability.svc.cluster.local', port: { number: 4317 } } }] }] } },
        se('ratings', 'default', RATINGS, 9080, 'HTTP', up.port),
      ],
    });
    try {
      assert.equal(await get(mesh, '/routed'), 200);
      clock.advance(1000);
      await until(() => collector.records().length === 1, 'the record at otel-v2');
      assert.deepEqual(collector.bodies(), ['/routed']);
    } finally {
      await mesh.close();
    }
  });

  test('mesh.close() sends what is batched (no flush interval needed)', async () => {
    const { collector } = f;
    collector.exports.length = 0;
    const s = await otelAlsMesh(f, { accessLogging: [{ providers: [{ name: 'otel' }] }] }, { envoyOtelAls: { logFormat: { text: '%REQ(:PATH)%' } } });
    assert.equal(await get(s.mesh, '/last'), 200);
    await s.mesh.close();
    assert.deepEqual(collector.bodies(), ['/last']);
  });

  test('mesh.close() with a collector that never answers: waits closeTimeoutMs at most, then drops', async () => {
    const { collector } = f;
    collector.exports.length = 0;
    collector.mode = 'hang';
    const s = await otelAlsMesh(f, { accessLogging: [{ providers: [{ name: 'otel' }] }] });
    try {
      assert.equal(await get(s.mesh, '/x'), 200);
      let closed = false;
      const closing = s.mesh.close().then(() => (closed = true));
      // The batch goes out at close; the grace timer is set as it does.
      await until(() => collector.held === 1, 'the Export to reach the collector');
      s.clock.advance(4999);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(closed, false, 'waits for the collector within closeTimeoutMs');
      s.clock.advance(1);
      await closing;
      assert.equal(s.mesh.diagnostics().otelAccessLogs['otel']?.dropped, 1);
    } finally {
      collector.mode = 'ok';
    }
  });
  test('mesh.close() with a collector and an outbound call that never answer: closeTimeoutMs bounds both together, not one after the other', async () => {
    const { collector } = f;
    collector.exports.length = 0;
    collector.mode = 'hang';
    let release = (): void => undefined;
    const slow = await startUpstream('slow', (req, res) => {
      if (req.url !== '/hang') return void res.end('ok');
      return new Promise<void>((r) => {
        release = () => {
          res.destroy();
          r();
        };
      });
    });
    const s = await otelAlsMesh(f, { accessLogging: [{ providers: [{ name: 'otel' }] }] }, { services: collectorAndRatings(collector.port, slow.port) });
    try {
      assert.equal(await get(s.mesh, '/logged'), 200);
      const hanging = get(s.mesh, '/hang').catch((e: Error) => e);
      await until(() => slow.hits === 2, 'the second call at the upstream');
      let closed = false;
      const held = collector.held;
      const closing = s.mesh.close().then(() => (closed = true));
      await until(() => collector.held === held + 1, 'the Export to reach the collector');
      s.clock.advance(5000);
      // No more time passes: what is left is due now (advance(0) fires it), not 5000 ms later.
      await until(() => {
        s.clock.advance(0);
        return closed;
      }, 'close() to end at closeTimeoutMs (5000 ms), not at twice that');
      await closing;
      assert.ok((await hanging) instanceof Error, 'the call in flight was cancelled');
    } finally {
      collector.mode = 'ok';
      release();
      await slow.close();
    }
  });
});

describe('envoyOtelAls providers createMesh refuses, naming the field', () => {
  for (const [p, why] of [
    [{ service: 'otel.observability.svc.cluster.local:4317', port: 4317 }, /extensionProviders\[0\] \(otel\)\.envoyOtelAls: invalid service .*the port goes in `port`/],
    [{ service: 'otel', port: 4317, logFormat: { labels: { code: '%RESPONSE_COD%' } } }, /extensionProviders\[0\] \(otel\)\.envoyOtelAls: logFormat\.labels\.code: .*RESPONSE_COD/],
  ] as const) {
    test(JSON.stringify(p), async () => {
      await assert.rejects(createMesh({ service: 'reviews', logger: { warn: () => undefined }, extensionProviders: [{ name: 'otel', envoyOtelAls: p as never }], config: [] }), why);
    });
  }
});
