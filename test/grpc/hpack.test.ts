/**
 * HPACK on the gRPC transport's connections: a value new on every call (`x-request-id`) goes out
 * never indexed, so it does not push the headers that repeat (Istio's metadata-exchange headers,
 * ~600 bytes) out of the connection's dynamic table — indexed, every ~40 calls one request
 * carried them literally again, and the server decoded them again.
 */
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import { type AddressInfo, connect, createServer as createNetServer, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { type Echo, EchoClient, grpcServiceEntry, unary } from '../helpers/grpc.ts';

const HOST = 'echo.default.svc.cluster.local';

/** An EchoReply { text: 'ok' }, framed. */
const REPLY = Buffer.from([0, 0, 0, 0, 4, 0x0a, 2, 0x6f, 0x6b]);

describe('gRPC transport: HPACK of the per-call headers', () => {
  const open: (() => Promise<unknown> | unknown)[] = [];
  after(async () => {
    for (const close of open.reverse()) await close();
  });

  it('x-request-id goes out never indexed; the repeated headers stay in the table, so every request costs the same bytes', async () => {
    const server = http2.createServer();
    const requests: http2.IncomingHttpHeaders[] = [];
    server.on('stream', (stream, headers) => {
      requests.push(headers);
      stream.resume();
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(REPLY);
    });
    const sessions = new Set<http2.ServerHttp2Session>();
    server.on('session', (s) => sessions.add(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    open.push(
      () =>
        new Promise((r) => {
          for (const s of sessions) s.destroy();
          server.close(r);
        }),
    );
    // A proxy that counts what the client writes.
    let up = 0;
    const sockets = new Set<Socket>();
    const proxy = createNetServer((c) => {
      const s = connect((server.address() as AddressInfo).port, '127.0.0.1');
      sockets.add(c).add(s);
      c.setNoDelay(true);
      s.setNoDelay(true);
      c.on('data', (d: Buffer) => {
        up += d.length;
        s.write(d);
      });
      s.on('data', (d: Buffer) => c.write(d));
      c.on('close', () => s.destroy());
      s.on('close', () => c.destroy());
      c.on('error', () => undefined);
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    open.push(
      () =>
        new Promise((r) => {
          for (const s of sockets) s.destroy();
          proxy.close(r);
        }),
    );
    const mesh = await createMesh({ service: 'client', namespace: 'default', labels: { app: 'client' }, config: [grpcServiceEntry('echo', HOST, 9090, [{ port: (proxy.address() as AddressInfo).port }])], logger: { warn: () => undefined } });
    open.push(() => mesh.close());
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    open.push(() => client.close());

    const perCall: number[] = [];
    for (let i = 0; i < 120; i++) {
      const before = up;
      const r = await unary(client, { text: 'x' });
      assert.equal(r.error, undefined);
      perCall.push(up - before);
    }
    assert.equal(requests.length, 120);
    const first = requests[0] as http2.IncomingHttpHeaders;
    assert.equal(typeof first['x-envoy-peer-metadata'], 'string', 'the metadata-exchange headers are sent');
    assert.ok(String(first['x-envoy-peer-metadata']).length > 100, `length ${String(first['x-envoy-peer-metadata']).length}`);
    assert.equal(new Set(requests.map((h) => h['x-request-id'])).size, 120, 'an id per call');
    // The first call's id is sent as the shared headers are (the mesh learns from the second that it changes per call).
    for (const h of requests.slice(1)) {
      const never = (h as { [http2.sensitiveHeaders]?: string[] })[http2.sensitiveHeaders] ?? [];
      assert.deepEqual(never, ['x-request-id'], 'only the per-call id is never indexed');
    }
    // After the first calls (the table filling), each request's bytes are the same, give or take a
    // WINDOW_UPDATE: none carries the repeated headers literally again.
    const steady = perCall.slice(3);
    const least = Math.min(...steady);
    assert.ok(Math.max(...steady) <= least + 40, `bytes per request: ${steady.join(' ')}`);
  });
});
