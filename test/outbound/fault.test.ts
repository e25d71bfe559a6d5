/**
 * Fault injection through real upstreams (istio-surface §1.1 HTTPFaultInjection, §6.7): aborts
 * never reach the router (no upstream hit, never retried), delays happen before the router (not
 * counted against the route timeout), and the two are independent draws.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { createMesh, isMeshletError, ManualClock, type Mesh, MeshletError, seededRandom, withDeadline } from '../../src/index.ts';
import { call, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';
import { until } from '../helpers/until.ts';

const HOST = 'ratings.default.svc.cluster.local';

/** `k` standard deviations of the share of successes in `n` draws of probability `p`. */
function tolerance(n: number, p: number, k = 4.5): number {
  return k * Math.sqrt((p * (1 - p)) / n);
}

/** Polls `cond` every 2 ms (up to 2 s of real time). */
function rule(name: string, prefix: string, extra: Record<string, unknown>): object {
  return { name, match: [{ uri: { prefix } }], route: [{ destination: { host: 'ratings' } }], ...extra };
}

describe('fault injection', () => {
  let up: Upstream;
  let mesh: Mesh;

  before(async () => {
    up = await startUpstream('ratings');
    mesh = await createMesh({
      service: 'reviews',
      random: seededRandom(7),
      config: [
        serviceEntry('ratings', HOST, 9080, [{ port: up.port }]),
        virtualService('ratings', ['ratings'], [
          rule('abort-all', '/abort-all', {
            fault: { abort: { httpStatus: 503, percentage: { value: 100 } } },
            retries: { attempts: 3, retryOn: '5xx,503,connect-failure' },
          }),
          rule('abort-10', '/abort-10', { fault: { abort: { httpStatus: 500, percentage: { value: 10 } } } }),
          rule('abort-50', '/abort-50', { fault: { abort: { httpStatus: 429, percentage: { value: 50 } } } }),
          // An unset percentage means 0% (a warning, not an error).
          rule('abort-unset', '/abort-unset', { fault: { abort: { httpStatus: 500 } } }),
          rule('both', '/both', {
            fault: { delay: { fixedDelay: '1ms', percentage: { value: 50 } }, abort: { httpStatus: 503, percentage: { value: 50 } } },
          }),
          rule('grpc-abort', '/grpc-abort', { fault: { abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 100 } } } }),
          { name: 'rest', route: [{ destination: { host: 'ratings' } }] },
        ]),
      ],
    });
  });

  after(async () => {
    await up.close();
    await mesh.close();
  });

  test('abort at 100%: configured status, Envoy body and flag FI, nothing sent upstream, not retried', async () => {
    const before = up.hits;
    for (let i = 0; i < 5; i++) {
      const r = await call(mesh, 'http://ratings:9080/abort-all/x', { method: 'POST', body: 'payload' });
      assert.equal(r.status, 503);
      assert.equal(r.body, 'fault filter abort');
      assert.equal(r.flags, 'FI');
      assert.equal(r.upstream, null);
    }
    const viaUndici = await request('http://ratings:9080/abort-all', { dispatcher: mesh.dispatcher });
    assert.equal(viaUndici.statusCode, 503);
    assert.equal(viaUndici.headers['x-meshlet-response-flags'], 'FI');
    assert.equal(await viaUndici.body.text(), 'fault filter abort');
    assert.equal(up.hits - before, 0, 'an aborted request never reaches the upstream, even with a retry policy on 503');
    // The same upstream is reachable through a route without a fault.
    assert.equal((await call(mesh, 'http://ratings:9080/ok')).upstream, 'ratings');
  });

  test('abort percentages: 10% and 50% of ~400 calls within binomial tolerance; unset percentage never aborts', async () => {
    const n = 400;
    for (const [path, p, status] of [
      ['/abort-10', 0.1, 500],
      ['/abort-50', 0.5, 429],
    ] as const) {
      const before = up.hits;
      let aborted = 0;
      for (let i = 0; i < n; i++) {
        const r = await call(mesh, `http://ratings:9080${path}`);
        if (r.flags === 'FI') {
          assert.equal(r.status, status);
          aborted++;
        } else assert.equal(r.status, 200);
      }
      const share = aborted / n;
      assert.ok(Math.abs(share - p) < tolerance(n, p), `${path}: aborted share ${share}, expected ${p} ± ${tolerance(n, p).toFixed(3)}`);
      assert.equal(up.hits - before, n - aborted, 'every request that was not aborted reached the upstream exactly once');
    }
    for (let i = 0; i < 50; i++) {
      const r = await call(mesh, 'http://ratings:9080/abort-unset');
      assert.equal(r.status, 200);
      assert.equal(r.flags, null);
    }
  });

  test('delay and abort are independent draws: all four combinations near 25% each', async () => {
    const n = 400;
    const before = up.hits;
    const counts = { 'DI,FI': 0, DI: 0, FI: 0, none: 0 };
    // Eight at a time: the draws stay per request whatever the interleaving.
    for (let i = 0; i < n; i += 8) {
      const rs = await Promise.all(Array.from({ length: 8 }, () => call(mesh, 'http://ratings:9080/both')));
      for (const r of rs) {
        const key = (r.flags ?? 'none') as keyof typeof counts;
        assert.ok(key in counts, `unexpected flags ${r.flags}`);
        counts[key]++;
        assert.equal(r.status, key.includes('FI') ? 503 : 200);
      }
    }
    for (const [k, c] of Object.entries(counts)) {
      assert.ok(Math.abs(c / n - 0.25) < tolerance(n, 0.25), `${k}: ${c}/${n} (${JSON.stringify(counts)})`);
    }
    assert.equal(up.hits - before, counts.DI + counts.none, 'only requests that were not aborted reach the upstream');
  });

  test('a grpcStatus abort answers HTTP 200 with grpc-status (trailers-only)', async () => {
    const before = up.hits;
    const r = await call(mesh, 'http://ratings:9080/grpc-abort', { method: 'POST', headers: { 'content-type': 'application/grpc' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('grpc-status'), '14');
    assert.equal(r.headers.get('content-type'), 'application/grpc');
    assert.equal(r.flags, 'FI');
    assert.equal(up.hits, before);
  });

  test('the same grpcStatus abort to a plain HTTP request is HTTP 200 with the text, as Envoy answers a request that is not gRPC', async () => {
    const before = up.hits;
    const r = await call(mesh, 'http://ratings:9080/grpc-abort');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('grpc-status'), null);
    assert.equal(r.headers.get('content-type'), 'text/plain');
    assert.equal(r.body, 'fault filter abort');
    assert.equal(r.flags, 'FI');
    assert.equal(up.hits, before);
  });
});

describe('fault injection on the mesh clock, errors: throw, caller aborts', () => {
  let up: Upstream;
  before(async () => {
    up = await startUpstream('ratings');
  });
  after(() => up.close());

  const config = () => [
    serviceEntry('ratings', HOST, 9080, [{ port: up.port }]),
    virtualService('ratings', ['ratings'], [
      rule('abort', '/abort', { fault: { abort: { httpStatus: 503, percentage: { value: 100 } } } }),
      rule('grpc', '/grpc', { fault: { abort: { grpcStatus: 'PERMISSION_DENIED', percentage: { value: 100 } } } }),
      rule('slow', '/slow', { fault: { delay: { fixedDelay: '10s', percentage: { value: 100 } } } }),
      rule('delay-all', '/delay-all', { fault: { delay: { fixedDelay: '30ms', percentage: { value: 100 } } } }),
      rule('delay-timeout', '/delay-timeout', { timeout: '20ms', fault: { delay: { fixedDelay: '40ms', percentage: { value: 100 } } } }),
      { name: 'rest', route: [{ destination: { host: 'ratings' } }] },
    ]),
  ];

  test("errors: 'throw' turns a fault abort into a rejected fetch with MESHLET_ERR_FAULT_ABORT", async () => {
    const mesh = await createMesh({ service: 'reviews', errors: 'throw', config: config() });
    try {
      const before = up.hits;
      const err = await mesh.fetch('http://ratings:9080/abort').then(
        () => assert.fail('expected a rejection'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof MeshletError, `got ${String(err)}`);
      assert.equal(err.code, 'MESHLET_ERR_FAULT_ABORT');
      assert.equal(err.httpStatus, 503);
      assert.match(err.flags, /\bFI\b/);
      assert.equal(err.route, 'ratings.abort');
      await assert.rejects(request('http://ratings:9080/abort', { dispatcher: mesh.dispatcher }), (e) => isMeshletError(e, 'MESHLET_ERR_FAULT_ABORT'));
      await assert.rejects(mesh.fetch('http://ratings:9080/grpc'), (e) => isMeshletError(e, 'MESHLET_ERR_FAULT_ABORT') && e.grpcStatus === 7);
      assert.equal(up.hits, before);
      // Routes without a fault are unaffected by the mode.
      assert.equal((await call(mesh, 'http://ratings:9080/fine')).status, 200);
    } finally {
      await mesh.close();
    }
  });

  test('delay at 100%: the request reaches the upstream only once the delay has passed on the mesh clock, flag DI', async () => {
    const clock = new ManualClock();
    const mesh = await createMesh({ service: 'reviews', clock, config: config() });
    try {
      const before = up.hits;
      for (let i = 0; i < 3; i++) {
        let settled = false;
        const p = call(mesh, 'http://ratings:9080/delay-all').finally(() => {
          settled = true;
        });
        // No route timeout here: the only timer on the mesh clock is the fault delay.
        await until(() => clock.pending === 1, 'the request to wait on the fault delay');
        clock.advance(29);
        assert.equal(clock.pending, 1, 'still delayed at 29 ms');
        assert.equal(up.hits, before + i, 'held by the delay');
        assert.equal(settled, false);
        clock.advance(1);
        assert.equal(clock.pending, 0, 'the delay ended at 30 ms');
        const r = await p;
        assert.equal(r.status, 200);
        assert.equal(r.upstream, 'ratings');
        assert.equal(r.flags, 'DI');
        assert.equal(up.hits, before + i + 1, 'then the request reached the upstream, once');
      }
      // Without the fault there is no DI flag, and no wait.
      assert.equal((await call(mesh, 'http://ratings:9080/ok')).flags, null);
      assert.equal(clock.pending, 0);
    } finally {
      await mesh.close();
    }
  });

  test('a delay is not counted against the route timeout; the timeout still bounds the upstream', async () => {
    // Mesh time moves only by hand, so the test is exact whatever the machine's load: the
    // upstream's real latency costs no mesh time.
    const clock = new ManualClock();
    const mesh = await createMesh({ service: 'reviews', clock, config: config() });
    const prev = up.behaviour;
    try {
      // Route timeout 20 ms, delay 40 ms: had the timeout started before the delay, it would
      // have expired during it.
      const before = up.hits;
      let timers = clock.pending;
      const p = call(mesh, 'http://ratings:9080/delay-timeout');
      await until(() => clock.pending > timers, 'the request to wait on the fault delay');
      assert.equal(up.hits, before, 'held by the delay');
      clock.advance(40);
      const r = await p;
      assert.equal(r.status, 200, 'route timeout 20ms + delay 40ms still succeeds');
      assert.equal(r.upstream, 'ratings');
      assert.equal(r.flags, 'DI');

      // An upstream that never answers: the 20 ms timeout runs from the end of the delay.
      up.behaviour = () => undefined; // its socket is closed when the call times out
      const b2 = up.hits;
      timers = clock.pending;
      let settled = false;
      const h = call(mesh, 'http://ratings:9080/delay-timeout').finally(() => {
        settled = true;
      });
      await until(() => clock.pending > timers, 'the second request to wait on the fault delay');
      clock.advance(40);
      await until(() => up.hits === b2 + 1, 'the request to reach the upstream after the delay');
      clock.advance(19);
      await new Promise((r) => setTimeout(r, 5));
      assert.equal(settled, false, 'still waiting 19 ms after the delay');
      clock.advance(1);
      const t = await h;
      assert.equal(t.status, 504);
      assert.equal(t.body, 'upstream request timeout');
      assert.deepEqual(t.flags?.split(',').sort(), ['DI', 'UT'], `flags ${t.flags}`);
    } finally {
      up.behaviour = prev;
      await mesh.close();
    }
  });

  test("a fault delay longer than the caller's deadline (withDeadline): mesh.fetch ends at the deadline with 504 UT, DI; nothing sent", async () => {
    const clock = new ManualClock();
    const mesh = await createMesh({ service: 'reviews', clock, config: config() });
    try {
      const before = up.hits;
      let settled = false;
      const p = withDeadline(30, () => mesh.fetch('http://ratings:9080/slow')).finally(() => {
        settled = true;
      });
      await until(() => clock.pending === 1, 'the fault delay to wait on the mesh clock');
      // Real time passes the 30 ms deadline (it is kept on performance.now()); the delay waits on the mesh clock for what remained of it (at most 30 ms).
      await new Promise((r) => setTimeout(r, 40));
      assert.equal(settled, false, 'the delay waits on the mesh clock');
      clock.advance(30);
      const r = await p;
      // Ended at the deadline, not after the route's 10 s delay.
      assert.equal(clock.now(), 30);
      assert.equal(r.status, 504);
      assert.equal(await r.text(), 'upstream request timeout');
      assert.deepEqual(r.headers.get('x-meshlet-response-flags')?.split(',').sort(), ['DI', 'UT']);
      assert.equal(up.hits, before);
    } finally {
      await mesh.close();
    }
  });

  test('a caller abort during a fault delay rejects promptly and cancels the delay', async () => {
    const clock = new ManualClock();
    const mesh = await createMesh({ service: 'reviews', clock, config: config() });
    try {
      const before = up.hits;
      const ac = new AbortController();
      const p = mesh.fetch('http://ratings:9080/slow', { signal: ac.signal });
      // Let the request get into the delay, then abort it.
      await until(() => clock.pending === 1, 'the fault delay to wait on the mesh clock');
      ac.abort();
      // Mesh time has not moved, so the 10 s delay cannot have ended: only the abort settles it.
      await assert.rejects(p, { name: 'AbortError' });
      assert.equal(clock.now(), 0);
      assert.equal(clock.pending, 0, 'the delay timer was cancelled');
      // Even if time passes, the aborted request is never sent.
      clock.advance(20_000);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(up.hits, before);

      // undici.request through the dispatcher: the same.
      const ac2 = new AbortController();
      const p2 = request('http://ratings:9080/slow', { dispatcher: mesh.dispatcher, signal: ac2.signal });
      await until(() => clock.pending === 1, 'the second fault delay');
      ac2.abort();
      await assert.rejects(p2, (e: Error) => e.name === 'AbortError' || (e as { code?: string }).code === 'UND_ERR_ABORTED');
      assert.equal(clock.pending, 0);
      assert.equal(up.hits, before);
    } finally {
      await mesh.close();
    }
  });
});

/**
 * A route whose destination has no cluster (a subset no DestinationRule defines): Envoy's fault
 * filter runs before the router looks the cluster up, so the fault comes first — an abort answers
 * with its status (flag FI) instead of 503 NC, and a delay is waited out before the 503 NC.
 */
describe('fault injection on a route to a missing cluster', () => {
  test('abort at 100%: the fault status and FI, not 503 NC; a delay at 100% is waited out, then 503 NC', async () => {
    const up = await startUpstream('ratings');
    const clock = new ManualClock();
    const mesh = await createMesh({
      service: 'reviews',
      clock,
      analysis: 'off',
      config: [
        serviceEntry('ratings', HOST, 9080, [{ port: up.port }]),
        virtualService('ratings', ['ratings'], [
          { match: [{ uri: { prefix: '/abort' } }], route: [{ destination: { host: 'ratings', subset: 'nope' } }], fault: { abort: { httpStatus: 418, percentage: { value: 100 } } } },
          { match: [{ uri: { prefix: '/delay' } }], route: [{ destination: { host: 'ratings', subset: 'nope' } }], fault: { delay: { fixedDelay: '5s', percentage: { value: 100 } } } },
        ]),
      ],
    });
    try {
      const abort = await call(mesh, 'http://ratings:9080/abort');
      assert.equal(abort.status, 418);
      assert.equal(abort.flags, 'FI');
      let settled = false;
      const p = call(mesh, 'http://ratings:9080/delay').finally(() => {
        settled = true;
      });
      await until(() => clock.pending === 1, 'the call to wait on the fault delay');
      assert.equal(settled, false);
      clock.advance(5000);
      const delayed = await p;
      assert.equal(delayed.status, 503);
      assert.deepEqual(delayed.flags?.split(',').sort(), ['DI', 'NC']);
      assert.equal(up.hits, 0);
    } finally {
      await mesh.close();
      await up.close();
    }
  });
});
