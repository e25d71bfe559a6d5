/**
 * The caller's `grpc.max_receive_message_length` on the mesh's HTTP/2 streams, against a raw
 * HTTP/2 server, beside a raw grpc-js client on the same server: a response message whose
 * length prefix says more than the caller takes is refused at the prefix (RESOURCE_EXHAUSTED,
 * grpc-js's words), before its bytes are kept — the server gets no further than the flow-control
 * windows (the mesh kept the whole message first: a 4 GiB prefix was allocated, a 64 MiB one
 * read to the end or the deadline); a compressed one is inflated no further than the limit (a
 * small message inflating to gigabytes); one at the limit is delivered.
 */
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { createMesh, type Mesh } from '../../src/index.ts';
import { type Echo, EchoClient, echoReplyBytes, grpc, grpcServiceEntry, unary } from '../helpers/grpc.ts';

const HOST = 'echo.default.svc.cluster.local';
const LIMIT = 64 * 1024;
const OPTIONS = { 'grpc.max_receive_message_length': LIMIT };

/** An EchoReply { text } as protobuf. */
const reply = (n: number): Buffer => echoReplyBytes(n);

function prefix(length: number, compressed = false): Buffer {
  const p = Buffer.alloc(5);
  p[0] = compressed ? 1 : 0;
  p.writeUInt32BE(length, 1);
  return p;
}

/** What the server answers: a declared length and the bytes it writes after the prefix (written while the client takes them), or a whole body. */
type Answer = { declared: number; bytes: number; split?: boolean } | { body: Buffer; encoding?: string };

describe('gRPC transport: grpc.max_receive_message_length on the wire (as a grpc-js client)', () => {
  let server: http2.Http2Server;
  let mesh: Mesh;
  let viaMesh: Echo;
  let direct: Echo;
  let answer: Answer = { declared: 0, bytes: 0 };
  /** Bytes of the message the server got to write (HTTP/2 flow control holds it when the client stops reading). */
  let written = 0;

  before(async () => {
    server = http2.createServer();
    server.on('session', (s) => s.on('error', () => undefined));
    server.on('stream', (stream) => {
      stream.on('error', () => undefined);
      const a = answer;
      if ('body' in a) {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', ...(a.encoding === undefined ? {} : { 'grpc-encoding': a.encoding }) }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(a.body);
        return;
      }
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      const p = prefix(a.declared);
      // Split: the prefix over two DATA frames.
      if (a.split === true) {
        stream.write(p.subarray(0, 2));
        stream.write(p.subarray(2));
      } else stream.write(p);
      written = 0;
      const chunk = Buffer.alloc(256 * 1024, 0x61);
      const more = (): void => {
        while (written < a.bytes && !stream.destroyed) {
          written += chunk.length;
          if (!stream.write(chunk)) {
            stream.once('drain', more);
            return;
          }
        }
      };
      more();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    mesh = await createMesh({ service: 'client', config: [grpcServiceEntry('echo', HOST, 9090, [{ port }])], logger: { warn: () => undefined } });
    viaMesh = mesh.grpc.client(EchoClient, 'echo:9090', OPTIONS) as unknown as Echo;
    direct = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), OPTIONS) as unknown as Echo;
  });
  after(async () => {
    viaMesh.close();
    direct.close();
    await mesh.close();
    await new Promise<void>((r) => server.close(() => r()));
  });

  /** The call through the mesh and directly, each with how much of the message the server got to write. */
  async function both(a: Answer): Promise<{ mesh: Awaited<ReturnType<typeof unary>> & { written: number }; direct: Awaited<ReturnType<typeof unary>> & { written: number } }> {
    answer = a;
    // A deadline far beyond what the refusal takes: the mesh before the fix read on until it.
    const d = await unary(direct, { text: 'x' }, { deadline: Date.now() + 20_000 });
    const dw = written;
    const m = await unary(viaMesh, { text: 'x' }, { deadline: Date.now() + 20_000 });
    return { mesh: { ...m, written }, direct: { ...d, written: dw } };
  }

  for (const [name, a] of [
    ['64 MiB', { declared: 64 * 1024 * 1024, bytes: 64 * 1024 * 1024 }],
    ['4 GiB (its prefix split over two DATA frames)', { declared: 0xfffffff0, bytes: 16 * 1024 * 1024, split: true }],
  ] as const) {
    it(`a message whose prefix says ${name}: RESOURCE_EXHAUSTED at the prefix, the server held by flow control`, async () => {
      const r = await both(a);
      assert.equal(r.direct.error?.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.equal(r.mesh.error?.code, r.direct.error?.code, r.mesh.error?.details);
      assert.equal(r.mesh.error?.details, r.direct.error?.details);
      assert.equal(r.mesh.error?.details, `Received message larger than max (${a.declared} vs ${LIMIT})`);
      // The connection's and the stream's windows, no more: the message was not read on.
      assert.ok(r.mesh.written <= 8 * 1024 * 1024, `the server wrote ${r.mesh.written} bytes of the message to the mesh`);
    });
  }

  it('a compressed message inflating past the limit: RESOURCE_EXHAUSTED, as grpc-js words it', async () => {
    const body = gzipSync(reply(4 * 1024 * 1024));
    assert.ok(body.length < LIMIT);
    const r = await both({ body: Buffer.concat([prefix(body.length, true), body]), encoding: 'gzip' });
    assert.equal(r.direct.error?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(r.mesh.error?.code, r.direct.error?.code, r.mesh.error?.details);
    assert.equal(r.mesh.error?.details, r.direct.error?.details);
  });

  it('messages at the limit are delivered, plain and compressed', async () => {
    const at = reply(LIMIT - 4);
    assert.equal(at.length, LIMIT);
    const plain = await both({ body: Buffer.concat([prefix(at.length), at]) });
    assert.equal(plain.direct.error, undefined);
    assert.equal(plain.mesh.error, undefined, plain.mesh.error?.details);
    assert.equal(plain.mesh.reply?.text.length, LIMIT - 4);
    const z = gzipSync(at);
    const packed = await both({ body: Buffer.concat([prefix(z.length, true), z]), encoding: 'gzip' });
    assert.equal(packed.direct.error, undefined);
    assert.equal(packed.mesh.error, undefined, packed.mesh.error?.details);
    assert.equal(packed.mesh.reply?.text.length, LIMIT - 4);
  });
});
