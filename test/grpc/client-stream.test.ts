/**
 * A client-streaming call larger than the replay buffer: its messages stream through the mesh in
 * order to a server that reads them slowly (the caller's writes wait on the connection's flow
 * control), past the point where the mesh stops recording them for retries.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { type Echo, EchoClient, grpc, type GrpcUpstream, grpcServiceEntry, startGrpcUpstream } from '../helpers/grpc.ts';

describe('gRPC client streaming past the replay buffer', () => {
  let up: GrpcUpstream;
  let mesh: Mesh;
  let client: Echo;
  before(async () => {
    up = await startGrpcUpstream('a', {
      ClientStream: (call, cb) => {
        const seen: string[] = [];
        let bytes = 0;
        call.on('data', (m: { text: string }) => {
          seen.push(m.text.slice(0, 8));
          bytes += m.text.length;
          // A slow reader: every tenth message, stop reading for a turn.
          if (seen.length % 10 === 0) {
            call.pause();
            setImmediate(() => call.resume());
          }
        });
        call.on('end', () => cb(null, { text: String(bytes), server: 'a', seen }));
      },
    });
    const host = 'echo.default.svc.cluster.local';
    // A replay buffer of 64 KiB: the call below outgrows it after a few messages.
    mesh = await createMesh({ service: 'client', retryBufferBytes: 64 * 1024, config: [grpcServiceEntry('echo', host, 9090, [{ port: up.port }])] });
    client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
  });
  after(async () => {
    client.close();
    await mesh.close();
    await up.close();
  });

  it('200 messages of 16 KiB arrive in order, every write acknowledged, the call OK', async () => {
    const n = 200;
    const size = 16 * 1024;
    let acked = 0;
    const reply = await new Promise<{ text: string; seen: string[] }>((resolve, reject) => {
      const call = client.ClientStream(new grpc.Metadata(), {}, (err, res) => (err ? reject(err) : resolve(res as { text: string; seen: string[] })));
      let i = 0;
      const writeMore = (): void => {
        while (i < n) {
          const text = `${String(i).padStart(8, '0')}${'x'.repeat(size - 8)}`;
          i++;
          if (!call.write({ text }, () => acked++)) {
            call.once('drain', writeMore);
            return;
          }
        }
        call.end();
      };
      writeMore();
    });
    assert.equal(reply.text, String(n * size));
    assert.deepEqual(
      reply.seen,
      Array.from({ length: n }, (_, i) => String(i).padStart(8, '0')),
    );
    assert.equal(acked, n);
  });
});
