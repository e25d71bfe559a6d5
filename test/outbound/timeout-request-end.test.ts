/**
 * The route `timeout` and `perTryTimeout` start when the request has been sent to its end, as
 * Envoy's do (the route timeout "spans between the point at which the entire downstream request
 * (i.e. end-of-stream) has been processed and when the upstream response has been completely
 * processed"; the per-try timer is armed when the upstream request is complete): a streamed upload
 * longer than the timeout succeeds when the upstream answers right after it. The caller's own
 * deadline (withDeadline) still runs from the call's start. All on a ManualClock.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { ManualClock, type Mesh, withDeadline } from '../../src/index.ts';
import { meshFor, settle, until } from '../helpers/mesh-calls.ts';
import { destinationRule } from '../helpers/upstreams.ts';

describe('route and per-try timeouts start at the end of the request', () => {
  // '/answer' is answered as soon as its body has arrived; '/hold' never (until the mesh gives up).
  let server: Server;
  let port = 0;
  /** Bytes received, per request, in order. */
  const received: number[] = [];
  const expected: (string | undefined)[] = [];
  const held: ServerResponse[] = [];
  before(async () => {
    server = createServer((req, res) => {
      const i = received.push(0) - 1;
      expected.push(req.headers['x-envoy-expected-rq-timeout-ms'] as string | undefined);
      req.on('data', (c: Buffer) => {
        received[i] = (received[i] as number) + c.length;
      });
      req.on('error', () => undefined);
      req.on('end', () => {
        if (req.url === '/answer') res.end(`got ${received[i]}`);
        else held.push(res);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  async function withMesh(http: unknown[], fn: (mesh: Mesh, clock: ManualClock) => Promise<void>): Promise<void> {
    const clock = new ManualClock();
    const mesh = await meshFor([{ port }], http, [], { clock });
    try {
      await fn(mesh, clock);
    } finally {
      server.closeAllConnections();
      await mesh.close();
    }
  }

  /** Starts an upload of one byte and waits until the upstream has it. */
  async function upload(send: (body: PassThrough) => Promise<{ status: number; flags: string; text: string }>): Promise<{ body: PassThrough; result: Promise<{ status: number; flags: string; text: string }>; at: number }> {
    const at = received.length;
    const body = new PassThrough();
    const result = send(body);
    body.write('a');
    await until(() => received[at] === 1, 'the upstream to receive the start of the body');
    return { body, result, at };
  }

  const viaRequest = (mesh: Mesh, path: string) => async (body: PassThrough) => {
    const r = await request(`http://svc${path}`, { method: 'POST', body, dispatcher: mesh.dispatcher });
    return { status: r.statusCode, flags: String(r.headers['x-meshlet-response-flags'] ?? ''), text: await r.body.text() };
  };
  const viaFetch = (mesh: Mesh, path: string) => async (body: PassThrough) => {
    const r = await mesh.fetch(`http://svc${path}`, { method: 'POST', body: Readable.toWeb(body) as ReadableStream, duplex: 'half' } as RequestInit);
    return { status: r.status, flags: r.headers.get('x-meshlet-response-flags') ?? '', text: await r.text() };
  };

  const ROUTE = [{ route: [{ destination: { host: 'svc' } }], timeout: '500ms', retries: { attempts: 0 } }];

  for (const [api, via] of [
    ['undici.request', viaRequest],
    ['mesh.fetch', viaFetch],
  ] as const) {
    test(`route timeout (${api}): an upload longer than the timeout succeeds; the timeout runs from the body's end; the upstream is told the route timeout`, async () => {
      await withMesh(ROUTE, async (mesh, clock) => {
        const u = await upload(via(mesh, '/answer'));
        clock.advance(1000); // twice the route timeout, mid-upload
        u.body.write('bb');
        await until(() => received[u.at] === 3, 'the rest of the body to arrive');
        u.body.end('c');
        const r = await settle(u.result, 'the answer');
        assert.deepEqual(r, { status: 200, flags: '', text: 'got 4' });
        assert.equal(expected[u.at], '500', 'x-envoy-expected-rq-timeout-ms: the route timeout, as Envoy sends it');

        // Held by the upstream: the route timeout ends the call 500 ms after the body's end, not before.
        const heldBefore = held.length;
        const h = await upload(via(mesh, '/hold'));
        clock.advance(1000);
        let settled = false;
        const result = h.result.finally(() => {
          settled = true;
        });
        h.body.end();
        await until(() => held.length === heldBefore + 1, 'the upstream to have the whole body');
        clock.advance(499);
        await new Promise((r) => setImmediate(r));
        assert.equal(settled, false, '499 ms after the body ended, the call still runs');
        clock.advance(1);
        const t = await settle(result, 'the route timeout');
        assert.equal(t.status, 504);
        assert.equal(t.flags, 'UT');
      });
    });
  }

  test('perTryTimeout: an upload longer than the per-try timeout succeeds; the per-try timer starts at the body\'s end', async () => {
    // retryOn 503: a per-try timeout is not retried (Envoy retries it only under 5xx, gateway-error, reset).
    await withMesh([{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 1, perTryTimeout: '500ms', retryOn: '503' } }], async (mesh, clock) => {
      const u = await upload(viaRequest(mesh, '/answer'));
      clock.advance(1000);
      u.body.end('b');
      assert.deepEqual(await settle(u.result, 'the answer'), { status: 200, flags: '', text: 'got 2' });

      const heldBefore = held.length;
      const h = await upload(viaRequest(mesh, '/hold'));
      clock.advance(1000);
      h.body.end();
      await until(() => held.length === heldBefore + 1, 'the upstream to have the whole body');
      clock.advance(500);
      const t = await settle(h.result, 'the per-try timeout');
      assert.equal(t.status, 504);
      assert.equal(t.flags, 'UT');
    });
  });

  test('a call whose body the mesh has whole while it waits for a connection (queued behind maxConnections) times out from then (route and per-try): mesh.fetch streams even a string body', async () => {
    const http = [
      { match: [{ uri: { exact: '/hold' } }], route: [{ destination: { host: 'svc' } }], retries: { attempts: 0 } },
      { match: [{ uri: { exact: '/pertry' } }], route: [{ destination: { host: 'svc' } }], retries: { attempts: 1, perTryTimeout: '500ms', retryOn: '503' } },
      { route: [{ destination: { host: 'svc' } }], timeout: '500ms', retries: { attempts: 0 } },
    ];
    const clock = new ManualClock();
    const pool = destinationRule('svc', 'svc.default.svc.cluster.local', { trafficPolicy: { connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 5 } } } });
    const mesh = await meshFor([{ port }], http, [pool], { clock });
    try {
      const heldBefore = held.length;
      const holding = request('http://svc/hold', { method: 'POST', body: 'h', dispatcher: mesh.dispatcher });
      await until(() => held.length === heldBefore + 1, 'the only connection to be taken');
      const queued = mesh.fetch('http://svc/answer', { method: 'POST', body: 'queued' });
      const perTry = mesh.fetch('http://svc/pertry', { method: 'POST', body: 'queued' });
      await new Promise((r) => setImmediate(r));
      clock.advance(500);
      const r = await settle(queued, 'the route timeout of the queued call');
      assert.equal(r.status, 504);
      assert.equal(r.headers.get('x-meshlet-response-flags'), 'UT');
      const p = await settle(perTry, 'the per-try timeout of the queued call');
      assert.equal(p.status, 504, 'a per-try timeout (not retried under 503 only)');
      assert.equal(p.headers.get('x-meshlet-response-flags'), 'UT');
      server.closeAllConnections();
      await holding.catch(() => undefined);
    } finally {
      server.closeAllConnections();
      await mesh.close();
    }
  });

  test('the caller\'s own deadline (withDeadline) still runs from the call\'s start, upload or not', async () => {
    await withMesh(ROUTE, async (mesh, clock) => {
      const u = await withDeadline(800, () => upload(viaRequest(mesh, '/hold')));
      clock.advance(800);
      const r = await settle(u.result, 'the caller deadline');
      assert.equal(r.status, 504);
      assert.equal(r.flags, 'UT');
      u.body.destroy();
    });
  });
});
