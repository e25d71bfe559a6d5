/**
 * The retry budget is a share of the destination's active *and pending* requests, as Envoy's
 * RetryBudgetImpl::max() computes it (`requests_.count() + pending_requests_.count()`,
 * source/common/upstream/resource_manager_impl.h): calls queued for a connection count too.
 * On a ManualClock the backoff never ends until the test advances it, so the retries admitted
 * stay in backoff, each holding its slot of the budget.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock, seededRandom } from '../../src/index.ts';
import { createMesh } from '../../src/index.ts';
import { destinationRule, serviceEntry, startUpstream, virtualService } from '../helpers/upstreams.ts';
import { until } from '../helpers/until.ts';

test('calls queued for a connection count in the retry budget\'s base (Envoy: active + pending requests)', async () => {
  const up = await startUpstream('r503', (_q, res) => {
    res.statusCode = 503;
    res.end();
  });
  const clock = new ManualClock();
  const mesh = await createMesh({
    service: 'client',
    clock,
    random: seededRandom(5),
    config: [
      serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }]),
      virtualService('svc', ['svc'], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 1, retryOn: '5xx' } }]),
      // One connection: one request active at a time, the others pending for it.
      destinationRule('svc', 'svc', { trafficPolicy: { connectionPool: { tcp: { maxConnections: 1 } }, retryBudget: { percent: 50, minRetryConcurrency: 1 } } }),
    ],
  });
  try {
    const finished: string[] = [];
    const calls = Array.from({ length: 10 }, () =>
      mesh.fetch('http://svc/').then(async (r) => {
        await r.text();
        finished.push(r.headers.get('x-meshlet-response-flags') ?? '');
        return r.status;
      }),
    );
    for (const c of calls) c.catch(() => undefined); // a failed assertion closes the mesh with calls in backoff
    // Every first attempt answered: each call is either refused its retry (done, UO) or waits in backoff.
    await until(() => up.hits === 10 && clock.pending + finished.length >= 10, 'every first attempt to be answered');
    const refused = finished.length;
    const admitted = 10 - refused;
    // Decisions: 1 active + 9, 8, 7 … pending → 50% of 10, 9, 8, … ≥ 3 retries admitted before the
    // budget is full. Counting the active request alone (1 → max(0, 1) = 1) admits one.
    assert.equal(admitted, 3, `admitted ${admitted}, refused ${finished.join(' ')}`);
    assert.ok(finished.every((f) => f.includes('UO')), finished.join(' '));
    clock.advance(1000);
    assert.deepEqual(new Set(await Promise.all(calls)), new Set([503]));
    assert.equal(up.hits, 10 + admitted);
  } finally {
    await mesh.close();
    await up.close();
  }
});
