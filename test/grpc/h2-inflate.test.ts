/**
 * Compressed response messages (`grpc-encoding: gzip` / `deflate`) are inflated as grpc-js's
 * compression filter inflates them: on zlib's thread pool, not on the event loop (the mesh
 * inflated them with zlib's synchronous calls, so a large message held every other call and
 * timer of the process for as long as it took), in order with the uncompressed messages around
 * them, with the OK status after the last of them; a message that inflates past the caller's
 * `grpc.max_receive_message_length` still ends the call RESOURCE_EXHAUSTED
 * (h2-receive-limit.test.ts). A raw HTTP/2 server answers; a raw grpc-js client beside the mesh's
 * gets the same.
 */
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import { syncBuiltinESMExports } from 'node:module';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import zlib from 'node:zlib';
import { createMesh, type Mesh } from '../../src/index.ts';
import { collect, type Echo, EchoClient, echoReplyBytes, grpc, grpcServiceEntry } from '../helpers/grpc.ts';

const HOST = 'echo.default.svc.cluster.local';

/** An EchoReply { text } as protobuf. */
const reply = (c: string, n: number): Buffer => echoReplyBytes(n, c);

function framed(body: Buffer, compressed: boolean): Buffer {
  const p = Buffer.alloc(5);
  p[0] = compressed ? 1 : 0;
  p.writeUInt32BE(body.length, 1);
  return Buffer.concat([p, body]);
}

/** The messages of the answer: [letter, size, compressed]. */
const MESSAGES: [string, number, boolean][] = [
  ['a', 10, false],
  ['b', 1024 * 1024, true],
  ['c', 10, false],
  ['d', 300_000, true],
  ['e', 2000, true],
  ['f', 10, false],
];

describe('gRPC transport: compressed response messages are inflated off the event loop, in order', () => {
  let server: http2.Http2Server;
  let mesh: Mesh;
  let viaMesh: Echo;
  let direct: Echo;
  let encoding: 'gzip' | 'deflate' = 'gzip';
  // zlib's synchronous inflates, counted: the mesh must not call them (grpc-js does not).
  const calls = { gunzipSync: 0, inflateSync: 0 };
  const real = { gunzipSync: zlib.gunzipSync, inflateSync: zlib.inflateSync };

  before(async () => {
    zlib.gunzipSync = ((...a: Parameters<typeof zlib.gunzipSync>) => {
      calls.gunzipSync++;
      return real.gunzipSync(...a);
    }) as typeof zlib.gunzipSync;
    zlib.inflateSync = ((...a: Parameters<typeof zlib.inflateSync>) => {
      calls.inflateSync++;
      return real.inflateSync(...a);
    }) as typeof zlib.inflateSync;
    syncBuiltinESMExports();
    server = http2.createServer();
    server.on('session', (s) => s.on('error', () => undefined));
    server.on('stream', (stream) => {
      stream.on('error', () => undefined);
      const compress = encoding === 'gzip' ? zlib.gzipSync : zlib.deflateSync;
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-encoding': encoding }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      // Every message in one write: the compressed ones and those after them arrive together.
      stream.end(Buffer.concat(MESSAGES.map(([c, n, z]) => framed(z ? compress(reply(c, n)) : reply(c, n), z))));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    mesh = await createMesh({ service: 'client', config: [grpcServiceEntry('echo', HOST, 9090, [{ port }])] });
    viaMesh = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    direct = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as Echo;
  });
  after(async () => {
    zlib.gunzipSync = real.gunzipSync;
    zlib.inflateSync = real.inflateSync;
    syncBuiltinESMExports();
    viaMesh.close();
    direct.close();
    await mesh.close();
    await new Promise<void>((r) => server.close(() => r()));
  });

  for (const enc of ['gzip', 'deflate'] as const) {
    it(`${enc}: every message, in order, then OK, as grpc-js gives them; zlib's synchronous inflate is never called`, async () => {
      encoding = enc;
      const d = await collect(direct.ServerStream({ text: 'x' }));
      calls.gunzipSync = 0;
      calls.inflateSync = 0;
      const m = await collect(viaMesh.ServerStream({ text: 'x' }));
      assert.equal(d.status.code, grpc.status.OK, d.status.details);
      assert.equal(m.status.code, grpc.status.OK, m.status.details);
      const shape = (r: typeof m) => r.messages.map((x) => `${x.text[0]}${x.text.length}`);
      assert.deepEqual(shape(m), shape(d));
      assert.deepEqual(
        shape(m),
        MESSAGES.map(([c, n]) => `${c}${n}`),
      );
      assert.deepEqual(calls, { gunzipSync: 0, inflateSync: 0 }, 'the mesh inflated on the event loop');
    });
  }

  // zlib takes a maxOutputLength up to buffer.constants.MAX_LENGTH only (2^53-1 on Node 24, 4 GiB
  // on Node 20): a larger receive limit means "any size" to grpc-js, and threw out of the stream's
  // 'data' handler (an uncaught exception: the process went down at the first compressed message).
  for (const limit of [2 ** 60, Number.MAX_VALUE]) {
    it(`a receive limit past what zlib takes (${limit}) inflates every message, as grpc-js does, instead of throwing out of the stream`, async () => {
      encoding = 'gzip';
      const options = { 'grpc.max_receive_message_length': limit };
      const wide = mesh.grpc.client(EchoClient, 'echo:9090', options) as unknown as Echo;
      const port = (server.address() as AddressInfo).port;
      const wideDirect = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), options) as unknown as Echo;
      try {
        const d = await collect(wideDirect.ServerStream({ text: 'x' }));
        const m = await collect(wide.ServerStream({ text: 'x' }));
        assert.equal(d.status.code, grpc.status.OK, d.status.details);
        assert.equal(m.status.code, grpc.status.OK, m.status.details);
        assert.deepEqual(
          m.messages.map((x) => `${x.text[0]}${x.text.length}`),
          MESSAGES.map(([c, n]) => `${c}${n}`),
        );
      } finally {
        wide.close();
        wideDirect.close();
      }
    });
  }
});
