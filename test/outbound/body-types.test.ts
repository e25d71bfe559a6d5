/**
 * Every request body undici.request accepts that is not a string, bytes or an async iterable —
 * an ArrayBuffer, a Blob, a sync iterable — is retried and mirrored like the others: the
 * upstream receives, on every attempt and in the mirrored copy, the bytes and the
 * content-length / content-type / transfer-encoding plain undici sends.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Agent, request } from 'undici';
import { meshFor, until } from '../helpers/mesh-calls.ts';
import { serviceEntry, startUpstream, type Upstream } from '../helpers/upstreams.ts';

const DATA = Buffer.from('0123456789abcdef'.repeat(1500)); // 24 000 bytes, ASCII: upstreams keep bodies as text

const BODIES: Record<string, () => unknown> = {
  ArrayBuffer: () => DATA.buffer.slice(DATA.byteOffset, DATA.byteOffset + DATA.length),
  Blob: () => new Blob([DATA.subarray(0, 1000), DATA.subarray(1000)], { type: 'application/x-test' }),
  'File (no type)': () => new File([DATA], 'data.bin'),
  'sync iterable': () => [DATA.subarray(0, 1000), DATA.subarray(1000, 5000).toString(), DATA.subarray(5000)],
  Uint16Array: () => new Uint16Array(DATA.buffer.slice(DATA.byteOffset, DATA.byteOffset + DATA.length)),
};

/** What the upstream saw of a request, as the test compares it. */
function wire(s: Upstream['seen'][number]): unknown {
  const h = s.headers;
  return { body: s.body, cl: h['content-length'], ct: h['content-type'], te: h['transfer-encoding'] };
}

describe('ArrayBuffer, Blob and sync iterable bodies are retried and mirrored', () => {
  let up: Upstream;
  let shadow: Upstream;
  const agent = new Agent();
  before(async () => {
    // The first request of each x-id gets 503, the next 200.
    const seenIds = new Set<string>();
    up = await startUpstream('up', (req, res) => {
      const id = String(req.headers['x-id']);
      res.statusCode = seenIds.has(id) || id.startsWith('raw') ? 200 : 503;
      seenIds.add(id);
      res.end();
    });
    shadow = await startUpstream('shadow');
  });
  after(async () => {
    await agent.close();
    await Promise.all([up.close(), shadow.close()]);
  });

  test('retried after a 503: both attempts carry what plain undici sends', async () => {
    const mesh = await meshFor([{ port: up.port }], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 1, retryOn: '503', retryIgnorePreviousHosts: false } }]);
    try {
      for (const [name, make] of Object.entries(BODIES)) {
        const raw = await request(`http://127.0.0.1:${up.port}/`, { method: 'POST', body: make() as string, headers: { 'x-id': `raw-${name}` }, dispatcher: agent });
        await raw.body.dump();
        const expected = wire(up.seen.at(-1) as Upstream['seen'][number]);
        assert.equal((expected as { body: string }).body, DATA.toString(), `${name}: plain undici sends the data`);
        const r = await request('http://svc/', { method: 'POST', body: make() as string, headers: { 'x-id': `mesh-${name}` }, dispatcher: mesh.dispatcher });
        await r.body.dump();
        assert.equal(r.statusCode, 200, `${name}: the 503 was retried`);
        const attempts = up.seen.filter((s) => s.headers['x-id'] === `mesh-${name}`);
        assert.equal(attempts.length, 2, name);
        for (const a of attempts) assert.deepEqual(wire(a), expected, `${name}: each attempt carries what plain undici sends`);
      }
    } finally {
      await mesh.close();
    }
  });

  test('mirrored with the same bytes and headers', async () => {
    const mesh = await meshFor(
      [{ port: up.port }],
      [{ route: [{ destination: { host: 'svc' } }], mirror: { host: 'shadow.default.svc.cluster.local' }, retries: { attempts: 0 } }],
      [serviceEntry('shadow', 'shadow.default.svc.cluster.local', 80, [{ port: shadow.port }])],
    );
    try {
      for (const [name, make] of Object.entries(BODIES)) {
        const r = await request('http://svc/', { method: 'POST', body: make() as string, headers: { 'x-id': `raw-mirror-${name}` }, dispatcher: mesh.dispatcher });
        await r.body.dump();
        assert.equal(r.statusCode, 200);
        await until(() => shadow.seen.some((s) => s.headers['x-id'] === `raw-mirror-${name}`), `${name}: the mirrored copy`, 3000);
        const primary = up.seen.find((s) => s.headers['x-id'] === `raw-mirror-${name}`);
        const copy = shadow.seen.find((s) => s.headers['x-id'] === `raw-mirror-${name}`);
        assert.ok(primary !== undefined && copy !== undefined);
        assert.equal(copy.body, DATA.toString(), `${name}: the copy's body`);
        assert.equal(copy.headers['content-type'], primary.headers['content-type'], `${name}: the copy's content-type`);
      }
    } finally {
      await mesh.close();
    }
  });
});

describe('a body whose chunks are neither strings nor bytes is the caller’s failure', () => {
  test('URLSearchParams (an iterable of pairs) and an iterable of objects: a TypeError as from plain undici, never sent as a reset, never retried', async () => {
    const up = await startUpstream('up');
    const mesh = await meshFor([{ port: up.port }], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 2, retryOn: 'reset,5xx' } }]);
    try {
      for (const body of [() => new URLSearchParams({ a: '1' }), () => [Buffer.from('ok'), { not: 'bytes' }], () => (async function* () { yield 'ok'; yield 42; })()]) {
        await assert.rejects(request('http://svc/', { method: 'POST', body: body() as never, dispatcher: mesh.dispatcher }), TypeError);
      }
      const r = await request('http://svc/after', { dispatcher: mesh.dispatcher });
      await r.body.dump();
      assert.equal(r.statusCode, 200);
    } finally {
      await mesh.close();
      await up.close();
    }
  });
});
