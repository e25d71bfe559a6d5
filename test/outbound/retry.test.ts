import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { request } from 'undici';
import { createMesh, ManualClock } from '../../src/index.ts';
import { meshFor, until } from '../helpers/mesh-calls.ts';
import { call, deadPort, startUpstream, type Upstream } from '../helpers/upstreams.ts';
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

  test('connection refused everywhere: 503 URX,UF with Envoy\'s text', async () => {
    const dead = await deadPort();
    const mesh = await meshFor([{ port: dead }], [{ route: [{ destination: { host: 'svc' } }] }]);
    try {
      const r = await call(mesh, 'http://svc/');
      assert.equal(r.status, 503);
      assert.equal(r.flags, 'URX,UF');
      assert.match(r.body, /^upstream connect error or disconnect\/reset before headers\. retried and the latest reset reason: remote connection failure/);
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

  test('maxRetryAfterMs: 0 does not ignore Retry-After (as a sidecar does): any above 0 ends retrying, Retry-After: 0 is retried (docs: differences)', async () => {
    const first = new Set<string>();
    const up = await startUpstream('ra0', (req, res) => {
      const url = req.url ?? '';
      // Each path's first request: 503 with its Retry-After; then 200.
      res.statusCode = first.has(url) ? 200 : 503;
      if (!first.has(url)) res.setHeader('retry-after', url === '/zero' ? '0' : '1');
      first.add(url);
      res.end();
    });
    ups.push(up);
    const mesh = await meshFor([{ port: up.port }], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 2, retryOn: '503', retryIgnorePreviousHosts: false } }], [], { maxRetryAfterMs: 0 });
    try {
      const r = await call(mesh, 'http://svc/one');
      assert.equal(r.status, 503, 'Retry-After: 1 over maxRetryAfterMs 0: passed through');
      assert.equal(r.flags, null, 'not flagged URX: no retry ran');
      assert.equal(up.hits, 1);
      const z = await call(mesh, 'http://svc/zero');
      assert.equal(z.status, 200, 'Retry-After: 0 is retried after the backoff');
      assert.equal(up.hits, 3);
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

  test('a string or bytes given to undici.request is retried up to the cap and sent once past it, as Envoy gives up retrying a request past its buffer', async () => {
    const up = await startUpstream('static-body', (_req, res, hit) => {
      res.statusCode = hit % 2 === 1 ? 503 : 200;
      res.end();
    });
    ups.push(up);
    const mesh = await meshFor([{ port: up.port }], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 1, retryOn: '503', retryIgnorePreviousHosts: false } }], [], { retryBufferBytes: 1000 });
    // undici's types take strings and Uint8Arrays; the dispatcher takes any ArrayBufferView and ArrayBuffers too (docs/outbound.md).
    const send = async (body: string | ArrayBufferView | ArrayBuffer): Promise<number> => {
      const r = await request('http://svc/', { method: 'POST', body: body as string, dispatcher: mesh.dispatcher });
      await r.body.dump();
      return r.statusCode;
    };
    try {
      const rows: [string, string | ArrayBufferView | ArrayBuffer, number, number][] = [
        ['a string at the cap', 'x'.repeat(1000), 200, 2],
        ['a string over it', 'x'.repeat(1001), 503, 1],
        ['a string of multi-byte characters over it (bytes count, not characters)', 'é'.repeat(501), 503, 1],
        ['a Buffer at the cap', Buffer.alloc(1000, 'b'), 200, 2],
        ['a Buffer over it', Buffer.alloc(1001, 'b'), 503, 1],
        ['a Uint16Array over it', new Uint16Array(501), 503, 1],
        ['an ArrayBuffer over it', new ArrayBuffer(1001), 503, 1],
      ];
      for (const [what, body, status, attempts] of rows) {
        const before = up.hits;
        assert.equal(await send(body), status, what);
        assert.equal(up.hits - before, attempts, `${what}: attempts`);
        const size = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
        assert.equal(Buffer.byteLength(up.seen.at(-1)?.body ?? ''), size, `${what}: sent whole`);
        // The upstream answers 503 to odd hits: keep each row starting on one.
        if (up.hits % 2 === 1) assert.equal(await send('x'), 200);
      }
    } finally {
      await mesh.close();
    }
  });

  test('retryBufferBytes must be a non-negative whole number of bytes: -1 would stop every body from being retried, NaN would lift the cap', async () => {
    for (const bad of [-1, Number.NaN, 1.5, Number.POSITIVE_INFINITY, 'big']) {
      await assert.rejects(createMesh({ service: 'c', config: [], retryBufferBytes: bad as number }), { code: 'MESHLET_ERR_INVALID_ARG', message: /`retryBufferBytes` must be a non-negative whole number of bytes, got/ }, String(bad));
    }
    const mesh = await createMesh({ service: 'c', config: [], retryBufferBytes: 0 });
    await mesh.close();
  });
});
