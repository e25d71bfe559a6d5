/**
 * The grpc-js seam the mesh channel is known to work with: the minor version, and the
 * behaviour of grpc-js the gRPC transport relies on (a server's trailers-only status carries
 * the response's content-type in its metadata; grpc-js's own statuses carry none, and their
 * texts tell a refused connection from a reset stream). A new grpc-js minor must pass this
 * file before the pin moves.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { type AddressInfo, createServer as createNetServer, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { failureKindOf, isLocalAfterHead, isServerTrailersOnly } from '../../src/adapters/grpc/classify.ts';
import { watchingSockets } from '../../src/adapters/grpc/conn.ts';
import { deadPort } from '../helpers/upstreams.ts';
import { grpc, type GrpcUpstream, startGrpcUpstream, status } from '../helpers/grpc.ts';

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

  it('a server’s trailers-only status carries content-type in its metadata (no response metadata before it)', async () => {
    up.behaviour.Unary = (_c, cb) => cb(status(grpc.status.UNAVAILABLE, 'down'));
    const r = await rawCall(`127.0.0.1:${up.port}`, '/meshlet.test.Echo/Unary');
    assert.equal(r.metadata, false);
    assert.equal(r.status.code, grpc.status.UNAVAILABLE);
    assert.equal(isServerTrailersOnly(r.status.metadata), true);
  });

  it('a refused connection is grpc-js’s own UNAVAILABLE, no metadata, classified connect-failure', async () => {
    const r = await rawCall(`127.0.0.1:${await deadPort()}`, '/meshlet.test.Echo/Unary');
    assert.equal(r.status.code, grpc.status.UNAVAILABLE);
    assert.equal(isServerTrailersOnly(r.status.metadata), false);
    assert.equal(failureKindOf(r.status.code, r.status.details), 'connect-failure');
  });

  it('a connection the server closes once TCP connected, before its HTTP/2 settings, is grpc-js’s own UNAVAILABLE, classified a reset (Envoy: connection termination)', async () => {
    const closer = createNetServer((s) => s.once('data', () => s.destroy()));
    await new Promise<void>((r) => closer.listen(0, '127.0.0.1', r));
    try {
      const r = await rawCall(`127.0.0.1:${(closer.address() as AddressInfo).port}`, '/meshlet.test.Echo/Unary');
      assert.equal(r.status.code, grpc.status.UNAVAILABLE);
      assert.equal(isServerTrailersOnly(r.status.metadata), false);
      assert.match(r.status.details, /^No connection established\. Last error: Failed to connect \(/);
      assert.equal(failureKindOf(r.status.code, r.status.details), 'reset');
    } finally {
      closer.close();
    }
  });

  it('a stream the server resets (RST_STREAM INTERNAL_ERROR) after its response metadata is grpc-js’s own status, classified a remote reset (Envoy: remote reset, UR)', async () => {
    up.behaviour.Unary = (call) => {
      call.sendMetadata(new grpc.Metadata());
      // The server's side of the stream goes away without a status.
      setImmediate(() => (call as unknown as { call: { stream: { close(code: number): void } } }).call.stream.close(2));
    };
    const r = await rawCall(`127.0.0.1:${up.port}`, '/meshlet.test.Echo/Unary');
    assert.equal(r.metadata, true);
    assert.equal(isLocalAfterHead(r.status.code, r.status.details, r.status.metadata), true, `${r.status.code} ${r.status.details}`);
    assert.equal(r.status.details, 'Received RST_STREAM with code 2 (Internal server error)');
    assert.equal(failureKindOf(r.status.code, r.status.details), 'remote-reset');
  });

  it('a status the server sends in trailers is not taken for a local one', async () => {
    up.behaviour.Unary = (call, cb) => {
      call.sendMetadata(new grpc.Metadata());
      setImmediate(() => cb(status(grpc.status.INTERNAL, 'Received RST_STREAM with code 2', { 'x-why': 'server' })));
    };
    const r = await rawCall(`127.0.0.1:${up.port}`, '/meshlet.test.Echo/Unary');
    assert.equal(isLocalAfterHead(r.status.code, r.status.details, r.status.metadata), false);
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
  it('a channel connects through its credentials\' _createSecureConnector, handing it the TCP socket (conn.ts watches connects for tcp.connectTimeout through it)', async () => {
    const sockets: Socket[] = [];
    const creds = watchingSockets(grpc as never, grpc.credentials.createInsecure(), (so) => sockets.push(so));
    const hits = up.hits;
    const r = await rawCall(`127.0.0.1:${up.port}`, '/meshlet.test.Echo/Unary', creds);
    // The call went out on that connection and the server answered it (whatever this suite's behaviour is now).
    assert.notEqual(r.status.code, grpc.status.UNAVAILABLE, r.status.details);
    assert.equal(up.hits, hits + 1);
    assert.equal(sockets.length, 1);
    assert.ok(sockets[0] instanceof Socket);
    assert.equal(sockets[0]?.remotePort, up.port);
  });
});
