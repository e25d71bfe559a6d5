/**
 * grpc-js clients through the mesh: all four call types reach a real grpc-js server through
 * the mesh channel (`mesh.grpc.client`, `mesh.grpc.channelOptions()`, `mesh.grpc.channel()`),
 * metadata travels both ways (binary values too), and the caller's deadline reaches the server
 * as `grpc-timeout`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { collect, type Echo, EchoClient, grpc, type GrpcUpstream, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';

describe('gRPC client through the mesh: call types', () => {
  let up: GrpcUpstream;
  let mesh: Mesh;
  let client: Echo;
  before(async () => {
    up = await startGrpcUpstream('a');
    mesh = await createMesh({ service: 'client', config: [grpcServiceEntry('echo', 'echo.default.svc.cluster.local', 9090, [{ port: up.port }])] });
    client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
  });
  after(async () => {
    client.close();
    await mesh.close();
    await up.close();
  });

  it('unary: the reply of the endpoint the mesh picked', async () => {
    const r = await unary(client, { text: 'hello' });
    assert.equal(r.error, undefined);
    assert.deepEqual({ text: r.reply?.text, server: r.reply?.server }, { text: 'hello', server: 'a' });
    assert.equal(up.seen.at(-1)?.method, 'Unary');
  });

  it('server streaming: every message in order, then OK', async () => {
    const r = await collect(client.ServerStream({ text: 's', count: 5 }));
    assert.deepEqual(r.messages.map((m) => m.text), ['s-0', 's-1', 's-2', 's-3', 's-4']);
    assert.equal(r.status.code, grpc.status.OK);
  });

  it('server streaming, many messages to a slow reader: all arrive, in order (flow control, nothing dropped)', async () => {
    const stream = client.ServerStream({ text: 'n', count: 500 });
    const got: string[] = [];
    for await (const m of stream as AsyncIterable<{ text: string }>) {
      got.push(m.text);
      // A slow reader: the mesh pauses the attempt while a message waits to be read.
      if (got.length % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    assert.equal(got.length, 500);
    assert.equal(got[0], 'n-0');
    assert.equal(got[499], 'n-499');
    assert.ok(got.every((t, i) => t === `n-${i}`));
  });

  it('client streaming: every request message reaches the server, in order', async () => {
    const reply = await new Promise<{ text: string }>((resolve, reject) => {
      const call = client.ClientStream(new grpc.Metadata(), {}, (err, res) => (err ? reject(err) : resolve(res as { text: string })));
      for (const t of ['x', 'y', 'z']) call.write({ text: t });
      call.end();
    });
    assert.equal(reply.text, 'x,y,z');
  });

  it('bidi: replies interleave with requests (each write is answered before the next)', async () => {
    const call = client.Bidi();
    const got: string[] = [];
    for (const t of ['1', '2', '3']) {
      call.write({ text: t });
      const m = await new Promise<{ text: string }>((r) => call.once('data', r));
      got.push(m.text);
    }
    const done = collect(call);
    call.end();
    const r = await done;
    assert.deepEqual(got, ['1', '2', '3']);
    assert.equal(r.status.code, grpc.status.OK);
  });

  it('metadata: text and -bin values reach the server; response metadata and trailers reach the caller', async () => {
    up.behaviour.Unary = (call, cb) => {
      call.sendMetadata(Object.assign(new grpc.Metadata(), {}));
      const trailers = new grpc.Metadata();
      trailers.set('x-trailer', 'done');
      cb(null, { text: String(call.metadata.get('x-user')[0]), server: 'a', seen: [(call.metadata.get('x-blob-bin')[0] as Buffer).toString('hex')] }, trailers);
    };
    const md = new grpc.Metadata();
    md.set('x-user', 'jason');
    md.set('x-blob-bin', Buffer.from([0, 1, 254, 255]));
    const r = await unary(client, { text: 'm' }, { metadata: md });
    assert.equal(r.reply?.text, 'jason');
    assert.deepEqual(r.reply?.seen, ['0001feff']);
    assert.equal(r.trailers?.get('x-trailer')[0], 'done');
  });

  it("the caller's deadline reaches the server as grpc-timeout (what remains of it)", async () => {
    up.behaviour.Unary = (call, cb) => cb(null, { text: String(call.metadata.get('grpc-timeout')[0] ?? 'none'), server: 'a', seen: [String(call.getDeadline() === Number.POSITIVE_INFINITY ? 'inf' : 'set')] });
    const r = await unary(client, { text: 't' }, { deadline: Date.now() + 30_000 });
    assert.equal(r.error, undefined);
    // grpc-js reads grpc-timeout into the call's deadline (and does not show it as metadata).
    assert.deepEqual(r.reply?.seen, ['set']);
    const none = await unary(client, { text: 't' });
    assert.deepEqual(none.reply?.seen, ['inf']);
  });

  it('a client constructed by the app with mesh.grpc.channelOptions() goes through the mesh', async () => {
    up.behaviour.Unary = (call, cb) => cb(null, { text: call.request.text, server: 'a', seen: [] });
    const own = new EchoClient('echo:9090', grpc.credentials.createInsecure(), { ...mesh.grpc.channelOptions() }) as unknown as Echo;
    const before = up.hits;
    const r = await unary(own, { text: 'own' });
    own.close();
    assert.equal(r.reply?.server, 'a');
    assert.equal(up.hits, before + 1);
  });

  it('a client given mesh.grpc.channel() as channelOverride, with its own interceptor still running', async () => {
    const seen: string[] = [];
    const interceptor: grpc.Interceptor = (options, next) => {
      seen.push(options.method_definition.path);
      return new grpc.InterceptingCall(next(options));
    };
    const own = new EchoClient('ignored:1', grpc.credentials.createInsecure(), { channelOverride: mesh.grpc.channel('echo:9090'), interceptors: [interceptor] }) as unknown as Echo;
    const r = await unary(own, { text: 'i' });
    own.close();
    assert.equal(r.reply?.text, 'i');
    assert.deepEqual(seen, ['/meshlet.test.Echo/Unary']);
  });

  it('a target without a port is refused, naming the target', () => {
    assert.throws(() => mesh.grpc.client(EchoClient, 'echo'), /target "echo" must name a host and a port/);
    assert.throws(() => mesh.grpc.channel('unix:///tmp/x.sock'), /only plain "host:port" and dns: targets/);
    assert.throws(() => mesh.grpc.client(EchoClient, 'echo:99999'), /target "echo:99999": port 99999 is out of range \(1-65535\)/);
  });

  it('arguments that are not what they should be are refused, naming the argument', () => {
    assert.throws(() => mesh.grpc.client({} as never, 'echo:9090'), /mesh\.grpc\.client\(ClientCtor, target\): ClientCtor must be a grpc-js client class .*got object/);
    assert.throws(() => mesh.grpc.client(undefined as never, 'echo:9090'), /ClientCtor must be a grpc-js client class .*got undefined/);
    assert.throws(() => mesh.grpc.client(EchoClient, 'echo:9090', 'x' as never), /options must be grpc-js client options \(an object\), got string/);
    assert.throws(() => mesh.grpc.judgeUnserved({} as never), /mesh\.grpc\.judgeUnserved\(server\): server must be a grpc-js Server/);
  });
});
