/**
 * `GET /tap` for inbound calls the admin tap test does not make: a grpc-js server under
 * `mesh.grpc.serverInterceptors()` and bound by `mesh.grpc.bind` (an OK call and one its handler
 * fails), and an HTTP/2 (h2c) caller of `mesh.createServer`. Real sockets, independent clients.
 */
import assert from 'node:assert/strict';
import { connect as h2connect } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { createMesh } from '../../src/index.ts';
import { type Echo, EchoClient, unary } from '../helpers/grpc.ts';
import { openTap } from '../helpers/tap.ts';



describe('admin /tap: inbound gRPC and HTTP/2', () => {
  it('a grpc-js server under serverInterceptors and mesh.grpc.bind: each call is an in/grpc req and an end with its gRPC status', async () => {
    const mesh = await createMesh({ service: 'echo', identity: 'none', config: [], logger: { warn: () => {} }, admin: { port: 0 } });
    const server = new grpc.Server({ interceptors: mesh.grpc.serverInterceptors() });
    server.addService(EchoClient.service, {
      Unary: (c: grpc.ServerUnaryCall<{ text: string }, object>, cb: grpc.sendUnaryData<object>) =>
        c.request.text === 'fail' ? cb({ code: grpc.status.FAILED_PRECONDITION, details: 'no' }) : cb(null, { text: c.request.text, server: 'echo' }),
    });
    const client = new EchoClient('127.0.0.1:1', grpc.credentials.createInsecure()) as unknown as Echo & grpc.Client;
    let other: (Echo & grpc.Client) | undefined;
    try {
      const port = await mesh.grpc.bind(server, '127.0.0.1:0');
      other = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as Echo & grpc.Client;
      const tap = await openTap(mesh);
      assert.equal((await unary(other, { text: 'hi' })).error, undefined);
      assert.equal((await unary(other, { text: 'fail' })).error?.code, grpc.status.FAILED_PRECONDITION);
      const ends = await tap.wait('end', 2);
      const reqs = tap.records.filter((r) => r.type === 'req');
      assert.deepEqual(
        reqs.map((r) => [r.direction, r.protocol, r.method, r.path, r.cluster, r.dstAddress, r.tls]),
        [
          ['in', 'grpc', 'POST', '/meshlet.test.Echo/Unary', `inbound|${port}||`, `127.0.0.1:${port}`, false],
          ['in', 'grpc', 'POST', '/meshlet.test.Echo/Unary', `inbound|${port}||`, `127.0.0.1:${port}`, false],
        ],
      );
      for (const r of reqs) assert.match(String(r.srcAddress), /^127\.0\.0\.1:\d+$/);
      assert.deepEqual(
        ends.map((e) => [e.id, e.direction, e.status, e.grpcStatus ?? null]),
        [
          [reqs[0]?.id, 'in', 200, 0],
          [reqs[1]?.id, 'in', 200, grpc.status.FAILED_PRECONDITION],
        ],
      );
      tap.close();
    } finally {
      client.close();
      other?.close();
      server.forceShutdown();
      await mesh.close();
    }
  });

  it('an HTTP/2 caller of mesh.createServer: an in/http2 req and its end', async () => {
    const mesh = await createMesh({ service: 'web', identity: 'none', config: [], logger: { warn: () => {} }, admin: { port: 0 } });
    const server = mesh.createServer((req, res) => {
      res.statusCode = req.url === '/missing' ? 404 : 200;
      res.end('in');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const session = h2connect(`http://127.0.0.1:${port}`);
    try {
      const tap = await openTap(mesh);
      const h2 = (path: string) =>
        new Promise<number>((resolve, reject) => {
          const req = session.request({ ':method': 'GET', ':path': path });
          let status = 0;
          req.on('response', (h) => (status = Number(h[':status'])));
          req.on('end', () => resolve(status));
          req.on('error', reject);
          req.resume();
        });
      assert.equal(await h2('/ok?secret=1'), 200);
      assert.equal(await h2('/missing'), 404);
      const ends = await tap.wait('end', 2);
      const reqs = tap.records.filter((r) => r.type === 'req');
      assert.deepEqual(
        reqs.map((r) => [r.direction, r.protocol, r.method, r.path, r.authority, r.cluster, r.dstAddress]),
        [
          ['in', 'http2', 'GET', '/ok', `127.0.0.1:${port}`, `inbound|${port}||`, `127.0.0.1:${port}`],
          ['in', 'http2', 'GET', '/missing', `127.0.0.1:${port}`, `inbound|${port}||`, `127.0.0.1:${port}`],
        ],
      );
      assert.deepEqual(
        ends.map((e) => [e.id, e.direction, e.status]),
        [
          [reqs[0]?.id, 'in', 200],
          [reqs[1]?.id, 'in', 404],
        ],
      );
      assert.equal(JSON.stringify(tap.records).includes('secret'), false);
      tap.close();
    } finally {
      session.close();
      await mesh.close();
      await new Promise((r) => server.close(r));
    }
  });
});
