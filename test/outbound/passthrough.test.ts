/**
 * Calls to hosts outside the mesh registry (ALLOW_ANY, the default): Istio's allow_any route to
 * PassthroughCluster sends them once, with no route timeout and no retries — but the sidecar
 * still answers a failure as Envoy does (503 UF `upstream connect error …`), the caller's
 * deadline still ends the call (504 UT), and close() still bounds it. Before, all three went
 * around the pipeline: undici's own ECONNREFUSED / `fetch failed`, no deadline, and a call to a
 * hung host outlived close() (undici's Agent forgets its pools once close() starts).
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { createMesh, isMeshletError, ManualClock, withDeadline } from '../../src/index.ts';
import { type Echo, EchoClient, unary } from '../helpers/grpc.ts';
import { settle, until } from '../helpers/mesh-calls.ts';

/** A TCP server that accepts and never answers, counting its connections. */
let hung: Server;
let hungPort = 0;
let accepted = 0;
/** What the hung host received, per connection. */
const received: string[] = [];
/** Its connections, ended at the end (server.close() waits for every one). */
const sockets = new Set<Socket>();
/** Its connections, in the order accepted (as `received`). */
const connections: Socket[] = [];
/** A port nothing listens on. */
let closedPort = 0;

before(async () => {
  hung = createServer((socket) => {
    const i = accepted++;
    received[i] = '';
    connections[i] = socket;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('data', (c) => {
      received[i] += c.toString('latin1');
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
  hungPort = (hung.address() as { port: number }).port;
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  closedPort = (probe.address() as { port: number }).port;
  await new Promise((r) => probe.close(r));
});
after(async () => {
  const closed = new Promise((r) => hung.close(r));
  for (const s of sockets) s.destroy();
  await closed;
});

const outcome = (e: unknown): string => (isMeshletError(e) ? `${e.code} ${e.flags ?? ''} ${e.message}` : `not a MeshletError: ${String(e)} (cause ${String((e as { cause?: unknown }).cause)})`);

describe('calls to hosts outside the registry (ALLOW_ANY passthrough)', () => {
  it("a connection failure is Envoy's 503 UF, through mesh.fetch, Node's fetch and undici.request; MESHLET_ERR_UPSTREAM_CONNECT with errors: 'throw'", async () => {
    const url = `http://127.0.0.1:${closedPort}/x`;
    const respond = await createMesh({ service: 'client', config: [] });
    try {
      const r = await respond.fetch(url);
      assert.deepEqual([r.status, r.headers.get('x-meshlet-response-flags'), await r.text()], [503, 'UF', 'upstream connect error or disconnect/reset before headers. reset reason: remote connection failure, transport failure reason: delayed connect error: Connection refused']);
      const viaNode = await fetch(url, { dispatcher: respond.dispatcher } as RequestInit);
      assert.equal(viaNode.status, 503);
      await viaNode.text();
      const viaRequest = await request(url, { dispatcher: respond.dispatcher });
      assert.equal(viaRequest.statusCode, 503);
      await viaRequest.body.text();
    } finally {
      await respond.close();
    }
    const throwing = await createMesh({ service: 'client', config: [], errors: 'throw' });
    try {
      const e = await throwing.fetch(url).then(() => undefined, (x: unknown) => x);
      assert.match(outcome(e), /^MESHLET_ERR_UPSTREAM_CONNECT UF upstream connect error/);
      const e2 = await request(url, { dispatcher: throwing.dispatcher }).then(() => undefined, (x: unknown) => x);
      assert.match(outcome(e2), /^MESHLET_ERR_UPSTREAM_CONNECT UF /);
    } finally {
      await throwing.close();
    }
  });

  it("the caller's deadline (withDeadline) ends a call to a hung host: 504 UT; no deadline, no timeout (Istio's allow_any route has none)", async () => {
    const clock = new ManualClock();
    const mesh = await createMesh({ service: 'client', config: [], clock });
    try {
      const before = accepted;
      const p = withDeadline(5000, () => mesh.fetch(`http://127.0.0.1:${hungPort}/held`));
      await until(() => (received[before] ?? '').includes('\r\n\r\n'), 'the request to reach the hung host');
      // The deadline was carried over to the mesh clock when the call started (a few real ms after withDeadline).
      clock.advance(4000);
      let settled = false;
      void p.then(() => (settled = true));
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(settled, false, 'not before the deadline');
      clock.advance(1000);
      const r = await settle(p, 'the deadline to end the call');
      assert.deepEqual([r.status, r.headers.get('x-meshlet-response-flags')], [504, 'UT']);
      await r.text();
      // The deadline is the mesh's to keep: a host outside the mesh is not told it (no route timeout to tell).
      assert.match(received[before] ?? '', /^GET \/held HTTP\/1\.1\r\n/);
      assert.doesNotMatch(received[before] ?? '', /x-envoy-expected-rq-timeout-ms/i);
      // Without a deadline nothing times out (the route has no timeout): still waiting after an hour of mesh time.
      const ac = new AbortController();
      const open = mesh.fetch(`http://127.0.0.1:${hungPort}/open`, { signal: ac.signal }).then(
        () => 'answered',
        () => 'failed',
      );
      await until(() => accepted === before + 2, 'the second call to reach the hung host');
      clock.advance(3_600_000);
      const state = await Promise.race([open, new Promise((r) => setTimeout(() => r('waiting'), 50))]);
      assert.equal(state, 'waiting');
      ac.abort();
      assert.equal(await settle(open, 'the abort'), 'failed');
    } finally {
      await mesh.close();
    }
  });

  it("a gRPC call to a hung host outside the registry ends at the caller's deadline: DEADLINE_EXCEEDED", async () => {
    const clock = new ManualClock();
    const mesh = await createMesh({ service: 'client', config: [], clock });
    const client = mesh.grpc.client(EchoClient as never, `127.0.0.1:${hungPort}`) as Echo;
    try {
      const before = accepted;
      const p = withDeadline(5000, () => unary(client, { text: 'x' }));
      await until(() => accepted === before + 1, 'the call to reach the hung host');
      clock.advance(5000);
      const r = await settle(p, 'the deadline to end the call');
      assert.deepEqual([r.error?.code, r.error?.details], [4, 'upstream request timeout']);
    } finally {
      client.close();
      await mesh.close();
    }
  });

  it('close() cancels a call to a hung host after closeTimeoutMs: MESHLET_ERR_CLOSED (fetch and undici.request)', async () => {
    const clock = new ManualClock();
    const mesh = await createMesh({ service: 'client', config: [], clock, closeTimeoutMs: 5000, errors: 'throw' });
    const before = accepted;
    const viaFetch = mesh.fetch(`http://127.0.0.1:${hungPort}/a`).then(() => 'answered', outcome);
    const viaRequest = request(`http://127.0.0.1:${hungPort}/b`, { dispatcher: mesh.dispatcher }).then(() => 'answered', outcome);
    await until(() => accepted >= before + 1, 'the calls to reach the hung host');
    let state = 'closing';
    const closed = mesh.close().then(() => (state = 'closed'));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(state, 'closing', 'close() lets the calls run while closeTimeoutMs has not passed');
    clock.advance(5000);
    await settle(closed, 'close()');
    assert.match(await settle(viaFetch, 'the fetch to fail'), /^MESHLET_ERR_CLOSED /);
    assert.match(await settle(viaRequest, 'the request to fail'), /^MESHLET_ERR_CLOSED /);
  });

  it('close() still cancels a call to a hung host after another connection to that host dropped while closing', async () => {
    // The Agent's pool for the host began to close with close(); when one of its connections went,
    // meshlet forgot the pool (it was "closed"), so the call still running on the other connection
    // was not cancelled at closeTimeoutMs: it outlived close() for as long as the host held it.
    const clock = new ManualClock();
    const mesh = await createMesh({ service: 'client', config: [], clock, closeTimeoutMs: 5000, errors: 'throw' });
    const before = accepted;
    const first = request(`http://127.0.0.1:${hungPort}/a`, { dispatcher: mesh.dispatcher }).then(() => 'answered', outcome);
    const second = request(`http://127.0.0.1:${hungPort}/b`, { dispatcher: mesh.dispatcher }).then(() => 'answered', outcome);
    await until(() => accepted >= before + 2 && received[before] !== '' && received[before + 1] !== '', 'both calls to reach the hung host, each on its own connection');
    const closed = mesh.close();
    // The host drops the connection of the call to /a.
    const i = received.findIndex((r, n) => n >= before && r.startsWith('GET /a '));
    connections[i]?.destroy();
    assert.match(await settle(first, 'the dropped call to fail'), /^MESHLET_ERR_/);
    clock.advance(5000);
    await settle(closed, 'close()');
    assert.match(await settle(second, 'the call still running to be cancelled'), /^MESHLET_ERR_CLOSED /);
  });
});
