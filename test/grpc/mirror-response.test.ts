/**
 * A gRPC mirror's answer is thrown away without being kept: a mirror that declares a 1 GiB
 * response message (its 5-byte prefix) and sends part of it makes the caller's process allocate
 * nothing for it (the copy's messages were assembled, and inflated, like the primary's — with no
 * size limit, since the copy has no grpc-js caller), a mirror whose response never ends is cut at
 * the mirror timeout (on the mesh clock), and neither delays nor fails the primary call. The
 * mirror is a raw `node:http2` server on 127.0.0.1, the primary a grpc-js one.
 */
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { createMesh, ManualClock, type Mesh, seededRandom } from '../../src/index.ts';
import { destinationRule, virtualService } from '../helpers/upstreams.ts';
import { type Echo, EchoClient, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';
import { until } from '../helpers/until.ts';

const HOST = 'echo.default.svc.cluster.local';
const MIB = 1024 * 1024;

/** A raw HTTP/2 mirror: answers each call with response headers and `body(stream)`, never a status. */
async function rawMirror(body: (s: http2.ServerHttp2Stream) => void): Promise<{ port: number; streams: http2.ServerHttp2Stream[]; closed: number; close(): Promise<void> }> {
  const r = { port: 0, streams: [] as http2.ServerHttp2Stream[], closed: 0, close: async (): Promise<void> => undefined };
  const server = http2.createServer();
  server.on('stream', (s) => {
    r.streams.push(s);
    s.on('error', () => undefined);
    s.on('close', () => r.closed++);
    s.respond({ ':status': 200, 'content-type': 'application/grpc' });
    // Read the request, so that its half-close comes.
    s.resume();
    body(s);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  r.port = (server.address() as AddressInfo).port;
  r.close = () =>
    new Promise<void>((ok) => {
      for (const s of r.streams) s.destroy();
      server.close(() => ok());
    });
  return r;
}

/** Writes `n` chunks of `size` bytes, resolving once the stream took them all (HTTP/2 flow control: the peer read them). */
function writeChunks(s: http2.ServerHttp2Stream, n: number, size: number): Promise<void> {
  return new Promise((ok) => {
    let left = n;
    const chunk = Buffer.alloc(size, 0x61);
    for (let i = 0; i < n; i++)
      s.write(chunk, () => {
        if (--left === 0) ok();
      });
  });
}

const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

describe('gRPC mirroring: the mirror’s answer is not kept', () => {
  const open: { close(): unknown }[] = [];
  after(async () => {
    for (const o of open.reverse()) await o.close();
  });

  async function setup(mirrorPort: number, clock?: ManualClock) {
    const primary = await startGrpcUpstream('primary');
    open.push(primary);
    const mesh: Mesh = await createMesh({
      service: 'client',
      random: seededRandom(4),
      ...(clock === undefined ? {} : { clock }),
      config: [
        grpcServiceEntry('echo', HOST, 9090, [
          { port: primary.port, labels: { version: 'v1' } },
          { port: mirrorPort, labels: { version: 'v2' } },
        ]),
        destinationRule('echo', 'echo', { subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] }),
        virtualService('echo', ['echo'], [{ route: [{ destination: { host: 'echo', subset: 'v1' } }], retries: { attempts: 0 }, mirror: { host: 'echo', subset: 'v2' }, mirrorPercentage: { value: 100 } }]),
      ],
    });
    open.push(mesh);
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    open.push(client);
    return { mesh, client };
  }

  it('a mirror response declaring a 1 GiB message: nothing is allocated for it; the caller gets the primary’s reply', async () => {
    let sent!: () => void;
    const wrote = new Promise<void>((ok) => (sent = ok));
    const mirror = await rawMirror((s) => {
      // A message prefix: uncompressed, 1 GiB long; then 4 MiB of it (beyond the stream's flow-control window, so the caller read what came before).
      const prefix = Buffer.alloc(5);
      prefix.writeUInt32BE(1024 * MIB, 1);
      s.write(prefix);
      void writeChunks(s, 64, 64 * 1024).then(sent);
    });
    open.push(mirror);
    const { client } = await setup(mirror.port);
    const before = process.memoryUsage().arrayBuffers;
    const r = await unary(client, { text: 'a' });
    assert.equal(r.error, undefined);
    assert.equal(r.reply?.server, 'primary');
    await wrote;
    await turns(20);
    const grew = process.memoryUsage().arrayBuffers - before;
    assert.ok(grew < 256 * MIB, `the mirror's declared message was allocated: array buffers grew by ${Math.round(grew / MIB)} MiB`);
  });

  it('a mirror response that never ends is cut at the mirror timeout (10 s on the mesh clock), without delaying the primary call', async () => {
    const mirror = await rawMirror((s) => {
      // Messages of 1 KiB, one after another, for as long as the stream is open.
      const m = Buffer.alloc(5 + 1024, 0x62);
      m[0] = 0;
      m.writeUInt32BE(1024, 1);
      const more = (): void => {
        if (s.destroyed || s.closed) return;
        while (s.write(m)) if (s.destroyed) return;
        s.once('drain', more);
      };
      more();
    });
    open.push(mirror);
    const clock = new ManualClock(1_000_000);
    const { client } = await setup(mirror.port, clock);
    const r = await unary(client, { text: 'a' });
    assert.equal(r.reply?.server, 'primary');
    await until(() => mirror.streams.length === 1, 'the mirror got its copy');
    await turns(20);
    assert.equal(mirror.closed, 0, 'the mirror stream was cut before its timeout');
    clock.advance(10_000);
    await until(() => mirror.closed === 1, 'the mirror stream is reset at the mirror timeout');
  });
});
