/**
 * `mesh.grpc.bind` and the mesh's lifecycle: `mesh.close()` closes the port the mesh bound,
 * letting a call in flight run for `closeTimeoutMs` before it is cancelled; grpc-js's
 * `server.tryShutdown()` / `forceShutdown()` close it too, as they close grpc-js's own ports
 * (tryShutdown calls back once the calls in flight are done); a bad address is
 * refused, naming it; how bind addresses are read and how a deadline is written as `grpc-timeout`.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { grpcTimeoutOf } from '../../src/adapters/grpc/server-interceptor.ts';
import { parseBindAddress } from '../../src/adapters/grpc/server-listen.ts';
import { collect, type Echo, grpc, unary } from '../helpers/grpc.ts';
import { plainClient, startMeshGrpcServer } from '../helpers/grpc-server.ts';

describe('gRPC server: mesh.grpc.bind and mesh.close()', () => {
  it('mesh.close() closes the port mesh.grpc.bind opened', async () => {
    const mesh = await createMesh({ service: 'echo', namespace: 'foo', config: [] });
    const server = await startMeshGrpcServer(mesh);
    const client = plainClient(server.port) as Echo;
    try {
      assert.equal((await unary(client, { text: 'a' })).error, undefined);
      await mesh.close();
      const r = await new Promise<string>((resolve) => {
        const s = connect(server.port, '127.0.0.1');
        s.on('connect', () => {
          s.destroy();
          resolve('connected');
        });
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      });
      assert.equal(r, 'ECONNREFUSED');
    } finally {
      client.close();
      await server.close();
    }
  });

  it('mesh.close() lets a call in flight run for closeTimeoutMs, then cancels it', async () => {
    const mesh = await createMesh({ service: 'echo', namespace: 'foo', config: [], closeTimeoutMs: 50 });
    // A bidi handler that never ends its stream.
    const server = await startMeshGrpcServer(mesh, 'mesh', { Bidi: (call) => call.on('data', () => undefined) });
    const client = plainClient(server.port) as Echo;
    try {
      const call = client.Bidi();
      const done = collect(call);
      call.write({ text: 'open' });
      // The handler has the call.
      while (server.seen.length === 0) await new Promise((r) => setTimeout(r, 2));
      await mesh.close();
      const r = await done;
      assert.notEqual(r.status.code, grpc.status.OK);
    } finally {
      client.close();
      await server.close();
    }
  });

  /** What a new connection to `port` gets: 'connected' or the error code. */
  const dial = (port: number) =>
    new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.on('connect', () => {
        // Accepted, then closed by the server without a byte, or kept: either way, say which.
        s.once('close', () => resolve('closed'));
        s.setTimeout(1000, () => {
          s.destroy();
          resolve('connected');
        });
      });
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });

  it('server.tryShutdown(): the port takes no new connection, and the callback comes once the call in flight has ended', async () => {
    const mesh = await createMesh({ service: 'echo', namespace: 'foo', config: [] });
    // A bidi handler that echoes and ends when its caller does.
    const server = await startMeshGrpcServer(mesh, 'mesh');
    const client = plainClient(server.port) as Echo;
    try {
      const order: string[] = [];
      const call = client.Bidi();
      const done = collect(call).then((r) => order.push(`call ended ${grpc.status[r.status.code]}`));
      call.write({ text: 'open' });
      while (server.seen.length === 0) await new Promise((r) => setTimeout(r, 2));
      const shut = new Promise<void>((resolve) =>
        server.server.tryShutdown(() => {
          order.push('tryShutdown callback');
          resolve();
        }),
      );
      assert.equal(await dial(server.port), 'ECONNREFUSED');
      order.push('caller ends');
      call.end();
      await Promise.all([done, shut]);
      assert.deepEqual(order, ['caller ends', 'call ended OK', 'tryShutdown callback']);
    } finally {
      client.close();
      await server.close();
      await mesh.close();
    }
  });

  it('server.forceShutdown(): the port takes no new connection', async () => {
    const mesh = await createMesh({ service: 'echo', namespace: 'foo', config: [] });
    const server = await startMeshGrpcServer(mesh, 'mesh');
    const client = plainClient(server.port) as Echo;
    try {
      assert.equal((await unary(client, { text: 'a' })).error, undefined);
      server.server.forceShutdown();
      assert.equal(await dial(server.port), 'ECONNREFUSED');
    } finally {
      client.close();
      await mesh.close();
    }
  });

  it('a bind after mesh.close() or of a server already shut down is refused, saying why; a port in use names the bind and keeps its code', async () => {
    const mesh = await createMesh({ service: 'echo', namespace: 'foo', config: [] });
    const server = await startMeshGrpcServer(mesh, 'mesh');
    try {
      await assert.rejects(mesh.grpc.bind(new grpc.Server(), `127.0.0.1:${server.port}`), (e: NodeJS.ErrnoException) => {
        assert.equal(e.code, 'EADDRINUSE');
        assert.match(e.message, new RegExp(`^mesh\\.grpc\\.bind\\(server, "127\\.0\\.0\\.1:${server.port}"\\): cannot listen: .*EADDRINUSE`));
        return true;
      });
      const shut = new grpc.Server();
      shut.forceShutdown();
      await assert.rejects(mesh.grpc.bind(shut, '127.0.0.1:0'), /mesh\.grpc\.bind\(server, "127\.0\.0\.1:0"\): the server is shut down/);
    } finally {
      await server.close();
      await mesh.close();
    }
    // Nothing would ever close a port bound now: refused.
    await assert.rejects(mesh.grpc.bind(new grpc.Server(), '127.0.0.1:0'), /mesh\.grpc\.bind\(server, "127\.0\.0\.1:0"\): the mesh is closed/);
    assert.deepEqual(mesh.grpc.boundPorts(), []);
  });

  it('an address without a port is refused, naming it', async () => {
    const mesh = await createMesh({ service: 'echo', namespace: 'foo', config: [] });
    try {
      await assert.rejects(mesh.grpc.bind(new grpc.Server(), 'localhost'), /mesh\.grpc\.bind: address "localhost" is not host:port/);
    } finally {
      await mesh.close();
    }
  });
});

describe('bind addresses and grpc-timeout values', () => {
  const addresses: [string, { host: string; port: number } | RegExp][] = [
    ['0.0.0.0:9090', { host: '0.0.0.0', port: 9090 }],
    ['127.0.0.1:0', { host: '127.0.0.1', port: 0 }],
    ['[::]:9090', { host: '::', port: 9090 }],
    ['[::1]:50051', { host: '::1', port: 50051 }],
    [':9090', { host: '', port: 9090 }],
    ['localhost:8080', { host: 'localhost', port: 8080 }],
    ['localhost', /is not host:port/],
    ['::1:9090', /is not host:port/],
    ['host:65536', /is not host:port/],
    ['host:-1', /is not host:port/],
    ['', /is not host:port/],
  ];
  for (const [input, want] of addresses) {
    it(`${JSON.stringify(input)} → ${want instanceof RegExp ? 'refused' : `${want.host}:${want.port}`}`, () => {
      if (want instanceof RegExp) assert.throws(() => parseBindAddress(input), want);
      else assert.deepEqual({ ...parseBindAddress(input) }, want);
    });
  }

  const timeouts: [number, number, string | undefined][] = [
    [Number.POSITIVE_INFINITY, 0, undefined],
    [1000, 0, '1000000u'],
    [1000.5, 1000, '500u'],
    [900, 1000, '0u'],
    [200_000, 0, '200000m'],
    [200_000_000, 0, '200000S'],
    [1e12, 0, '99999999S'],
  ];
  for (const [deadline, now, want] of timeouts) {
    it(`deadline ${deadline} at ${now} → ${want}`, () => assert.equal(grpcTimeoutOf(deadline, now), want));
  }
});
