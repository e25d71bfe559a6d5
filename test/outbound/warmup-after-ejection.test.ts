/**
 * An endpoint that returns from outlier ejection gets its full share at once, as behind a
 * sidecar: Envoy starts an endpoint's slow start window only once (when the balancer first sees
 * it), and only an active health check — which Istio never configures — starts it again. Before,
 * meshlet put a returning endpoint back into `warmup`, so it got ~10% of its share for the
 * whole window.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createMesh, ManualClock, type OutboundEvent, seededRandom } from '../../src/index.ts';
import { call, destinationRule, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

const ups: Upstream[] = [];
after(() => Promise.all(ups.map((u) => u.close())));

test('an endpoint back from ejection is not slow-started again', async () => {
  const a = await startUpstream('a');
  let failing = true;
  const b = await startUpstream('b', (_q, res) => {
    res.statusCode = failing ? 500 : 200;
    res.end('b');
  });
  ups.push(a, b);
  const clock = new ManualClock();
  const SVC = 'svc.default.svc.cluster.local';
  const mesh = await createMesh({
    service: 'client',
    clock,
    random: seededRandom(5),
    logger: { warn: () => undefined },
    config: [
      serviceEntry('svc', SVC, 80, [{ port: a.port }, { port: b.port }]),
      virtualService('svc', ['svc'], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 0 } }]),
      destinationRule('svc', 'svc', {
        trafficPolicy: {
          loadBalancer: { simple: 'ROUND_ROBIN', warmup: { duration: '60s' } },
          outlierDetection: { consecutive5xxErrors: 1, interval: '1s', baseEjectionTime: '1s', maxEjectionPercent: 100 },
        },
      }),
    ],
  });
  const events: OutboundEvent[] = [];
  mesh.on('ejected', (e: OutboundEvent) => events.push(e));
  mesh.on('returned', (e: OutboundEvent) => events.push(e));
  try {
    for (let i = 0; i < 4 && events.length === 0; i++) await call(mesh, 'http://svc/');
    assert.deepEqual(events.map((e) => e.type), ['ejected']);
    failing = false;
    clock.advance(1000);
    assert.deepEqual(events.map((e) => e.type), ['ejected', 'returned']);
    const hits = { a: 0, b: 0 };
    for (let i = 0; i < 20; i++) {
      const r = await call(mesh, 'http://svc/');
      hits[r.body as 'a' | 'b']++;
    }
    // Plain round robin over two equal endpoints (warming, b would get ~1 in 11).
    assert.deepEqual(hits, { a: 10, b: 10 });
  } finally {
    await mesh.close();
  }
});
