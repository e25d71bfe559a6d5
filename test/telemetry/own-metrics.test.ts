/**
 * meshlet's own metrics (docs/telemetry.md "meshlet's own metrics"): real outbound calls through a
 * mesh to real upstreams and real inbound requests to a mesh server, read back from the
 * OpenTelemetry SDK with an in-memory reader. Ejections run on a ManualClock.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { channels } from '../../src/core/observe.ts';
import { metrics } from '@opentelemetry/api';
import { createMesh, ManualClock, seededRandom } from '../../src/index.ts';
import { sdk } from '../helpers/metric-reader.ts';
import { call, destinationRule, serviceEntry, virtualService } from '../helpers/upstreams.ts';

import { CLUSTER, SVC, upstream } from '../helpers/own-metrics.ts';

describe("meshlet's own metrics", () => {
  test('without an SDK (the no-op MeterProvider) or with ownMetrics: false nothing subscribes; the global MeterProvider is the default', async () => {
    const up = await upstream('plain');
    assert.equal(channels.callEnd.hasSubscribers, false, 'no other subscriber in this process yet');
    const m = sdk();
    const rows = [
      { name: 'no option, no global SDK', o: {}, global: false, subscribed: false },
      // (Istio's request metrics, which also read call:end, are off here: this is about meshlet's own.)
      { name: 'ownMetrics: false, a global SDK', o: { telemetry: { ownMetrics: false, metrics: { enabled: false } } }, global: true, subscribed: false },
      { name: 'no option, a global SDK', o: {}, global: true, subscribed: true },
      { name: 'a provider given', o: { telemetry: { ownMetrics: { meterProvider: m.provider } } }, global: false, subscribed: true },
    ];
    const counted: (number | undefined)[] = [];
    try {
      for (const { name, o, global, subscribed } of rows) {
        if (global) metrics.setGlobalMeterProvider(m.provider);
        const mesh = await createMesh({ service: 'client', config: [serviceEntry('svc', SVC, 80, [{ port: up.port }])], ...o });
        try {
          assert.equal(channels.callEnd.hasSubscribers, subscribed, name);
          assert.equal(channels.outlierEjected.hasSubscribers, subscribed, name);
          assert.equal((await call(mesh, 'http://svc/')).status, 200);
          await new Promise<void>((r) => setImmediate(r));
          // Counted while the mesh runs (its counters are reported until it closes).
          if (subscribed) counted.push(await m.value('meshlet_config_applied_total', { mesh_service: 'client' }));
        } finally {
          await mesh.close();
          metrics.disable();
        }
        assert.equal(channels.callEnd.hasSubscribers, false, 'close() unsubscribes');
      }
      assert.deepEqual(counted, [1, 1], 'the two meshes with metrics counted their config');
    } finally {
      await m.shutdown();
    }
  });

  test('bad options are refused, naming the field', async () => {
    const rows: [unknown, RegExp][] = [
      [{ ownMetrics: 'yes' }, /`telemetry\.ownMetrics` must be true, false or/],
      [{ ownMetrics: { meterProvider: {} } }, /`telemetry\.ownMetrics\.meterProvider` must be an OpenTelemetry MeterProvider/],
      [{ ownMetrics: { endpointLabels: 1 } }, /`telemetry\.ownMetrics\.endpointLabels` must be true or false/],
      [{ ownMetrics: { endpoints: true } }, /createMesh: unknown option "telemetry\.ownMetrics\.endpoints"/],
      ['on', /`telemetry` must be an object/],
    ];
    for (const [telemetry, err] of rows) {
      await assert.rejects(createMesh({ service: 'client', config: [], telemetry: telemetry as never }), err, JSON.stringify(telemetry));
    }
  });

  test('config: info gauge with version and source, applied and rejected counts, last applied time', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'meshlet-own-metrics-'));
    const m = sdk();
    const file = join(dir, 'mesh.yaml');
    const se = (port: number) => `apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: svc, namespace: default}\nspec:\n  hosts: [${SVC}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  endpoints: [{address: 127.0.0.1, ports: {http: ${port}}}]\n`;
    await writeFile(file, se(1001));
    const t0 = Date.now() / 1000;
    const warned: string[] = [];
    const mesh = await createMesh({ service: 'cfg', config: file, watch: false, logger: { warn: (w) => warned.push(w) }, telemetry: { ownMetrics: { meterProvider: m.provider } } });
    try {
      await new Promise<void>((r) => mesh.once('config', () => r()));
      const first = mesh.configVersion;
      assert.match(first, /^[0-9a-f]{12}$/);
      assert.deepEqual(await m.points('meshlet_config_version'), [{ attributes: { mesh_service: 'cfg', mesh_namespace: 'default' }, value: Number.parseInt(first, 16) }]);
      const sources = async () => Object.fromEntries((await m.points('meshlet_config_source')).map((p) => [p.attributes.source, p.value]));
      assert.deepEqual(await sources(), { file: 1, 'control-plane': 0, cache: 0, none: 0 });
      assert.equal(await m.value('meshlet_config_applied_total', { source: 'file' }), 1);
      const at = (await m.value('meshlet_config_last_applied_timestamp_seconds', {})) as number;
      assert.ok(at >= t0 && at <= Date.now() / 1000, `applied at ${at}, created at ${t0}`);

      await writeFile(file, se(1002));
      assert.equal(await mesh.reload(), true);
      assert.notEqual(mesh.configVersion, first);
      assert.deepEqual((await m.points('meshlet_config_version')).map((p) => p.value.toString(16).padStart(12, '0')), [mesh.configVersion], 'the version in use, one series');
      assert.equal(await m.value('meshlet_config_applied_total', { source: 'file' }), 2);
      assert.equal(await m.value('meshlet_config_rejected_total', {}), undefined, 'nothing rejected yet');

      await writeFile(file, 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bad}\nspec: {http: [{route: []}]}\n');
      const rejected = new Promise<void>((r) => mesh.once('rejected', () => r()));
      assert.equal(await mesh.reload(), false);
      await rejected;
      assert.equal(await m.value('meshlet_config_rejected_total', { mesh_service: 'cfg' }), 1);
      assert.match(warned.join('\n'), /new config rejected/);
      assert.equal(await m.value('meshlet_config_applied_total', { source: 'file' }), 2);
    } finally {
      await mesh.close();
      await m.shutdown();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('outlier ejections per cluster and detector; the ejected-endpoints gauge follows ejection and return (ManualClock)', async () => {
    const bad = await upstream('bad', (_q, res) => {
      res.statusCode = 503;
      res.end();
    });
    const good = await upstream('good');
    const clock = new ManualClock(1000);
    const m = sdk();
    const od = { outlierDetection: { consecutive5xxErrors: 2, interval: '1s', baseEjectionTime: '30s', maxEjectionPercent: 100 } };
    const config = [serviceEntry('svc', SVC, 80, [{ port: bad.port }, { port: good.port }]), virtualService('svc', ['svc'], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 0 } }]), destinationRule('svc', 'svc', { trafficPolicy: od })];
    const mesh = await createMesh({ service: 'od', clock, random: seededRandom(5), config, telemetry: { ownMetrics: { meterProvider: m.provider } } });
    // A second mesh in the same process, labelling endpoints: its counts are its own.
    const m2 = sdk();
    const other = await createMesh({ service: 'od2', clock, random: seededRandom(5), config, telemetry: { ownMetrics: { meterProvider: m2.provider, endpointLabels: true } } });
    try {
      assert.deepEqual(await m.points('meshlet_outlier_ejected_endpoints'), [], 'no cluster used yet');
      let n = 0;
      while (bad.hits < 2 && n++ < 50) await call(mesh, 'http://svc/');
      assert.equal(bad.hits, 2);
      assert.equal(await m.value('meshlet_outlier_ejections_total', { cluster: CLUSTER, detector: 'consecutive_5xx' }), 1);
      assert.equal(await m.value('meshlet_outlier_ejected_endpoints', { cluster: CLUSTER }), 1);
      for (let i = 0; i < 5; i++) assert.equal((await call(mesh, 'http://svc/')).status, 200, 'the good endpoint serves');
      assert.equal(await m.value('meshlet_outlier_ejections_total', { cluster: CLUSTER }), 1);
      clock.advance(31_000);
      assert.equal(await m.value('meshlet_outlier_ejected_endpoints', { cluster: CLUSTER }), 0, 'returned after baseEjectionTime');
      assert.deepEqual((await m.points('meshlet_outlier_ejections_total')).map((p) => p.attributes), [{ mesh_service: 'od', mesh_namespace: 'default', cluster: CLUSTER, detector: 'consecutive_5xx' }]);
      assert.deepEqual(await m2.points('meshlet_outlier_ejections_total'), [], 'the other mesh saw none of it');

      const b0 = bad.hits;
      n = 0;
      while (bad.hits < b0 + 2 && n++ < 50) await call(other, 'http://svc/');
      const ep = `127.0.0.1:${bad.port}`;
      assert.equal(await m2.value('meshlet_outlier_ejections_total', { cluster: CLUSTER, detector: 'consecutive_5xx', endpoint: ep }), 1);
      assert.deepEqual(await m2.points('meshlet_outlier_ejected_endpoints'), [{ attributes: { mesh_service: 'od2', mesh_namespace: 'default', cluster: CLUSTER }, value: 1 }], 'the gauge is per cluster');
      assert.equal(await m.value('meshlet_outlier_ejections_total', { cluster: CLUSTER }), 1, 'the first mesh still counts one');
    } finally {
      await mesh.close();
      await other.close();
      await m.shutdown();
      await m2.shutdown();
    }
  });

  test('the ejected-endpoints gauge reads 0 for a cluster whose outlier detection was removed while an endpoint was ejected', async () => {
    const bad = await upstream('bad2', (_q, res) => {
      res.statusCode = 503;
      res.end();
    });
    const good = await upstream('good2');
    const dir = await mkdtemp(join(tmpdir(), 'meshlet-own-metrics-od-'));
    const file = join(dir, 'mesh.json');
    const write = (od: boolean) =>
      writeFile(
        file,
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'List',
          items: [
            serviceEntry('svc', SVC, 80, [{ port: bad.port }, { port: good.port }]),
            virtualService('svc', ['svc'], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 0 } }]),
            destinationRule('svc', 'svc', od ? { trafficPolicy: { outlierDetection: { consecutive5xxErrors: 1, baseEjectionTime: '300s', maxEjectionPercent: 100 } } } : {}),
          ],
        }),
      );
    await write(true);
    const m = sdk();
    const mesh = await createMesh({ service: 'od3', clock: new ManualClock(1000), random: seededRandom(5), config: file, watch: false, telemetry: { ownMetrics: { meterProvider: m.provider } } });
    try {
      let n = 0;
      while (bad.hits < 1 && n++ < 50) await call(mesh, 'http://svc/');
      assert.equal(await m.value('meshlet_outlier_ejected_endpoints', { cluster: CLUSTER }), 1);
      await write(false);
      assert.equal(await mesh.reload(), true);
      assert.equal(await m.value('meshlet_outlier_ejected_endpoints', { cluster: CLUSTER }), 0);
    } finally {
      await mesh.close();
      await m.shutdown();
      await rm(dir, { recursive: true, force: true });
    }
  });

  for (const { limit, pool } of [
    { limit: 'max_retries', pool: { connectionPool: { http: { maxRetries: 1 } } } },
    { limit: 'retry_budget', pool: { retryBudget: { percent: 0, minRetryConcurrency: 1 } } },
  ]) {
    test(`retries per cluster, and retries the breaker refused (${limit}: one retry at a time; flag UO)`, async () => {
      // The first two requests are held until both arrived, then both answered 503: one call's
      // retry takes the only retry slot, the other's is refused.
      const held: (() => void)[] = [];
      const up = await upstream('r503', (_q, res) => {
        const answer = () => {
          res.statusCode = 503;
          res.end();
        };
        if (held.length < 1 && up.hits <= 2) held.push(answer);
        else {
          for (const h of held.splice(0)) h();
          answer();
        }
      });
      const m = sdk();
      const mesh = await createMesh({
        service: 'rt',
        random: seededRandom(7),
        config: [
          serviceEntry('svc', SVC, 80, [{ port: up.port }]),
          virtualService('svc', ['svc'], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 1, retryOn: '503', retryIgnorePreviousHosts: false } }]),
          destinationRule('svc', 'svc', { trafficPolicy: pool }),
        ],
        telemetry: { ownMetrics: { meterProvider: m.provider } },
      });
      try {
        const rs = await Promise.all([call(mesh, 'http://svc/a'), call(mesh, 'http://svc/b')]);
        assert.deepEqual(rs.map((r) => r.status), [503, 503]);
        assert.deepEqual(rs.map((r) => r.flags ?? '').sort(), ['UO', 'URX'], 'one refused retry (UO), one retried and exhausted (URX)');
        assert.equal(up.hits, 3);
        assert.equal(await m.value('meshlet_retries_total', { cluster: CLUSTER }), 1);
        assert.deepEqual((await m.points('meshlet_retry_budget_exhausted_total')).map((p) => [p.attributes.cluster, p.attributes.limit, p.value]), [[CLUSTER, limit, 1]]);
        await call(mesh, 'http://svc/c');
        assert.equal(await m.value('meshlet_retries_total', { cluster: CLUSTER }), 2);
      } finally {
        await mesh.close();
        await m.shutdown();
      }
    });
  }
});
