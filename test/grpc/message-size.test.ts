/**
 * Message-size limits are the caller's, as with grpc-js's own channels: a message received that is
 * larger than the client's `grpc.max_receive_message_length` (grpc-js's default, 4 MiB, when the
 * client sets none) fails the call `RESOURCE_EXHAUSTED` with grpc-js's text and cancels it on the
 * wire, and one written that is larger than `grpc.max_send_message_length` fails the call before
 * anything is sent — for clients made with `mesh.grpc.client`, `mesh.grpc.channelOptions()` and
 * `mesh.grpc.channel`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { until } from '../helpers/until.ts';
import { closedAfter, collect, type Echo, EchoClient, grpc, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';

const HOST = 'echo.default.svc.cluster.local';
const MiB = 1024 * 1024;

describe('gRPC message-size limits through the mesh', () => {
  const { ups, meshes, clients } = closedAfter();

  async function setup() {
    const up = await startGrpcUpstream('a');
    ups.push(up);
    // The reply's text is as long as the request's count says.
    up.behaviour.Unary = (call, cb) => cb(null, { text: 'x'.repeat(call.request.count), server: 'a', seen: [] });
    const mesh = await createMesh({ service: 'client', config: [grpcServiceEntry('echo', HOST, 9090, [{ port: up.port }])] });
    meshes.push(mesh);
    return { up, mesh };
  }

  it("a reply over grpc-js's default receive limit (4 MiB): RESOURCE_EXHAUSTED, as a grpc-js channel answers it; under it: delivered", async () => {
    const { mesh } = await setup();
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    clients.push(client);
    const big = await unary(client, { count: 5 * MiB });
    assert.equal(big.error?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(big.error?.details ?? '', /^Received message larger than max \(\d+ vs 4194304\)$/);
    assert.equal((await unary(client, { count: 3 * MiB })).reply?.text.length, 3 * MiB);
  });

  it("the client's own grpc.max_receive_message_length applies (mesh.grpc.client, channelOptions(), channel(target, options))", async () => {
    const { mesh } = await setup();
    const opts = { 'grpc.max_receive_message_length': 1000 };
    const made = [
      mesh.grpc.client(EchoClient, 'echo:9090', opts),
      new EchoClient('echo:9090', grpc.credentials.createInsecure(), { ...mesh.grpc.channelOptions(), ...opts }),
      new EchoClient('echo:9090', grpc.credentials.createInsecure(), { channelOverride: mesh.grpc.channel('echo:9090', opts) }),
    ] as unknown as Echo[];
    clients.push(...made);
    for (const client of made) {
      const r = await unary(client, { count: 2000 });
      assert.equal(r.error?.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(r.error?.details ?? '', /^Received message larger than max \(\d+ vs 1000\)$/);
      assert.equal((await unary(client, { count: 10 })).reply?.text, 'x'.repeat(10));
    }
    // Unlimited (-1): the 5 MiB reply is delivered.
    const unlimited = mesh.grpc.client(EchoClient, 'echo:9090', { 'grpc.max_receive_message_length': -1 }) as unknown as Echo;
    clients.push(unlimited);
    assert.equal((await unary(unlimited, { count: 5 * MiB })).reply?.text.length, 5 * MiB);
  });

  it('a streamed message over the limit ends the stream RESOURCE_EXHAUSTED and cancels it at the server', async () => {
    const { up, mesh } = await setup();
    let cancelled = false;
    up.behaviour.ServerStream = (call) => {
      call.on('cancelled', () => (cancelled = true));
      call.write({ text: 'small', server: 'a', seen: [] });
      call.write({ text: 'y'.repeat(2000), server: 'a', seen: [] });
      // The stream stays open: only the caller's limit ends it.
    };
    const client = mesh.grpc.client(EchoClient, 'echo:9090', { 'grpc.max_receive_message_length': 1000 }) as unknown as Echo;
    clients.push(client);
    const r = await collect(client.ServerStream({ text: 's' }));
    assert.deepEqual(r.messages.map((m) => m.text), ['small']);
    assert.equal(r.status.code, grpc.status.RESOURCE_EXHAUSTED);
    await until(() => cancelled, 'the server to see the stream cancelled');
  });

  it("a request over the client's grpc.max_send_message_length fails RESOURCE_EXHAUSTED and is not sent", async () => {
    const { up, mesh } = await setup();
    const client = mesh.grpc.client(EchoClient, 'echo:9090', { 'grpc.max_send_message_length': 100 }) as unknown as Echo;
    clients.push(client);
    const r = await unary(client, { text: 'z'.repeat(200) });
    assert.equal(r.error?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(r.error?.details, 'Attempted to send message with a size larger than 100');
    assert.equal(up.hits, 0);
    assert.equal((await unary(client, { text: 'short' })).reply?.server, 'a');
  });
});
