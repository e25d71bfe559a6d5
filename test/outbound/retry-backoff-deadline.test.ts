/**
 * A retry whose jittered backoff outlasts the route timeout is still scheduled, and the route
 * timeout then answers 504 UT, as Envoy's router does: `RetryStateImpl::shouldRetry` arms the
 * backoff timer without looking at the route timeout, and the response timer firing during the
 * wait answers `504 upstream request timeout` with flag UT (router_test.cc
 * `RetryTimeoutDuringRetryDelay`). meshlet used to skip such a retry and pass the 503 through
 * at once. (A `Retry-After` that would reach the deadline still ends retrying: docs, differences.)
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { ManualClock } from '../../src/index.ts';
import { meshFor, until } from '../helpers/mesh-calls.ts';
import { call, startUpstream, type Upstream } from '../helpers/upstreams.ts';

describe('retry backoff and the route timeout', () => {
  const ups: Upstream[] = [];
  after(async () => {
    await Promise.all(ups.map((u) => u.close()));
  });

  test('RetryTimeoutDuringRetryDelay: a backoff longer than the time left is waited on, and the route timeout answers 504 UT', async () => {
    const clock = new ManualClock();
    const up = await startUpstream('slow-backoff', (_q, res) => {
      res.statusCode = 503;
      res.end('down');
    });
    ups.push(up);
    // First retry: uniform in [0, 100) ms; the draw 0.9 makes it 90 ms, past the 50 ms timeout.
    const mesh = await meshFor(
      [{ port: up.port }],
      [{ route: [{ destination: { host: 'svc' } }], timeout: '50ms', retries: { attempts: 2, retryOn: '5xx', backoff: '100ms', retryIgnorePreviousHosts: false } }],
      [],
      { clock, random: { next: () => 0.9 } },
    );
    try {
      let settled = false;
      const p = call(mesh, 'http://svc/').finally(() => {
        settled = true;
      });
      await until(() => up.hits === 1 && clock.pending >= 1, 'the first attempt');
      // Let the 503 reach the retry decision (no clock time passes).
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(settled, false, 'the 503 is not passed through: the retry is scheduled');
      clock.advance(50);
      const r = await p;
      assert.equal(r.status, 504);
      assert.equal(r.flags, 'UT');
      assert.equal(up.hits, 1, 'the retry never went out');
    } finally {
      await mesh.close();
    }
  });

  test('a backoff that ends before the route timeout retries as usual', async () => {
    const clock = new ManualClock();
    const up = await startUpstream('short-backoff', (_q, res, hit) => {
      res.statusCode = hit === 1 ? 503 : 200;
      res.end(hit === 1 ? 'down' : 'ok');
    });
    ups.push(up);
    const mesh = await meshFor(
      [{ port: up.port }],
      [{ route: [{ destination: { host: 'svc' } }], timeout: '50ms', retries: { attempts: 2, retryOn: '5xx', backoff: '100ms', retryIgnorePreviousHosts: false } }],
      [],
      { clock, random: { next: () => 0.3 } },
    );
    try {
      const p = call(mesh, 'http://svc/');
      await until(() => up.hits === 1 && clock.pending >= 2, 'the retry to be scheduled');
      clock.advance(30);
      const r = await p;
      assert.equal(r.status, 200);
      assert.equal(up.hits, 2);
    } finally {
      await mesh.close();
    }
  });

  test('mesh.close() during a retry backoff ends the call (MESHLET_ERR_CLOSED): the retry never goes out on a closed mesh', async () => {
    const clock = new ManualClock();
    const up = await startUpstream('close-in-backoff', (_q, res) => {
      res.statusCode = 503;
      res.end('down');
    });
    ups.push(up);
    const mesh = await meshFor([{ port: up.port }], [{ route: [{ destination: { host: 'svc' } }], timeout: '30s', retries: { attempts: 2, retryOn: '5xx', backoff: '10s', retryIgnorePreviousHosts: false } }], [], { clock, random: { next: () => 0.9 } });
    let outcome: unknown;
    const p = call(mesh, 'http://svc/').then(
      (r) => (outcome = r.status),
      (e: { code?: string }) => (outcome = e.code),
    );
    await until(() => up.hits === 1, 'the first attempt');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(outcome, undefined, 'waiting to retry');
    await mesh.close();
    await until(() => outcome !== undefined, 'the call ended by close()');
    await p;
    assert.equal(outcome, 'MESHLET_ERR_CLOSED');
    clock.advance(60_000);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(up.hits, 1, 'no retry after close');
  });
});
