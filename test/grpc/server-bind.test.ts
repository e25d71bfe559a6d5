/**
 * `mesh.grpc.bind` and the mesh's lifecycle: `mesh.close()` closes the port the mesh bound,
 * letting a call in flight run for `closeTimeoutMs` before it is cancelled; a bad address is
 * refused, naming it.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { createMesh } from '../../src/index.ts';
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

  it('an address without a port is refused, naming it', async () => {
    const mesh = await createMesh({ service: 'echo', namespace: 'foo', config: [] });
    try {
      await assert.rejects(mesh.grpc.bind(new grpc.Server(), 'localhost'), /mesh\.grpc\.bind: address "localhost" is not host:port/);
    } finally {
      await mesh.close();
    }
  });
});
