/**
 * The gRPC transport speaks HTTP/2 itself (a `node:http2` session per connection, a stream per
 * attempt): against a raw HTTP/2 server that answers as the test says, the mesh writes the
 * request as grpc-js writes it, and maps what comes back as grpc-js maps it — compressed
 * messages, `grpc-message` percent-decoding, an HTTP status without `grpc-status`, a stream that
 * ends without a status, RST_STREAM codes, GOAWAY, a connection closed before its HTTP/2
 * settings or refused — with the failure kinds Envoy gives them (the reset reason and flag).
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import * as http2 from 'node:http2';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { gzipSync, deflateSync } from 'node:zlib';
import { after, describe, it } from 'node:test';
import { createMesh, ManualClock, type Mesh } from '../../src/index.ts';
import { deadPort, destinationRule, virtualService } from '../helpers/upstreams.ts';
import { type Echo, EchoClient, grpc, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';

const HOST = 'echo.default.svc.cluster.local';
const BEFORE_HEADERS = 'upstream connect error or disconnect/reset before headers. reset reason:';

/** An EchoReply { text } as protobuf. */
function reply(text: string): Buffer {
  const t = Buffer.from(text);
  return Buffer.concat([Buffer.from([0x0a, t.length]), t]);
}

/** A gRPC frame: the compressed flag, the length, the bytes. */
function framed(body: Buffer, compressed = false): Buffer {
  const p = Buffer.alloc(5);
  p[0] = compressed ? 1 : 0;
  p.writeUInt32BE(body.length, 1);
  return Buffer.concat([p, body]);
}

type Handler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, session: http2.ServerHttp2Session) => void;

/** A raw HTTP/2 server: each request is handed to `handler` (set per test); it counts sessions and keeps the request headers. */
async function rawServer(): Promise<{ port: number; handler: Handler; sessions: number; requests: http2.IncomingHttpHeaders[]; bodies: Buffer[]; close(): Promise<void> }> {
  const server = http2.createServer();
  const live = new Set<http2.ServerHttp2Session>();
  const s = {
    port: 0,
    sessions: 0,
    requests: [] as http2.IncomingHttpHeaders[],
    bodies: [] as Buffer[],
    handler: ((stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(framed(reply('ok')));
    }) as Handler,
    close: () =>
      new Promise<void>((r) => {
        for (const x of live) x.destroy();
        server.close(() => r());
      }),
  };
  server.on('session', (session) => {
    s.sessions++;
    live.add(session);
    session.on('close', () => live.delete(session));
  });
  server.on('stream', (stream, headers) => {
    s.requests.push(headers);
    // The resets the tests make are the server's own doing.
    stream.on('error', () => undefined);
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => s.bodies.push(Buffer.concat(chunks)));
    s.handler(stream, headers, stream.session as http2.ServerHttp2Session);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  s.port = (server.address() as AddressInfo).port;
  return s;
}

const flagsOf = (e: grpc.ServiceError | undefined) => e?.metadata.get('x-meshlet-response-flags')[0];

describe('gRPC transport on node:http2: the wire and its answers, as grpc-js', () => {
  const open: { close(): unknown }[] = [];
  after(async () => {
    for (const o of open.reverse()) await o.close();
  });

  async function meshTo(port: number, retries: Record<string, unknown> = { attempts: 0 }): Promise<{ mesh: Mesh; client: Echo }> {
    const mesh = await createMesh({ service: 'client', config: [grpcServiceEntry('echo', HOST, 9090, [{ port }]), virtualService('echo', ['echo'], [{ route: [{ destination: { host: 'echo' } }], retries }])], logger: { warn: () => undefined } });
    open.push(mesh);
    const client = mesh.grpc.client(EchoClient, 'echo:9090', { 'grpc.primary_user_agent': 'wire-test/1' }) as unknown as Echo;
    open.push(client);
    return { mesh, client };
  }

  async function server() {
    const s = await rawServer();
    open.push(s);
    return s;
  }

  it('the request is what a grpc-js client writes: its headers (mesh-added ones aside) and the framed message, END_STREAM with it', async () => {
    const s = await server();
    const { client } = await meshTo(s.port);
    const md = new grpc.Metadata();
    md.set('x-plain', 'v');
    md.set('x-data-bin', Buffer.from([0, 1, 2, 255]));
    assert.equal((await unary(client, { text: 'hi' }, { metadata: md })).error, undefined);
    const raw = new EchoClient(`127.0.0.1:${s.port}`, grpc.credentials.createInsecure(), { 'grpc.primary_user_agent': 'wire-test/1' }) as unknown as Echo;
    open.push(raw);
    assert.equal((await unary(raw, { text: 'hi' }, { metadata: md })).error, undefined);
    const [viaMesh, direct] = s.requests as [http2.IncomingHttpHeaders, http2.IncomingHttpHeaders];
    const meshAdded = new Set(['x-request-id', 'x-forwarded-proto', 'x-envoy-attempt-count']);
    const names = (h: http2.IncomingHttpHeaders) => Object.keys(h).filter((k) => !meshAdded.has(k) && !k.startsWith('x-envoy-') && k !== ':authority').sort();
    assert.deepEqual(names(viaMesh), names(direct));
    for (const k of names(direct)) assert.deepEqual(viaMesh[k], direct[k], k);
    // The authority is the target the caller named (grpc-js's is the address it dialled).
    assert.equal(viaMesh[':authority'], 'echo:9090');
    assert.equal(viaMesh['user-agent'], direct['user-agent']);
    assert.match(String(viaMesh['user-agent']), /^wire-test\/1 grpc-node-js\//);
    assert.deepEqual(s.bodies[0], s.bodies[1]);
    assert.deepEqual(s.bodies[0], framed(Buffer.from([0x0a, 2, 0x68, 0x69])));
  });

  for (const [encoding, compress] of [
    ['gzip', gzipSync],
    ['deflate', deflateSync],
  ] as const) {
    it(`a ${encoding}-compressed response message is inflated; grpc-encoding is not in the caller's metadata`, async () => {
      const s = await server();
      s.handler = (stream) => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-encoding': encoding, 'grpc-accept-encoding': 'identity,gzip' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(framed(compress(reply('squeezed')), true));
      };
      const { client } = await meshTo(s.port);
      const r = await unary(client, { text: 'x' });
      assert.equal(r.error, undefined);
      assert.equal(r.reply?.text, 'squeezed');
      assert.deepEqual(r.metadata?.get('grpc-encoding'), []);
      assert.deepEqual(r.metadata?.get('grpc-accept-encoding'), []);
    });
  }

  it('a compressed message in an encoding grpc-js does not know fails the call INTERNAL', async () => {
    const s = await server();
    s.handler = (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-encoding': 'zstdx' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(framed(Buffer.from('zz'), true));
    };
    const { client } = await meshTo(s.port);
    const r = await unary(client, { text: 'x' });
    assert.equal(r.error?.code, grpc.status.INTERNAL);
    assert.equal(r.error?.details, 'Compression method not supported: zstdx');
  });

  it('trailers-only: the status, grpc-message percent-decoded as grpc-js decodes it, the trailing metadata', async () => {
    const s = await server();
    s.handler = (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '9', 'grpc-message': 'not%20now%2C 100%25 %E2%9C%93', 'x-why': 'busy' }, { endStream: true });
    };
    const { client } = await meshTo(s.port);
    const raw = new EchoClient(`127.0.0.1:${s.port}`, grpc.credentials.createInsecure()) as unknown as Echo;
    open.push(raw);
    const direct = await unary(raw, { text: 'x' });
    const r = await unary(client, { text: 'x' });
    assert.equal(r.error?.code, grpc.status.FAILED_PRECONDITION);
    // grpc-js's decodeURI leaves reserved characters (%2C) encoded.
    assert.equal(direct.error?.details, 'not now%2C 100% ✓');
    assert.equal(r.error?.details, direct.error?.details);
    assert.deepEqual(r.error?.metadata.get('x-why'), ['busy']);
  });

  it('an HTTP status without grpc-status is mapped as grpc-js maps it (503 → UNAVAILABLE, 404 → UNIMPLEMENTED, 418 → UNKNOWN)', async () => {
    const s = await server();
    let status = 503;
    s.handler = (stream) => stream.respond({ ':status': status, 'content-type': 'text/plain' }, { endStream: true });
    const { client } = await meshTo(s.port);
    for (const [http, code] of [
      [503, grpc.status.UNAVAILABLE],
      [404, grpc.status.UNIMPLEMENTED],
      [418, grpc.status.UNKNOWN],
    ] as const) {
      status = http;
      const r = await unary(client, { text: 'x' });
      assert.equal(r.error?.code, code, `${http}`);
      assert.equal(r.error?.details, `Received HTTP status code ${http}`);
    }
  });

  it('a response that ends without grpc-status is UNKNOWN', async () => {
    const s = await server();
    s.handler = (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-nothing': '1' }));
      stream.end(framed(reply('half')));
    };
    const { client } = await meshTo(s.port);
    const r = await unary(client, { text: 'x' });
    assert.equal(r.error?.code, grpc.status.UNKNOWN);
  });

  for (const [name, code, reason] of [
    ['REFUSED_STREAM', http2.constants.NGHTTP2_REFUSED_STREAM, 'remote refused stream reset'],
    ['CANCEL', http2.constants.NGHTTP2_CANCEL, 'remote reset'],
    ['ENHANCE_YOUR_CALM', http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, 'remote reset'],
    ['INADEQUATE_SECURITY', http2.constants.NGHTTP2_INADEQUATE_SECURITY, 'remote reset'],
    ['INTERNAL_ERROR', http2.constants.NGHTTP2_INTERNAL_ERROR, 'remote reset'],
    ['PROTOCOL_ERROR', http2.constants.NGHTTP2_PROTOCOL_ERROR, 'remote reset'],
  ] as const) {
    it(`RST_STREAM ${name} before the response: UNAVAILABLE, reset reason ${reason}, UR`, async () => {
      const s = await server();
      s.handler = (stream) => stream.close(code);
      const { client } = await meshTo(s.port);
      const r = await unary(client, { text: 'x' });
      assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
      assert.equal(r.error?.details, `${BEFORE_HEADERS} ${reason}`);
      assert.equal(flagsOf(r.error), 'UR');
    });
  }

  it('RST_STREAM INTERNAL_ERROR after the response metadata: the status a grpc-js client gets (INTERNAL), flag UR', async () => {
    const up = await startGrpcUpstream('a');
    open.push(up);
    up.behaviour.Unary = (call) => {
      call.sendMetadata(new grpc.Metadata());
      // The server's side of the stream goes away without a status.
      setImmediate(() => (call as unknown as { call: { stream: { close(code: number): void } } }).call.stream.close(2));
    };
    const { client } = await meshTo(up.port);
    const raw = new EchoClient(`127.0.0.1:${up.port}`, grpc.credentials.createInsecure()) as unknown as Echo;
    open.push(raw);
    const direct = await unary(raw, { text: 'x' });
    assert.equal(direct.error?.details, 'Received RST_STREAM with code 2 (Internal server error)');
    const r = await unary(client, { text: 'x' });
    assert.equal(r.error?.code, direct.error?.code);
    assert.equal(r.error?.details, direct.error?.details);
    assert.match(String(flagsOf(r.error)), /UR/);
  });

  it('a refused stream is retried on refused-stream (Istio’s default policy)', async () => {
    const s = await server();
    let n = 0;
    const ok = s.handler;
    s.handler = (stream, h, session) => (++n === 1 ? stream.close(http2.constants.NGHTTP2_REFUSED_STREAM) : ok(stream, h, session));
    const { client } = await meshTo(s.port, { attempts: 2, retryOn: 'refused-stream' });
    const r = await unary(client, { text: 'x' });
    assert.equal(r.error, undefined);
    assert.equal(n, 2);
  });

  it('GOAWAY: the call in flight finishes on its connection; the next call goes on a new one', async () => {
    const s = await server();
    const ok = s.handler;
    let first = true;
    s.handler = (stream, h, session) => {
      if (!first) return ok(stream, h, session);
      first = false;
      // The server says it is going away, then still answers the stream it took.
      session.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id);
      setImmediate(() => ok(stream, h, session));
    };
    const { client } = await meshTo(s.port);
    assert.equal((await unary(client, { text: '1' })).reply?.text, 'ok');
    assert.equal((await unary(client, { text: '2' })).reply?.text, 'ok');
    assert.equal(s.sessions, 2);
  });

  it('GOAWAY leaves a stream sent with it unprocessed (REFUSED_STREAM): a refused-stream failure, retried by Istio’s default policy on a new connection', async () => {
    const s = await server();
    const ok = s.handler;
    let first = true;
    s.handler = (stream, h, session) => {
      if (!first) return ok(stream, h, session);
      first = false;
      // Only the first stream is taken; the one sent with it is refused by the GOAWAY.
      session.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id);
      setImmediate(() => ok(stream, h, session));
    };
    const mesh = await createMesh({ service: 'client', config: [grpcServiceEntry('echo', HOST, 9090, [{ port: s.port }])], logger: { warn: () => undefined } });
    open.push(mesh);
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    open.push(client);
    // Both calls go out together on the first connection, once it is up.
    const [a, b] = await Promise.all([unary(client, { text: '1' }), unary(client, { text: '2' })]);
    assert.equal(a.error, undefined);
    assert.equal(b.error, undefined);
    assert.equal(s.sessions, 2);
    // The first, the refused one (its HEADERS reached the server, which did not process it), its retry.
    assert.equal(s.requests.length, 3);
  });

  it('a connection the server closes before its HTTP/2 settings: UNAVAILABLE, connection termination, UC', async () => {
    const closer = createNetServer((so) => so.once('data', () => so.destroy()));
    await new Promise<void>((r) => closer.listen(0, '127.0.0.1', r));
    open.push({ close: () => closer.close() });
    const { client } = await meshTo((closer.address() as AddressInfo).port);
    const r = await unary(client, { text: 'x' });
    assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
    assert.equal(r.error?.details, `${BEFORE_HEADERS} connection termination`);
    assert.equal(flagsOf(r.error), 'UC');
  });

  it('a refused connection: UNAVAILABLE, remote connection failure with the socket error as the transport failure reason, UF', async () => {
    const { client } = await meshTo(await deadPort());
    const r = await unary(client, { text: 'x' });
    assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
    assert.equal(r.error?.details, `${BEFORE_HEADERS} remote connection failure, transport failure reason: delayed connect error: Connection refused`);
    assert.equal(flagsOf(r.error), 'UF');
  });

  it('the connection dropped under a call after its response metadata: UNAVAILABLE (grpc-js’s Connection dropped), flag UC', async () => {
    // A raw server whose socket is destroyed once it has sent the response metadata.
    const s = await server();
    s.handler = (stream, _h, session) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      setImmediate(() => session.socket.destroy());
    };
    const { client } = await meshTo(s.port);
    const r = await unary(client, { text: 'x' });
    assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
    assert.equal(r.error?.details, 'Connection dropped');
    assert.match(String(flagsOf(r.error)), /UC/);
  });

  it('its connections are published on meshlet:upstream:connection (/stats upstream_cx_*): made, refused, closed by the server', async () => {
    const seen: { cluster: string; event: string; remote: boolean }[] = [];
    const listen = (m: unknown) => seen.push(m as { cluster: string; event: string; remote: boolean });
    subscribe('meshlet:upstream:connection', listen);
    try {
      const s = await server();
      const { client } = await meshTo(s.port);
      assert.equal((await unary(client, { text: 'x' })).error, undefined);
      const cluster = `outbound|9090||${HOST}`;
      assert.deepEqual(seen.map((m) => [m.cluster, m.event]), [[cluster, 'connect']]);
      // The server goes away: a disconnect by the upstream.
      await s.close();
      for (let i = 0; i < 20 && seen.length < 2; i++) await new Promise((r) => setImmediate(r));
      assert.deepEqual(seen.slice(1).map((m) => [m.event, m.remote]), [['disconnect', true]]);
      const dead = await meshTo(await deadPort());
      await unary(dead.client, { text: 'x' });
      assert.equal(seen.at(-1)?.event, 'error');
    } finally {
      unsubscribe('meshlet:upstream:connection', listen);
    }
  });

  it('http2KeepAlive on the mesh clock: a PING every interval; one answered keeps the connection, one not answered within the timeout drops it (the next call opens another)', async () => {
    const s = await server();
    let pings = 0;
    const clock = new ManualClock(1_000_000);
    const rule = destinationRule('echo', 'echo', { trafficPolicy: { connectionPool: { http: { http2KeepAlive: { interval: '30s', timeout: '5s' } } } } });
    const mesh = await createMesh({ service: 'client', clock, config: [grpcServiceEntry('echo', HOST, 9090, [{ port: s.port }]), rule], logger: { warn: () => undefined } });
    open.push(mesh);
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    open.push(client);
    const counted = new WeakSet<object>();
    const countPings = (session: http2.ServerHttp2Session) => {
      if (counted.has(session)) return;
      counted.add(session);
      session.on('ping', () => pings++);
    };
    const ok = s.handler;
    s.handler = (stream, h, session) => {
      countPings(session);
      ok(stream, h, session);
    };
    assert.equal((await unary(client, { text: '1' })).error, undefined);
    clock.advance(30_000);
    for (let i = 0; i < 200 && pings < 1; i++) await new Promise((r) => setImmediate(r));
    assert.equal(pings, 1, 'a PING at the interval');
    // Let its ACK come back, then pass the timeout: the connection stays.
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    clock.advance(5_000);
    assert.equal((await unary(client, { text: '2' })).error, undefined);
    assert.equal(s.sessions, 1);
    // The next PING's timeout passes before its ACK can have come back (no I/O in between): dropped.
    clock.advance(25_000);
    clock.advance(5_000);
    assert.equal((await unary(client, { text: '3' })).error, undefined);
    assert.equal(s.sessions, 2);
  });
});
