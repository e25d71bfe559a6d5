/**
 * `mesh.dispatcher` with every client an application may drive it from: Node's built-in fetch
 * (its bundled undici speaks the older handler API), undici 7 (`request`, `stream`, `fetch`,
 * `setGlobalDispatcher`) and undici 8. Node 22's built-in fetch is covered by the packed-package
 * test (test/package), which runs a real Node 22.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Readable, Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import * as undici8 from 'undici';
import * as undici7 from 'undici7';
import { createMesh, isMeshletError, type Mesh } from '../../src/index.ts';
import { serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

let up: Upstream;
let mesh: Mesh;
let flaky = 0;

before(async () => {
  up = await startUpstream('up', async (req, res) => {
    if (req.url === '/slow') return; // never answers; closing the upstream ends it
    if (req.url === '/flaky') {
      // Every other call fails: a retry by the caller's own interceptor gets the 200.
      flaky++;
      res.statusCode = flaky % 2 === 1 ? 500 : 200;
      res.end(`flaky ${flaky}`);
      return;
    }
    if (req.url === '/big') {
      res.end(Buffer.alloc(4 * 1024 * 1024, 'a'));
      return;
    }
    res.setHeader('x-seen-method', req.method ?? '');
    res.setHeader('set-cookie', ['a=1', 'b=2']);
    res.end(`up ${req.method} ${req.url} ${up.seen.at(-1)?.body ?? ''}`);
  });
  mesh = await createMesh({
    service: 'client',
    config: [
      serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }]),
      virtualService('svc', ['svc'], [{ match: [{ uri: { prefix: '/only' } }], route: [{ destination: { host: 'svc' } }] }, { match: [{ uri: { prefix: '/' } }], route: [{ destination: { host: 'svc' } }], headers: { response: { set: { 'x-routed': 'yes' } } } }]),
      virtualService('nr', ['nr.default.svc.cluster.local'], [{ match: [{ uri: { exact: '/x' } }], route: [{ destination: { host: 'svc' } }] }]),
      serviceEntry('nr', 'nr.default.svc.cluster.local', 80, [{ port: up.port }]),
    ],
  });
});
after(async () => {
  await mesh.close();
  await up.close();
});

/** The same checks for every fetch implementation. */
function fetchCases(name: string, doFetch: () => (input: string, init: Record<string, unknown>) => Promise<Response>): void {
  describe(name, () => {
    it('GET and POST (string and streamed bodies) reach the upstream through the route', async () => {
      const f = doFetch();
      const get = await f('http://svc/a?q=1', { dispatcher: mesh.dispatcher });
      assert.equal(get.status, 200);
      assert.equal(await get.text(), 'up GET /a?q=1 ');
      assert.equal(get.headers.get('x-routed'), 'yes');
      assert.deepEqual(get.headers.getSetCookie(), ['a=1', 'b=2']);
      const post = await f('http://svc/p', { dispatcher: mesh.dispatcher, method: 'POST', body: 'hello' });
      assert.equal(await post.text(), 'up POST /p hello');
      const streamed = await f('http://svc/s', { dispatcher: mesh.dispatcher, method: 'PUT', body: Readable.toWeb(Readable.from(['a', 'b', 'c'])), duplex: 'half' });
      assert.equal(await streamed.text(), 'up PUT /s abc');
    });

    it('mesh-made answers arrive as responses with the Envoy flag', async () => {
      const nr = await doFetch()('http://nr/other', { dispatcher: mesh.dispatcher });
      assert.equal(nr.status, 404);
      assert.equal(nr.headers.get('x-meshlet-response-flags'), 'NR');
      await nr.arrayBuffer();
    });

    it("the response's resource timing has its response start, as through undici's own Agent", async () => {
      // fetch marks when the response's first byte came (its handler's onResponseStarted); a
      // dispatcher that never says so leaves responseStart at 0 in performance's resource entries.
      const url = `http://svc/timing-${name.replace(/[^a-z0-9]+/gi, '-')}`;
      performance.clearResourceTimings();
      const res = await doFetch()(url, { dispatcher: mesh.dispatcher });
      await res.text();
      let entry: { requestStart: number; responseStart: number; responseEnd: number } | undefined;
      for (let i = 0; i < 100 && entry === undefined; i++) {
        entry = performance.getEntriesByName(url, 'resource')[0] as typeof entry;
        if (entry === undefined) await new Promise((r) => setImmediate(r));
      }
      assert.ok(entry, `a resource timing entry for ${url}`);
      assert.ok(entry.responseStart > 0, `responseStart is set (got ${entry.responseStart})`);
      assert.ok(entry.requestStart <= entry.responseStart && entry.responseStart <= entry.responseEnd, `requestStart ${entry.requestStart} ≤ responseStart ${entry.responseStart} ≤ responseEnd ${entry.responseEnd}`);
    });

    it('a large body streams through with backpressure', async () => {
      const res = await doFetch()('http://svc/big', { dispatcher: mesh.dispatcher });
      let n = 0;
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        n += chunk.byteLength;
        // A slow reader: the dispatcher must pause and resume, not buffer or stall.
        if (n % (512 * 1024) < chunk.byteLength) await new Promise((r) => setImmediate(r));
      }
      assert.equal(n, 4 * 1024 * 1024);
    });

    it('an AbortSignal cancels a call the upstream is holding', async () => {
      const ac = new AbortController();
      const before = up.seen.filter((s) => s.url === '/slow').length;
      const slow = doFetch()('http://svc/slow', { dispatcher: mesh.dispatcher, signal: ac.signal });
      while (up.seen.filter((s) => s.url === '/slow').length === before) await new Promise((r) => setTimeout(r, 5));
      ac.abort();
      await assert.rejects(slow, (e: Error) => e.name === 'AbortError');
    });
  });
}

fetchCases("Node's built-in fetch", () => globalThis.fetch as never);
fetchCases("undici 7's fetch", () => undici7.fetch as never);
fetchCases("undici 8's fetch", () => undici8.fetch as never);

describe("mesh.fetch takes any copy's Request", () => {
  const kinds: [string, typeof globalThis.Request][] = [
    ["Node's global Request", globalThis.Request],
    ["undici 7's Request", undici7.Request as unknown as typeof globalThis.Request],
    ["undici 8's Request", undici8.Request as unknown as typeof globalThis.Request],
  ];
  for (const [name, RequestClass] of kinds) {
    it(`${name}: method, headers, a string and a streamed body, and its signal`, async () => {
      const post = await mesh.fetch(new RequestClass('http://svc/p', { method: 'POST', body: 'hello', headers: { 'x-who': name } }));
      assert.equal(await post.text(), 'up POST /p hello');
      assert.equal(post.headers.get('x-routed'), 'yes', 'routed by the mesh');
      assert.equal(up.seen.at(-1)?.headers['x-who'], name);
      const streamed = await mesh.fetch(new RequestClass('http://svc/s', { method: 'PUT', body: Readable.toWeb(Readable.from(['a', 'b', 'c'])) as ReadableStream, duplex: 'half' } as RequestInit));
      assert.equal(await streamed.text(), 'up PUT /s abc');
      const ac = new AbortController();
      const held = mesh.fetch(new RequestClass('http://svc/slow', { signal: ac.signal }));
      ac.abort();
      await assert.rejects(held, { name: 'AbortError' });
    });

    it(`${name} whose body was read: fetch's TypeError, or sent with the body init gives in its place`, async () => {
      const used = new RequestClass('http://svc/u', { method: 'POST', body: 'first' });
      await used.text();
      await assert.rejects(mesh.fetch(used), { name: 'TypeError', message: 'Cannot construct a Request with a Request object that has already been used.' });
      const replaced = await mesh.fetch(used, { body: 'second' });
      assert.equal(await replaced.text(), 'up POST /u second');
    });
  }
});

describe('undici 7 request, stream and pipeline', () => {
  it('request: status, headers, body; mesh-made 404', async () => {
    const r = await undici7.request('http://svc/r', { dispatcher: mesh.dispatcher as never, method: 'POST', body: 'x' });
    assert.equal(r.statusCode, 200);
    assert.equal(r.headers['x-routed'], 'yes');
    assert.equal(await r.body.text(), 'up POST /r x');
    const nr = await undici7.request('http://nr/zzz', { dispatcher: mesh.dispatcher as never });
    assert.equal(nr.statusCode, 404);
    assert.equal(nr.headers['x-meshlet-response-flags'], 'NR');
    await nr.body.dump();
  });

  it('stream', async () => {
    const chunks: Buffer[] = [];
    await undici7.stream('http://svc/st', { dispatcher: mesh.dispatcher as never, method: 'GET' }, () =>
      new Writable({
        write(c, _e, cb) {
          chunks.push(c as Buffer);
          cb();
        },
      }),
    );
    assert.equal(Buffer.concat(chunks).toString(), 'up GET /st ');
  });

  it("errors: 'throw' mode rejects with the MeshletError", async () => {
    const strict = await createMesh({ service: 'client', errors: 'throw', config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }]), virtualService('svc', ['svc'], [{ match: [{ uri: { exact: '/x' } }], route: [{ destination: { host: 'svc' } }] }])] });
    try {
      await assert.rejects(undici7.request('http://svc/nothing', { dispatcher: strict.dispatcher as never }), (e: unknown) => isMeshletError(e, 'MESHLET_ERR_NO_ROUTE'));
    } finally {
      await strict.close();
    }
  });
});

describe('setGlobalDispatcher', () => {
  const v1 = Symbol.for('undici.globalDispatcher.1');
  const v2 = Symbol.for('undici.globalDispatcher.2');
  const g = globalThis as unknown as Record<symbol, unknown>;
  let saved: [unknown, unknown];
  before(() => {
    saved = [g[v1], g[v2]];
  });
  after(() => {
    undici8.setGlobalDispatcher(saved[1] as never);
    g[v1] = saved[0];
  });

  for (const [name, set] of [
    ['undici 8', (d: unknown) => undici8.setGlobalDispatcher(d as never)],
    ['undici 7', (d: unknown) => undici7.setGlobalDispatcher(d as never)],
  ] as const) {
    it(`${name}'s setGlobalDispatcher(mesh.dispatcher) routes Node's fetch, undici 7 and undici 8`, async () => {
      set(mesh.dispatcher);
      for (const [client, f] of [
        ['node fetch', globalThis.fetch],
        ['undici 7 fetch', undici7.fetch],
        ['undici 8 fetch', undici8.fetch],
      ] as const) {
        const res = await (f as typeof globalThis.fetch)('http://svc/global');
        assert.equal(res.headers.get('x-routed'), 'yes', client);
        assert.equal(await res.text(), 'up GET /global ', client);
      }
      const r7 = await undici7.request('http://svc/g7');
      assert.equal(await r7.body.text(), 'up GET /g7 ');
      const r8 = await undici8.request('http://svc/g8');
      assert.equal(await r8.body.text(), 'up GET /g8 ');
    });
  }
});

describe('handlers the dispatcher cannot serve', () => {
  it('fail at once with an error naming both handler APIs', () => {
    assert.throws(
      () => mesh.dispatcher.dispatch({ origin: 'http://svc', path: '/', method: 'GET' }, {} as never),
      (e: unknown) => isMeshletError(e, 'MESHLET_ERR_INVALID_ARG') && /onResponseStart/.test((e as Error).message) && /onHeaders/.test((e as Error).message),
    );
    assert.throws(() => mesh.dispatcher.dispatch({ origin: 'http://svc', path: '/', method: 'GET' }, null as never), /needs a handler object/);
  });
});

describe("undici's own dispatchers and interceptors over mesh.dispatcher", () => {
  it('interceptors.retry and RetryAgent retry a 500 (their handler throws at the response end to retry) as over an Agent', async () => {
    flaky = 0;
    const composed = mesh.dispatcher.compose(undici8.interceptors.retry({ maxRetries: 2, minTimeout: 1, statusCodes: [500], methods: ['GET'] }));
    const r = await undici8.request('http://svc/flaky', { dispatcher: composed });
    assert.deepEqual([r.statusCode, await r.body.text()], [200, 'flaky 2']);
    flaky = 0;
    const agent = new undici8.RetryAgent(mesh.dispatcher as never, { maxRetries: 2, minTimeout: 1, statusCodes: [500] });
    const r2 = await undici8.request('http://svc/flaky', { dispatcher: agent });
    assert.deepEqual([r2.statusCode, await r2.body.text()], [200, 'flaky 2']);
  });

  it('a handler that throws in onResponseEnd hears of it in onResponseError, as from an Agent', async () => {
    const boom = new Error('thrown at the end');
    const heard = await new Promise<Error>((resolve) => {
      mesh.dispatcher.dispatch(
        { origin: 'http://svc', path: '/end', method: 'GET' },
        {
          onResponseStart() {},
          onResponseData() {},
          onResponseEnd() {
            throw boom;
          },
          onResponseError(_c: unknown, err: Error) {
            resolve(err);
          },
        } as never,
      );
    });
    assert.equal(heard, boom);
  });
});

describe("undici's WebSocket through mesh.dispatcher", () => {
  it('opens (the 101 reaches it with its headers), receives a message and closes', async () => {
    // A minimal WebSocket server: the RFC 6455 handshake, then one text frame.
    const server = createServer();
    server.on('upgrade', (req, socket: Socket) => {
      const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      socket.write(Buffer.concat([Buffer.from([0x81, 5]), Buffer.from('hello')]));
      socket.on('data', () => socket.destroy());
      socket.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const m = await createMesh({ service: 'client', config: [serviceEntry('ws', 'ws.default.svc.cluster.local', 80, [{ port }])] });
    try {
      const ws = new undici8.WebSocket('ws://ws.default.svc.cluster.local/chat', { dispatcher: m.dispatcher } as never);
      const message = await new Promise<string>((resolve, reject) => {
        ws.onmessage = (e) => resolve(String(e.data));
        ws.onerror = (e) => reject(new Error(`websocket error: ${(e as { message?: string }).message ?? 'unknown'}`));
        ws.onclose = (e) => reject(new Error(`closed ${e.code} ${e.reason}`));
      });
      assert.equal(message, 'hello');
      ws.onclose = null;
      ws.onerror = null;
      ws.close();
    } finally {
      await m.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
