/**
 * The grpc-js seam the mesh channel is known to work with: the minor version, and what of
 * grpc-js the gRPC transport relies on — its Metadata (the store metadata.ts reads and writes,
 * and its HTTP/2 header conversion, which the transport's streams use both ways) and the words
 * of the statuses grpc-js makes up for a stream that ends without one, which the transport's
 * streams reproduce (h2-call.ts). A new grpc-js minor must pass this file before the pin moves.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';
import { grpc, type GrpcUpstream, startGrpcUpstream } from '../helpers/grpc.ts';

/** grpc-js minors the seam (ChannelInterface / experimental.CallStream, the texts in classify.ts) is known to work with. */
const KNOWN_MINORS = ['1.14'];

/** One raw call on a plain grpc-js channel: what its listener saw. */
function rawCall(target: string, method: string, credentials = grpc.credentials.createInsecure()): Promise<{ metadata: boolean; status: grpc.StatusObject }> {
  const ch = new grpc.Channel(target, credentials, { 'grpc.enable_retries': 0, 'grpc.use_local_subchannel_pool': 1 });
  const call = ch.createCall(method, Number.POSITIVE_INFINITY, undefined, null, undefined) as unknown as grpc.experimental.CallStream;
  return new Promise((resolve) => {
    let metadata = false;
    call.start(new grpc.Metadata(), {
      onReceiveMetadata: () => (metadata = true),
      onReceiveMessage: () => undefined,
      onReceiveStatus: (s) => {
        ch.close();
        resolve({ metadata, status: s });
      },
    });
    call.startRead();
    // An empty EchoRequest.
    call.sendMessageWithContext({}, Buffer.alloc(0));
    call.halfClose();
  });
}

describe('the grpc-js seam', () => {
  let up: GrpcUpstream;
  before(async () => {
    up = await startGrpcUpstream('a');
  });
  after(() => up.close());

  it(`@grpc/grpc-js is a known minor (${KNOWN_MINORS.join(', ')})`, () => {
    const version = (createRequire(import.meta.url)('@grpc/grpc-js/package.json') as { version: string }).version;
    const minor = version.split('.').slice(0, 2).join('.');
    assert.ok(KNOWN_MINORS.includes(minor), `grpc-js ${version}: the mesh channel is known to work with ${KNOWN_MINORS.join(', ')}; run test/grpc/*.test.ts and extend KNOWN_MINORS`);
  });

  it('a stream the server resets (RST_STREAM INTERNAL_ERROR) after its response metadata is grpc-js’s own status, in the words h2-call.ts gives it', async () => {
    up.behaviour.Unary = (call) => {
      call.sendMetadata(new grpc.Metadata());
      // The server's side of the stream goes away without a status.
      setImmediate(() => (call as unknown as { call: { stream: { close(code: number): void } } }).call.stream.close(2));
    };
    const r = await rawCall(`127.0.0.1:${up.port}`, '/meshlet.test.Echo/Unary');
    assert.equal(r.metadata, true);
    assert.equal(r.status.code, grpc.status.INTERNAL);
    assert.equal(r.status.details, 'Received RST_STREAM with code 2 (Internal server error)');
  });

  it('a Metadata keeps its values in internalRepr, a Map of lower-cased name → list (metadata.ts reads and writes it directly)', () => {
    const md = new grpc.Metadata();
    md.add('X-Two', 'a');
    md.add('x-two', 'b');
    md.set('x-one-bin', Buffer.from([1]));
    const store = (md as unknown as { internalRepr?: unknown }).internalRepr;
    assert.ok(store instanceof Map);
    assert.deepEqual([...store.keys()], ['x-two', 'x-one-bin']);
    assert.deepEqual(store.get('x-two'), ['a', 'b']);
    assert.deepEqual(store.get('x-one-bin'), [Buffer.from([1])]);
    // What is put into it is what the Metadata gives.
    store.set('grpc-timeout', ['5m']);
    assert.deepEqual(md.get('grpc-timeout'), ['5m']);
    assert.equal(md.toHttp2Headers()['grpc-timeout'], '5m');
  });
  it('Metadata.toHttp2Headers / fromHttp2Headers: -bin values base64 on the wire and Buffers back, pseudo-headers left out (the transport’s streams use both)', () => {
    const md = new grpc.Metadata();
    md.set('x-data-bin', Buffer.from([0, 1, 254, 255]));
    md.add('x-two', 'a');
    md.add('x-two', 'b');
    const h = md.toHttp2Headers();
    assert.equal(h['x-data-bin'], Buffer.from([0, 1, 254, 255]).toString('base64'));
    assert.deepEqual(h['x-two'], ['a', 'b']);
    const back = grpc.Metadata.fromHttp2Headers({ ':status': 200, 'content-type': 'application/grpc', 'x-data-bin': 'AAH+/w==', 'x-two': 'a, b', 'grpc-status': '0' } as never);
    assert.deepEqual(back.get('x-data-bin'), [Buffer.from([0, 1, 254, 255])]);
    assert.deepEqual(back.get('x-two'), ['a, b']);
    assert.deepEqual(back.get(':status'), []);
    assert.deepEqual(back.get('grpc-status'), ['0']);
  });
});
