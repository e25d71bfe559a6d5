/**
 * meshlet's own metrics, continued (own-metrics.test.ts has the set-up, config and outlier
 * metrics): pool overflows, mirror drops, authorization decisions, inbound TLS and refused
 * connections, the Prometheus exposition and the table in docs/telemetry.md.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { delimiter, join } from 'node:path';
import { describe, test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { request } from 'undici';
import { createMesh, type Mesh } from '../../src/index.ts';
import { MESH_METRICS } from '../../src/telemetry/mesh-metrics/names.ts';
import { sdk } from '../helpers/metric-reader.ts';
import { parseExposition, sampleValue } from '../helpers/prometheus-text.ts';
import { call, destinationRule, serviceEntry, virtualService } from '../helpers/upstreams.ts';

import { CLUSTER, SVC, upstream } from '../helpers/own-metrics.ts';
import { until } from '../helpers/until.ts';

describe("meshlet's own metrics (continued)", () => {
  test('pool overflows per cluster (maxConnections 1, http1MaxPendingRequests 1: the third concurrent call)', async () => {
    const release: (() => void)[] = [];
    const up = await upstream('slow', (_q, res) => void release.push(() => res.end('done')));
    const m = sdk();
    const mesh = await createMesh({
      service: 'pool',
      config: [
        serviceEntry('svc', SVC, 80, [{ port: up.port }]),
        virtualService('svc', ['svc'], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 0 } }]),
        destinationRule('svc', 'svc', { trafficPolicy: { connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } } } }),
      ],
      telemetry: { ownMetrics: { meterProvider: m.provider } },
    });
    try {
      const calls = [0, 1, 2].map(() => call(mesh, 'http://svc/'));
      const third = await calls[2];
      assert.equal(third?.flags, 'UO');
      assert.equal(await m.value('meshlet_pool_overflows_total', { cluster: CLUSTER }), 1);
      await until(() => release.length > 0, 'the first request upstream');
      release.shift()?.();
      await until(() => release.length > 0, 'the queued request upstream');
      release.shift()?.();
      assert.deepEqual((await Promise.all(calls)).map((r) => r.status), [200, 200, 503]);
      assert.equal(await m.value('meshlet_pool_overflows_total', { cluster: CLUSTER }), 1);
      assert.equal(await m.value('meshlet_retry_budget_exhausted_total', {}), undefined, 'an overflow is not a refused retry');
    } finally {
      await mesh.close();
      await m.shutdown();
    }
  });

  test('mirror drops by mirror cluster and reason', async () => {
    const primary = await upstream('primary');
    const shadow = await upstream('shadow');
    const SHADOW = 'shadow.default.svc.cluster.local';
    const config = [
      serviceEntry('svc', SVC, 80, [{ port: primary.port }]),
      serviceEntry('shadow', SHADOW, 80, [{ port: shadow.port }]),
      virtualService('svc', ['svc'], [{ route: [{ destination: { host: 'svc' } }], mirror: { host: 'shadow' } }]),
    ];
    const m = sdk();
    const full = await createMesh({ service: 'mirror', config, maxMirrorsInFlight: 0, telemetry: { ownMetrics: { meterProvider: m.provider } } });
    const m2 = sdk();
    const small = await createMesh({ service: 'mirror2', config, retryBufferBytes: 16, telemetry: { ownMetrics: { meterProvider: m2.provider } } });
    try {
      for (let i = 0; i < 3; i++) assert.equal((await call(full, 'http://svc/')).status, 200);
      assert.equal(await m.value('meshlet_mirror_dropped_total', { cluster: `outbound|80||${SHADOW}`, reason: 'max-in-flight' }), 3);
      assert.equal((await call(small, 'http://svc/big', { method: 'POST', body: 'x'.repeat(100) })).status, 200);
      await until(async () => (await m2.value('meshlet_mirror_dropped_total', { reason: 'body-too-large' })) === 1, 'the drop of the large copy');
      assert.equal(await m2.value('meshlet_mirror_dropped_total', { cluster: `outbound|80||${SHADOW}`, reason: 'body-too-large' }), 1);
      assert.equal(shadow.hits, 0);
    } finally {
      await full.close();
      await small.close();
      await m.shutdown();
      await m2.shutdown();
    }
  });

  test('authorization decisions by policy and action, dry-run outcomes, inbound requests by TLS (plaintext: not ready for STRICT)', async () => {
    const m = sdk();
    const meta = (name: string, annotations?: Record<string, string>) => ({ name, namespace: 'foo', ...(annotations ? { annotations } : {}) });
    const mesh = await createMesh({
      service: 'httpbin',
      namespace: 'foo',
      labels: { app: 'httpbin' },
      config: [
        { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: meta('deny-admin'), spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] } },
        { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: meta('allow-get'), spec: { action: 'ALLOW', rules: [{ to: [{ operation: { methods: ['GET'] } }] }] } },
        { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: meta('dry', { 'istio.io/dry-run': 'true' }), spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/dry'] } }] }] } },
      ],
      telemetry: { ownMetrics: { meterProvider: m.provider } },
    });
    const server = mesh.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const statuses: number[] = [];
      for (const [method, path] of [['GET', '/a'], ['GET', '/a'], ['GET', '/admin'], ['POST', '/a'], ['GET', '/dry']] as const) {
        const r = await request(`${base}${path}`, { method });
        await r.body.dump();
        statuses.push(r.statusCode);
      }
      assert.deepEqual(statuses, [200, 200, 403, 403, 200]);
      const points = (await m.points('meshlet_authz_decisions_total')).map((p) => [p.attributes.policy, p.attributes.action, p.attributes.decision, p.value]);
      assert.deepEqual(
        points.sort((a, b) => String(a).localeCompare(String(b))),
        [
          ['', 'ALLOW', 'deny', 1], // POST: no ALLOW rule matched, the ALLOW stage's default deny
          ['foo/allow-get', 'ALLOW', 'allow', 3],
          ['foo/deny-admin', 'DENY', 'deny', 1],
        ],
      );
      assert.equal(await m.value('meshlet_authz_dry_run_decisions_total', { policy: 'foo/dry', action: 'DENY', result: 'deny' }), 1);
      assert.equal(await m.value('meshlet_authz_dry_run_decisions_total', { policy: '', action: 'DENY', result: 'allow' }), 4);
      assert.equal(await m.value('meshlet_inbound_tls_requests_total', { connection_security_policy: 'none' }), 5);
      assert.equal(await m.value('meshlet_inbound_tls_requests_total', { connection_security_policy: 'mutual_tls' }), 0);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
      await mesh.close();
      await m.shutdown();
    }
  });

  test('inbound connections refused, by port mode and transport (STRICT and no workload certificate yet)', async () => {
    const m = sdk();
    const warned: string[] = [];
    const mesh = await createMesh({
      service: 'strict',
      namespace: 'foo',
      config: [{ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: 'foo' }, spec: { mtls: { mode: 'STRICT' } } }],
      logger: { warn: (w) => warned.push(w) },
      telemetry: { ownMetrics: { meterProvider: m.provider } },
    });
    const server = mesh.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      for (let i = 0; i < 2; i++) await assert.rejects(request(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`), 'refused');
      assert.equal(await m.value('meshlet_inbound_connections_refused_total', { mode: 'STRICT', transport: 'unknown' }), 2);
      assert.equal(await m.value('meshlet_inbound_tls_requests_total', { connection_security_policy: 'none' }), 0, 'no request was read');
      assert.match(warned.join('\n'), /STRICT applies but this workload has no usable certificate/);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
      await mesh.close();
      await m.shutdown();
    }
  });

  test("through the SDK's Prometheus exporter the names come out as documented, and the page parses strictly (promtool too, when installed)", async () => {
    const exporter = new PrometheusExporter({ preventServerStart: true });
    const provider = new MeterProvider({ readers: [exporter] });
    const mesh = await createMesh({ service: 'prom', config: [], telemetry: { ownMetrics: { meterProvider: provider } } });
    try {
      await new Promise<void>((r) => mesh.once('config', () => r()));
      const { resourceMetrics } = await exporter.collect();
      const text = new PrometheusSerializer().serialize(resourceMetrics);
      const families = parseExposition(text);
      for (const name of ['meshlet_config_version', 'meshlet_config_source', 'meshlet_config_applied_total', 'meshlet_config_last_applied_timestamp_seconds', 'meshlet_inbound_tls_requests_total']) {
        assert.ok(families.has(name), `${name} in\n${text}`);
        assert.equal(families.get(name)?.type, MESH_METRICS[name as keyof typeof MESH_METRICS].kind);
      }
      assert.equal(sampleValue(families, 'meshlet_config_source', { mesh_service: 'prom', source: 'file' }), 1);
      // A sidecar's proxy reports its build as istio_build{component="proxy"}: Istio's mesh dashboard reads it.
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
      assert.equal(families.get('istio_build')?.type, 'gauge');
      assert.equal(sampleValue(families, 'istio_build', { mesh_service: 'prom', mesh_namespace: 'default', component: 'proxy', tag: pkg.version }), 1);
      const promtool = (process.env['PATH'] ?? '').split(delimiter).map((d) => join(d, 'promtool')).find((p) => existsSync(p));
      if (promtool !== undefined) {
        const r = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
        assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'promtool has nothing to say');
        assert.equal(r.status, 0);
      }
    } finally {
      await mesh.close();
      await provider.shutdown();
    }
  });

  test('every metric of the table is one the mesh produces (and nothing else)', async () => {
    // The names the tests above assert, against the table docs/telemetry.md documents.
    const asserted = new Set([
      'meshlet_config_version',
      'meshlet_config_source',
      'meshlet_config_last_applied_timestamp_seconds',
      'meshlet_config_applied_total',
      'meshlet_config_rejected_total',
      'meshlet_retries_total',
      'meshlet_retry_budget_exhausted_total',
      'meshlet_outlier_ejections_total',
      'meshlet_outlier_ejected_endpoints',
      'meshlet_pool_overflows_total',
      'meshlet_mirror_dropped_total',
      // Asserted in test/telemetry/otel-access-log.test.ts.
      'meshlet_access_log_dropped_total',
      'meshlet_authz_decisions_total',
      'meshlet_authz_dry_run_decisions_total',
      'meshlet_inbound_tls_requests_total',
      'meshlet_inbound_connections_refused_total',
      'istio_build',
    ]);
    assert.deepEqual(Object.keys(MESH_METRICS).sort(), [...asserted].sort());
    const m = sdk();
    const mesh: Mesh = await createMesh({ service: 'names', config: [], telemetry: { ownMetrics: { meterProvider: m.provider } } });
    try {
      await new Promise<void>((r) => mesh.once('config', () => r()));
      for (const n of await m.names()) assert.ok(n in MESH_METRICS, `${n} is in the table`);
    } finally {
      await mesh.close();
      await m.shutdown();
    }
  });
});
