import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { createMesh, type Mesh, seededRandom, withDeadline } from '../../src/index.ts';
import { call, deadPort, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

const SVC = 'svc.default.svc.cluster.local';

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

  test('5xx: a 503 is retried on another endpoint and the caller sees the success', async () => {
    const bad = await startUpstream('bad', (_q, res) => {
      res.statusCode = 503;
      res.end('down');
    });
    const good = await startUpstream('good');
    ups.push(bad, good);
    const mesh = await meshFor([{ port: bad.port }, { port: good.port }], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 2, retryOn: '5xx' } }]);
    try {
      for (let i = 0; i < 20; i++) {
        const r = await call(mesh, 'http://svc/');
        assert.equal(r.status, 200);
        assert.equal(r.upstream, 'good');
      }
      // previous-hosts: a retry never returns to the endpoint that just failed, so 'bad' is hit at most once per call.
      assert.ok(bad.hits <= 20, `bad hits ${bad.hits}`);
      assert.ok(bad.hits > 0);
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
      assert.equal(r.flags, 'UR');
      assert.equal(resetter.hits, 1);
    } finally {
      await m2.close();
    }
  });

  test('503 with Retry-After waits at least that long before the retry', async () => {
    const times: number[] = [];
    const up = await startUpstream('ra', (_q, res, hit) => {
      times.push(performance.now());
      if (hit === 1) {
        res.statusCode = 503;
        res.setHeader('retry-after', '1');
        res.end();
      } else res.end('ok');
    });
    ups.push(up);
    const mesh = await meshFor([{ port: up.port }], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 1, retryOn: '503', retryIgnorePreviousHosts: false } }]);
    try {
      const r = await call(mesh, 'http://svc/');
      assert.equal(r.status, 200);
      assert.equal(times.length, 2);
      assert.ok((times[1] as number) - (times[0] as number) >= 990, `waited ${(times[1] as number) - (times[0] as number)} ms`);
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
  let slow: Upstream;
  before(async () => {
    slow = await startUpstream('slow', (req, res) => {
      const ms = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('ms') ?? '0');
      setTimeout(() => res.end(`slept ${ms}`), ms);
    });
  });
  after(() => slow.close());

  test('route timeout: 504 UT, spanning every attempt', async () => {
    const mesh = await meshFor([{ port: slow.port }], [{ route: [{ destination: { host: 'svc' } }], timeout: '60ms', retries: { attempts: 5, perTryTimeout: '40ms', retryOn: '5xx', retryIgnorePreviousHosts: false } }]);
    try {
      const before = slow.hits;
      const t0 = performance.now();
      const r = await call(mesh, 'http://svc/?ms=500');
      const took = performance.now() - t0;
      assert.equal(r.status, 504);
      assert.equal(r.body, 'upstream request timeout');
      assert.match(r.flags ?? '', /UT/);
      assert.ok(took < 400, `took ${took} ms`);
      // 60 ms total with 40 ms per try: the first attempt, then at most one cut-short retry.
      await new Promise((res) => setTimeout(res, 20));
      assert.ok(slow.hits - before <= 2, `attempts ${slow.hits - before}`);
    } finally {
      await mesh.close();
    }
  });

  test('per-try timeout is retried under 5xx and a fast second attempt succeeds', async () => {
    let n = 0;
    const up = await startUpstream('pertry', (_q, res) => {
      n++;
      setTimeout(() => res.end(`attempt ${n}`), n === 1 ? 300 : 0);
    });
    const mesh = await meshFor([{ port: up.port }], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 2, perTryTimeout: '50ms', retryOn: '5xx', retryIgnorePreviousHosts: false } }]);
    try {
      const r = await call(mesh, 'http://svc/');
      assert.equal(r.status, 200);
      assert.equal(r.body, 'attempt 2');
    } finally {
      await mesh.close();
      await up.close();
    }
  });

  test('per-try timeout is not retried under the Istio default retryOn: 504 UT', async () => {
    const mesh = await meshFor([{ port: slow.port }], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 2, perTryTimeout: '30ms' } }]);
    try {
      const before = slow.hits;
      const r = await call(mesh, 'http://svc/?ms=300');
      assert.equal(r.status, 504);
      assert.equal(r.flags, 'UT');
      await new Promise((res) => setTimeout(res, 20));
      assert.equal(slow.hits - before, 1);
    } finally {
      await mesh.close();
    }
  });

  test('a deadline in the async context caps the call even without a route timeout', async () => {
    const mesh = await meshFor([{ port: slow.port }], [{ route: [{ destination: { host: 'svc' } }] }]);
    try {
      const r = await withDeadline(50, () => call(mesh, 'http://svc/?ms=400'));
      assert.equal(r.status, 504);
      const fine = await withDeadline(2000, () => call(mesh, 'http://svc/?ms=5'));
      assert.equal(fine.status, 200);
    } finally {
      await mesh.close();
    }
  });

  test('a caller abort cancels the attempt in flight and a scheduled retry', async () => {
    const mesh = await meshFor([{ port: slow.port }], [{ route: [{ destination: { host: 'svc' } }] }]);
    try {
      const t0 = performance.now();
      await assert.rejects(mesh.fetch('http://svc/?ms=2000', { signal: AbortSignal.timeout(40) }), (e: Error) => e.name === 'TimeoutError' || e.name === 'AbortError');
      assert.ok(performance.now() - t0 < 1000);
    } finally {
      await mesh.close();
    }
    const bad = await startUpstream('bad503', (_q, res) => {
      res.statusCode = 503;
      res.setHeader('retry-after', '2');
      res.end();
    });
    const m2 = await meshFor([{ port: bad.port }], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 3, retryOn: '503', retryIgnorePreviousHosts: false } }]);
    try {
      const t0 = performance.now();
      await assert.rejects(m2.fetch('http://svc/', { signal: AbortSignal.timeout(100) }));
      assert.ok(performance.now() - t0 < 1500, 'the abort ended the Retry-After wait');
      await new Promise((res) => setTimeout(res, 50));
      assert.equal(bad.hits, 1);
    } finally {
      await m2.close();
      await bad.close();
    }
  });
});
