import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMesh, ManualClock, seededRandom } from '../../src/index.ts';
import { answering, call, destinationRule, serviceEntry, startUpstream } from '../helpers/upstreams.ts';

test('mesh.diagnostics(): config in use, mirror counters, clusters with endpoints in flight, ejected (until when, why), weight, locality, labels, requests and connections (a copy)', async () => {
  const good = await startUpstream('good');
  const bad = await startUpstream('bad', answering(503, 'bad'));
  const clock = new ManualClock(1000);
  const mesh = await createMesh({
    service: 'client',
    clock,
    random: seededRandom(3),
    config: [
      serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: good.port }, { port: bad.port }]),
      destinationRule('svc', 'svc', { trafficPolicy: { outlierDetection: { consecutive5xxErrors: 1, baseEjectionTime: '30s', maxEjectionPercent: 100 } } }),
    ],
  });
  try {
    const before = mesh.diagnostics();
    assert.equal(before.configSource, 'file');
    assert.equal(before.configVersion, mesh.snapshot.version);
    assert.deepEqual(before.mirrors, { sent: 0, dropped: 0, failed: 0, inFlight: 0 });
    assert.deepEqual(before.clusters, [], 'no cluster used yet');
    for (let i = 0; i < 6; i++) await call(mesh, 'http://svc/');
    const d = mesh.diagnostics();
    assert.deepEqual(d.clusters.map((c) => c.name), ['outbound|80||svc.default.svc.cluster.local']);
    const eps = Object.fromEntries((d.clusters[0]?.endpoints ?? []).map((e) => [e.endpoint, e]));
    // Connections are what undici keeps open (at least the one each endpoint answered on).
    const open = (e: (typeof eps)[string] | undefined) => {
      assert.ok((e?.connections ?? 0) >= 1, `${e?.endpoint} has connections open`);
      return { ...e, connections: 'open' };
    };
    const common = { active: 0, weight: 1, locality: '', labels: { 'topology.istio.io/cluster': 'Kubernetes' }, connections: 'open' };
    assert.deepEqual(open(eps[`127.0.0.1:${bad.port}`]), {
      ...common,
      endpoint: `127.0.0.1:${bad.port}`,
      ejected: true,
      ejectedForMs: 30_000,
      ejectionReason: '1 consecutive 5xx (consecutive5xxErrors=1)',
      requests: { total: 1, success: 0, error: 1, timeout: 0 },
    });
    assert.deepEqual(open(eps[`127.0.0.1:${good.port}`]), { ...common, endpoint: `127.0.0.1:${good.port}`, ejected: false, ejectedForMs: 0, ejectionReason: '', requests: { total: 5, success: 5, error: 0, timeout: 0 } });
    clock.advance(10_000);
    assert.equal(mesh.diagnostics().clusters[0]?.endpoints.find((e) => e.ejected)?.ejectedForMs, 20_000);
    // Whole milliseconds, as Envoy's ejected time (the system clock is performance.now(), fractional).
    clock.advance(1_000.4);
    assert.equal(mesh.diagnostics().clusters[0]?.endpoints.find((e) => e.ejected)?.ejectedForMs, 19_000);
    (d.mirrors as { sent: number }).sent = 99;
    assert.equal(mesh.diagnostics().mirrors.sent, 0, 'a copy');
  } finally {
    await mesh.close();
    await good.close();
    await bad.close();
  }
});
