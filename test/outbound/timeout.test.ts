import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock, withDeadline } from '../../src/index.ts';
import { meshFor, settle, until } from '../helpers/mesh-calls.ts';
import { call, startUpstream, type Upstream } from '../helpers/upstreams.ts';

describe('timeouts', () => {
  // Every test here runs on a ManualClock: timeouts fire when the test moves mesh time, and the
  // upstream holds requests with ?hold until it closes, so nothing depends on how fast the
  // machine is. What the tests check is order: the mesh answered while the upstream still held
  // the request, and only after mesh time reached the timeout.
  let slow: Upstream;
  /** Held requests whose connection the mesh closed (the attempt was cancelled). */
  let cancelled = 0;
  before(async () => {
    slow = await startUpstream('slow', (req, res) => {
      if (new URL(req.url ?? '/', 'http://x').searchParams.has('hold')) {
        res.on('close', () => {
          if (!res.writableEnded) cancelled++;
        });
        return; // never answered: its socket is closed when the mesh gives up, or at the end
      }
      res.end('fast');
    });
  });
  after(() => slow.close());

  test('route timeout: 504 UT, spanning every attempt', async () => {
    const clock = new ManualClock();
    const mesh = await meshFor(
      [{ port: slow.port }],
      // backoff 1ms: the first retry's wait is 0, so the retry is certain to start before 60 ms.
      [{ route: [{ destination: { host: 'svc' } }], timeout: '60ms', retries: { attempts: 5, perTryTimeout: '40ms', retryOn: '5xx', retryIgnorePreviousHosts: false, backoff: '1ms' } }],
      [],
      { clock },
    );
    try {
      const before = slow.hits;
      let settled = false;
      const p = call(mesh, 'http://svc/?hold').finally(() => {
        settled = true;
      });
      await until(() => slow.hits === before + 1, 'the first attempt to reach the upstream');
      clock.advance(40); // the first attempt's per-try timeout: retried under 5xx
      // advance(0) fires what is due (the retry's zero wait) without moving mesh time.
      await until(() => {
        clock.advance(0);
        return slow.hits === before + 2;
      }, 'the retry to reach the upstream');
      assert.equal(settled, false, 'at 40 ms the call is still running (nothing is due before 60 ms)');
      clock.advance(20); // 60 ms: the route timeout ends the call, with the retry in flight
      const r = await settle(p, 'the call to end at the route timeout');
      assert.equal(r.status, 504);
      assert.equal(r.body, 'upstream request timeout');
      assert.match(r.flags ?? '', /UT/);
      assert.equal(slow.hits - before, 2, 'the first attempt and one retry cut short: 5 retries were allowed, the route timeout spans them');
      assert.equal(clock.pending, 0, 'nothing left scheduled after the route timeout');
    } finally {
      await mesh.close();
    }
  });

  test('per-try timeout is retried under 5xx and a fast second attempt succeeds', async () => {
    const clock = new ManualClock();
    let n = 0;
    const up = await startUpstream('pertry', (_q, res) => {
      n++;
      if (n > 1) res.end(`attempt ${n}`); // the first attempt is never answered
    });
    const mesh = await meshFor(
      [{ port: up.port }],
      [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 2, perTryTimeout: '50ms', retryOn: '5xx', retryIgnorePreviousHosts: false } }],
      [],
      { clock },
    );
    try {
      const p = call(mesh, 'http://svc/');
      await until(() => up.hits === 1, 'the first attempt to reach the upstream');
      clock.advance(50); // per-try timeout of the first attempt
      // The retry waits its backoff (under 25 ms) on the mesh clock: move it 1 ms per poll until
      // the retry is out, well inside the second attempt's own 50 ms.
      await until(() => {
        clock.advance(1);
        return up.hits === 2;
      }, 'the retry to reach the upstream');
      const r = await settle(p, 'the retry to answer');
      assert.equal(r.status, 200);
      assert.equal(r.body, 'attempt 2');
    } finally {
      await mesh.close();
      await up.close();
    }
  });

  test('per-try timeout is not retried under the Istio default retryOn: 504 UT', async () => {
    const clock = new ManualClock();
    const mesh = await meshFor([{ port: slow.port }], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 2, perTryTimeout: '30ms' } }], [], { clock });
    try {
      const before = slow.hits;
      const p = call(mesh, 'http://svc/?hold');
      await until(() => slow.hits === before + 1, 'the attempt to reach the upstream');
      clock.advance(30);
      const r = await settle(p, 'the per-try timeout to end the call');
      assert.equal(r.status, 504);
      assert.equal(r.flags, 'UT');
      assert.equal(slow.hits - before, 1, 'the call ended: no retry can follow');
    } finally {
      await mesh.close();
    }
  });

  test('a deadline in the async context caps the call even without a route timeout', async () => {
    const clock = new ManualClock();
    const mesh = await meshFor([{ port: slow.port }], [{ route: [{ destination: { host: 'svc' } }] }], [], { clock });
    try {
      const before = slow.hits;
      // The context's deadline is carried over to the mesh clock when the call starts: 5 s of
      // mesh time from then, however long the machine takes to get there.
      const p = withDeadline(5000, () => call(mesh, 'http://svc/?hold'));
      await until(() => slow.hits === before + 1, 'the attempt to reach the upstream');
      clock.advance(5000);
      const r = await settle(p, 'the deadline to end the call');
      assert.equal(r.status, 504);
      assert.equal(r.flags, 'UT');
      const fine = await withDeadline(5000, () => call(mesh, 'http://svc/'));
      assert.equal(fine.status, 200);
    } finally {
      await mesh.close();
    }
  });

  test('a caller abort cancels the attempt in flight and a scheduled retry', async () => {
    const clock = new ManualClock();
    const mesh = await meshFor([{ port: slow.port }], [{ route: [{ destination: { host: 'svc' } }] }], [], { clock });
    try {
      const before = slow.hits;
      const cancelledBefore = cancelled;
      const ac = new AbortController();
      const p = mesh.fetch('http://svc/?hold', { signal: ac.signal });
      await until(() => slow.hits === before + 1, 'the attempt to reach the upstream');
      ac.abort();
      // The upstream never answers and mesh time never moved: only the abort can end the call.
      await assert.rejects(p, (e: Error) => e.name === 'AbortError');
      await until(() => cancelled === cancelledBefore + 1, 'the upstream to see the attempt cancelled');
    } finally {
      await mesh.close();
    }
    const bad = await startUpstream('bad503', (_q, res) => {
      res.statusCode = 503;
      res.setHeader('retry-after', '2');
      res.end();
    });
    const m2 = await meshFor(
      [{ port: bad.port }],
      [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 3, retryOn: '503', retryIgnorePreviousHosts: false } }],
      [],
      { clock },
    );
    try {
      const ac = new AbortController();
      const p = m2.fetch('http://svc/', { signal: ac.signal });
      await until(() => clock.pending === 1, 'the retry to wait out the Retry-After');
      ac.abort();
      await assert.rejects(p, (e: Error) => e.name === 'AbortError');
      assert.equal(clock.pending, 0, 'the abort cleared the retry timer');
      clock.advance(10_000);
      assert.equal(bad.hits, 1, 'the retry never went out');
    } finally {
      await m2.close();
      await bad.close();
    }
  });
});
