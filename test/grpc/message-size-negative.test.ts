/**
 * A negative message-size limit other than -1. grpc-js takes only -1 as "any size": its decoder
 * refuses a received message when `max !== -1 && size > max` (stream-decoder.js), and its
 * compression filter a sent one on the same test (compression-filter.js), so a limit of -2 refuses
 * every message, an empty one too. A client through the mesh gets what the same client on a plain
 * grpc-js channel gets — the status and its words, read from a real grpc-js client here, not
 * written down.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { closedAfter, type Echo, EchoClient, grpc, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';

const HOST = 'echo.default.svc.cluster.local';

describe('gRPC message-size limits below -1, as grpc-js takes them', () => {
  const { ups, meshes, clients } = closedAfter();

  for (const [key, count] of [
    ['grpc.max_receive_message_length', 10],
    ['grpc.max_receive_message_length', 0],
    ['grpc.max_send_message_length', 10],
  ] as const) {
    it(`${key}: -2 (a reply of ${count} bytes): what a plain grpc-js client gets`, async () => {
      const up = await startGrpcUpstream('a');
      ups.push(up);
      up.behaviour.Unary = (call, cb) => cb(null, { text: 'x'.repeat(call.request.count), server: 'a', seen: [] });
      const mesh = await createMesh({ service: 'client', config: [grpcServiceEntry('echo', HOST, 9090, [{ port: up.port }])] });
      meshes.push(mesh);
      const opts = { [key]: -2 };
      const plain = new EchoClient(`127.0.0.1:${up.port}`, grpc.credentials.createInsecure(), opts) as unknown as Echo;
      const meshed = mesh.grpc.client(EchoClient, 'echo:9090', opts) as unknown as Echo;
      clients.push(plain, meshed);
      const want = await unary(plain, { count });
      assert.equal(want.error?.code, grpc.status.RESOURCE_EXHAUSTED, `grpc-js refuses it: ${want.error?.details}`);
      const got = await unary(meshed, { count });
      assert.deepEqual([got.error?.code, got.error?.details], [want.error?.code, want.error?.details]);
    });
  }
});
