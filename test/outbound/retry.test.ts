import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { createMesh, ManualClock, type Mesh, seededRandom, withDeadline } from '../../src/index.ts';
import { call, deadPort, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

const SVC = 'svc.default.svc.cluster.local';

/** Polls `cond` every 2 ms, up to 2 s of real time (a guard against a hang, not a timing assertion). */
async function until(cond: () => boolean, what: string): Promise<void> {
  const end = performance.now() + 2000;
  while (!cond()) {
    if (performance.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** `p`, or a failure naming `what` if it has not settled within 2 s of real time (a hang guard). */
async function settle<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 2000);
  });
  try {
    return await Promise.race([p, hang]);
  } finally {
    clearTimeout(timer);
  }
}

async function meshFor(endpoints: { port: number; labels?: Record<string, string> }[], http: unknown[], extra: object[] = [], opts: object = {}): Promise<Mesh> {
  return createMesh({
    service: 'client',
    random: seededRandom(7),
    config: [serviceEntry('svc', SVC, 80, endpoints), virtualService('svc', ['svc'], http), ...extra],
    ...opts,
  });
}

describe('retries', () => {
  const ups: Upstream[] = [];
  after(async () => {
    await Promise.all(ups.map((u) => u.close()));
  });

  test('5xx: a 503 is retried on another endpoint and the caller sees the success; a retry never returns to the endpoint that just failed', async () => {
    const bad = await startUpstream('bad', (_q, res) => {
      res.statusCode = 503;
      res.end('down');
    });
    const good = await startUpstream('good');
    ups.push(bad, good);
    const mesh = await meshFor([{ port: bad.port }, { port: good.port }], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 2, retryOn: '5xx' } }]);
    try {
      const results: Awaited<ReturnType<typeof call>>[] = [];
      for (let i = 0; i < 20; i++) results.push(await call(mesh, 'http://svc/', { headers: { 'x-call': String(i) } }));
      // Per call, from the call id each upstream saw: previous-host avoidance sends the retry of
      // a call that failed on 'bad' to 'good', so no call reaches 'bad' twice (with 2 retries
      // allowed, a call that did would still succeed on its third attempt).
      const calls = (u: Upstream) => u.seen.map((x) => x.headers['x-call']);
      for (let i = 0; i < 20; i++) {
        const id = String(i);
        assert.ok(calls(bad).filter((c) => c === id).length <= 1, `call ${i} reached 'bad' ${calls(bad).filter((c) => c === id).length} times`);
        assert.equal(calls(good).filter((c) => c === id).length, 1, `call ${i} reached 'good' once`);
      }
      assert.ok(bad.hits > 0, 'some calls started on the bad endpoint, so retries ran');
      for (const r of results) {
        assert.equal(r.status, 200);
        assert.equal(r.upstream, 'good');
      }
    } finally {
      await mesh.close();
    }
  });

  test('retries run out: the last upstream response is passed through with URX', async () => {
    const bad = await startUpstream('bad', (_q, res) => {
      res.statusCode = 503;
      res.end('still down');
    });
    ups.push(bad);
    const mesh = await meshFor([{ port: bad.port }], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 3, retryOn: '503', retryIgnorePreviousHosts: false } }]);
    try {
      const r = await call(mesh, 'http://svc/');
      assert.equal(r.status, 503);
      assert.equal(r.body, 'still down');
      assert.equal(r.flags, 'URX');
      assert.equal(bad.hits, 4);
    } finally {
      await mesh.close();
    }
  });

  test('a status not in retryOn is not retried; attempts: 0 disables retries', async () => {
    const flaky = await startUpstream('flaky', (_q, res, hit) => {
      res.statusCode = hit % 2 === 1 ? 500 : 200;
      res.end();
    });
    ups.push(flaky);
    const m1 = await meshFor([{ port: flaky.port }], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 2, retryOn: '503' } }]);
    try {
      assert.equal((await call(m1, 'http://svc/')).status, 500);
      assert.equal(flaky.hits, 1);
    } finally {
      await m1.close();
    }
    const m2 = await meshFor([{ port: flaky.port }], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 0 } }]);
    try {
      assert.equal((await call(m2, 'http://svc/')).status, 200); // hit 2
      assert.equal((await call(m2, 'http://svc/')).status, 500); // hit 3, not retried
      assert.equal(flaky.hits, 3);
    } finally {
      await m2.close();
    }
  });

  test('connect-failure: a refused endpoint is retried elsewhere (Istio default policy)', async () => {
    const good = await startUpstream('good');
    ups.push(good);
    const dead = await deadPort();
    const mesh = await meshFor([{ port: dead }, { port: good.port }], [{ route: [{ destination: { host: 'svc' } }] }]);
    try {
      for (let i = 0; i < 10; i++) assert.equal((await call(mesh, 'http://svc/')).upstream, 'good');
    } finally {
      await mesh.close();
    }
  });

  test('connection refused everywhere: 503 UF,URX with Envoy\'s text', async () => {
    const dead = await deadPort();
    const mesh = await meshFor([{ port: dead }], [{ route: [{ destination: { host: 'svc' } }] }]);
    try {
      const r = await call(mesh, 'http://svc/');
      assert.equal(r.status, 503);
      assert.equal(r.flags, 'UF,URX');
      assert.match(r.body, /^upstream connect error or disconnect\/reset before headers\. retried and the latest reset reason: connection failure/);
    } finally {
      await mesh.close();
    }
  });

  test('reset before headers is retried under retryOn reset, not under the Istio default', async () => {
    const resetter = await startUpstream('resetter', (req, res, hit) => {
      if (hit === 1) req.socket.destroy();
      else res.end('second');
    });
    ups.push(resetter);
    const m1 = await meshFor([{ port: resetter.port }], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 2, retryOn: 'reset', retryIgnorePreviousHosts: false } }]);
    try {
      const r = await call(m1, 'http://svc/');
      assert.equal(r.status, 200);
      assert.equal(r.body, 'second');
      assert.equal(resetter.hits, 2);
    } finally {
      await m1.close();
    }
    resetter.hits = 0;
    const m2 = await meshFor([{ port: resetter.port }], [{ route: [{ destination: { host: 'svc' } }] }]);
    try {
      const r = await call(m2, 'http://svc/');
      assert.equal(r.status, 503);
      assert.equal(r.flags, 'UC');
      assert.equal(resetter.hits, 1);
    } finally {
      await m2.close();
    }
  });

  test('503 with Retry-After waits that long (on the mesh clock) before the retry', async () => {
    const clock = new ManualClock();
    const at: number[] = [];
    const up = await startUpstream('ra', (_q, res, hit) => {
      at.push(clock.now());
      if (hit === 1) {
        res.statusCode = 503;
        res.setHeader('retry-after', '1');
        res.end();
      } else res.end('ok');
    });
    ups.push(up);
    const mesh = await meshFor(
      [{ port: up.port }],
      [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 1, retryOn: '503', retryIgnorePreviousHosts: false } }],
      [],
      { clock },
    );
    try {
      const p = call(mesh, 'http://svc/');
      // No route timeout, no outlier detection: the only timer on the mesh clock is the retry's wait.
      await until(() => clock.pending === 1, 'the retry to be scheduled');
      clock.advance(999);
      assert.equal(clock.pending, 1, 'still waiting 1 ms before the Retry-After');
      assert.equal(up.hits, 1);
      clock.advance(1);
      assert.equal(clock.pending, 0, 'the retry went out after 1000 ms');
      const r = await p;
      assert.equal(r.status, 200);
      assert.deepEqual(at, [0, 1000], 'the two attempts reached the upstream 1000 ms apart on the mesh clock');
    } finally {
      await mesh.close();
    }
  });

  test('a Retry-After beyond maxRetryAfterMs ends retrying: the 503 is passed through', async () => {
    const up = await startUpstream('ra2', (_q, res) => {
      res.statusCode = 503;
      res.setHeader('retry-after', '120');
      res.end('later');
    });
    ups.push(up);
    const mesh = await meshFor([{ port: up.port }], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 2, retryOn: '503' } }]);
    try {
      const r = await call(mesh, 'http://svc/');
      assert.equal(r.status, 503);
      assert.equal(r.headers.get('retry-after'), '120');
      assert.equal(up.hits, 1);
    } finally {
      await mesh.close();
    }
  });

  test('request bodies are replayed: strings, and streams under the cap; a stream over the cap is not retried', async () => {
    const up = await startUpstream('body', (_req, res, hit) => {
      res.statusCode = hit % 2 === 1 ? 503 : 200;
      res.end();
    });
    ups.push(up);
    const mesh = await meshFor([{ port: up.port }], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 1, retryOn: '503', retryIgnorePreviousHosts: false } }], [], { retryBufferBytes: 1000 });
    try {
      assert.equal((await call(mesh, 'http://svc/', { method: 'POST', body: 'hello' })).status, 200);
      assert.deepEqual(up.seen.slice(-2).map((s) => s.body), ['hello', 'hello']);
      const small = Readable.from([Buffer.from('ab'), Buffer.from('cd')]);
      const r2 = await request('http://svc/', { method: 'POST', body: small, dispatcher: mesh.dispatcher });
      await r2.body.dump();
      assert.equal(r2.statusCode, 200);
      assert.deepEqual(up.seen.slice(-2).map((s) => s.body), ['abcd', 'abcd']);
      const big = Readable.from([Buffer.alloc(800, 'x'), Buffer.alloc(800, 'y')]);
      const r3 = await request('http://svc/', { method: 'POST', body: big, dispatcher: mesh.dispatcher });
      await r3.body.dump();
      assert.equal(r3.statusCode, 503, 'a body past the replay cap is never retried');
      assert.equal(up.seen.at(-1)?.body.length, 1600);
    } finally {
      await mesh.close();
    }
  });
});

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
