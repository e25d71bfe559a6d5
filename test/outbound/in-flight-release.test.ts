/**
 * An endpoint's in-flight count (Envoy's `rq_active`: least-request balancing and the pool
 * limits read it) is given back however the attempt ends — also when a layer throws after the
 * attempt was counted (here the mesh's Clock, read when the attempt is observed). It used to
 * stay taken: a phantom request on the endpoint forever.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { test } from 'node:test';
import { request } from 'undici';
import { createMesh, ManualClock } from '../../src/index.ts';
import { destinationRule, serviceEntry, startUpstream } from '../helpers/upstreams.ts';

/** A manual clock whose reading throws while `broken`, when the upstream layer reads it (first as it sends an attempt). */
class BreakingClock extends ManualClock {
  broken = false;
  override now(): number {
    if (this.broken && /at UpstreamCall\./.test(new Error().stack ?? '')) throw new Error('clock broke');
    return super.now();
  }
}

test('a layer that throws after the attempt was counted leaves no request in flight on the endpoint', async () => {
  const up = await startUpstream('up');
  const clock = new BreakingClock(1000);
  const mesh = await createMesh({
    service: 'client',
    clock,
    config: [
      serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }]),
      // One request at a time: a phantom one would refuse every later call (503 UO).
      destinationRule('svc', 'svc', { trafficPolicy: { connectionPool: { http: { http2MaxRequests: 1, http1MaxPendingRequests: 1 } } } }),
    ],
  });
  // Someone observes attempts: the upstream layer reads the clock when one is sent.
  const onStart = () => undefined;
  subscribe('meshlet:attempt:start', onStart);
  const active = () => mesh.diagnostics().clusters.flatMap((c) => c.endpoints.map((e) => e.active));
  try {
    clock.broken = true;
    for (let i = 0; i < 3; i++) {
      const failed = await request('http://svc/', { dispatcher: mesh.dispatcher }).then(
        async (r) => {
          await r.body.dump();
          return r.statusCode >= 500;
        },
        () => true,
      );
      assert.ok(failed, 'the call failed (the clock broke)');
    }
    clock.broken = false;
    assert.deepEqual(active(), [0], 'nothing in flight on the endpoint');
    const r = await request('http://svc/', { dispatcher: mesh.dispatcher });
    assert.equal(r.statusCode, 200, 'the pool limit of 1 is free again (no phantom request)');
    assert.equal(await r.body.text(), 'up');
    assert.deepEqual(active(), [0]);
  } finally {
    unsubscribe('meshlet:attempt:start', onStart);
    clock.broken = false;
    await mesh.close();
    await up.close();
  }
});
