/**
 * `outlierDetection.minHealthPercent` is Envoy's healthy panic threshold (Istio sets
 * `common_lb_config.healthy_panic_threshold` from it): when fewer than that percentage of the
 * endpoints are healthy, calls go to all of them, ejected ones included. Before, meshlet only
 * warned that it was not supported and kept sending every call to the one endpoint left.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createMesh, ManualClock, type OutboundEvent, seededRandom } from '../../src/index.ts';
import { call, destinationRule, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

const ups: Upstream[] = [];
after(() => Promise.all(ups.map((u) => u.close())));

const SVC = 'svc.default.svc.cluster.local';

for (const minHealthPercent of [0, 50]) {
  test(`2 of 3 endpoints ejected, minHealthPercent ${minHealthPercent}`, async () => {
    const fail = (_q: unknown, res: { statusCode: number; end(): void }) => {
      res.statusCode = 500;
      res.end();
    };
    const good = await startUpstream('good');
    const bad1 = await startUpstream('bad1', fail);
    const bad2 = await startUpstream('bad2', fail);
    ups.push(good, bad1, bad2);
    const mesh = await createMesh({
      service: 'client',
      random: seededRandom(3),
      clock: new ManualClock(),
      logger: { warn: () => undefined },
      config: [
        serviceEntry('svc', SVC, 80, [{ port: good.port }, { port: bad1.port }, { port: bad2.port }]),
        virtualService('svc', ['svc'], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 0 } }]),
        destinationRule('svc', 'svc', {
          trafficPolicy: {
            loadBalancer: { simple: 'ROUND_ROBIN' },
            outlierDetection: { consecutive5xxErrors: 1, maxEjectionPercent: 100, baseEjectionTime: '30s', minHealthPercent },
          },
        }),
      ],
    });
    const ejected: OutboundEvent[] = [];
    mesh.on('ejected', (e: OutboundEvent) => ejected.push(e));
    try {
      // Each failing endpoint is ejected at its first 500; round robin reaches both within a few calls.
      for (let i = 0; i < 10 && ejected.length < 2; i++) await call(mesh, 'http://svc/');
      assert.equal(ejected.length, 2);
      const before = { good: good.hits, bad: bad1.hits + bad2.hits };
      const statuses = new Set<number>();
      for (let i = 0; i < 30; i++) statuses.add((await call(mesh, 'http://svc/')).status);
      const after = { good: good.hits - before.good, bad: bad1.hits + bad2.hits - before.bad };
      if (minHealthPercent === 0) {
        // Istio's default: no panic mode, the healthy endpoint takes every call.
        assert.deepEqual(after, { good: 30, bad: 0 });
        assert.deepEqual([...statuses], [200]);
      } else {
        // 1 of 3 healthy (33%) < 50%: panic, round robin over all three.
        assert.deepEqual(after, { good: 10, bad: 20 });
        assert.deepEqual([...statuses].sort(), [200, 500]);
        assert.match(String(mesh.explain({ url: 'http://svc/' })), /panic below 50% healthy \(in panic: all hosts, ejected hosts used\)/);
      }
    } finally {
      await mesh.close();
    }
  });
}
