/**
 * The per-try timeout of a streaming call starts once the whole request went out — the caller's
 * half-close —, as Envoy's starts at the downstream's end of stream (router.cc
 * `Filter::onRequestComplete` → `setupPerTryTimeout`; `UpstreamRequest::onPoolReady` when the
 * request was complete first). The mesh does not cut a client or bidi stream written for longer
 * than `perTryTimeout` (a retry would replay its messages to the server: their side effects
 * twice); once the caller half-closed, an attempt that gets no response metadata within it is
 * cut and retried as before. All time is the mesh's ManualClock: the server's own deadline
 * (grpc-timeout = the per-try timeout, as Envoy sends it; the last test) runs on the wall clock
 * and is never reached here.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMesh, ManualClock, seededRandom } from '../../src/index.ts';
import { until } from '../helpers/until.ts';
import { virtualService } from '../helpers/upstreams.ts';
import { closedAfter, type Echo, EchoClient, type EchoReply, type EchoRequest, grpc, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';

const HOST = 'echo.default.svc.cluster.local';
const RETRY_ON = 'unavailable,cancelled,deadline-exceeded,resource-exhausted,connect-failure,reset';

describe('gRPC streams: the per-try timeout starts at the half-close', () => {
  const { ups, meshes, clients } = closedAfter();

  async function setup() {
    const clock = new ManualClock(5_000);
    const up = await startGrpcUpstream('a');
    ups.push(up);
    const config = [grpcServiceEntry('echo', HOST, 9090, [{ port: up.port }]), virtualService('echo', ['echo'], [{ route: [{ destination: { host: 'echo' } }], retries: { attempts: 3, perTryTimeout: '1s', retryOn: RETRY_ON } }]) as never];
    const mesh = await createMesh({ service: 'client', clock, random: seededRandom(4), config });
    meshes.push(mesh);
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    clients.push(client);
    return { up, client, clock };
  }

  it('client streaming written for longer than perTryTimeout: one attempt, every message once, OK', async () => {
    const { up, client, clock } = await setup();
    const received: string[] = [];
    up.behaviour.ClientStream = (call, cb) => {
      call.on('data', (m: EchoRequest) => received.push(m.text));
      call.on('end', () => cb(null, { text: received.join(','), server: 'a', seen: [] }));
    };
    let result: { err: grpc.ServiceError | null; res?: EchoReply } | undefined;
    const call = client.ClientStream(new grpc.Metadata(), {}, (err, res) => (result = { err, res }));
    call.write({ text: 'm1' });
    await until(() => received.length === 1, 'm1 at the server');
    clock.advance(5_000);
    call.write({ text: 'm2' });
    await until(() => received.length === 2, 'm2 at the server');
    clock.advance(5_000);
    call.end();
    await until(() => result !== undefined, 'the reply');
    assert.equal(result?.err, null);
    assert.equal(result?.res?.text, 'm1,m2');
    assert.equal(up.hits, 1);
  });

  it('bidi written for longer than perTryTimeout, answered at the half-close: one attempt, OK', async () => {
    const { up, client, clock } = await setup();
    const received: string[] = [];
    up.behaviour.Bidi = (call) => {
      call.on('data', (m: EchoRequest) => received.push(m.text));
      call.on('end', () => {
        call.write({ text: received.join(','), server: 'a', seen: [] });
        call.end();
      });
    };
    const call = client.Bidi();
    const got: string[] = [];
    call.on('data', (m: EchoReply) => got.push(m.text));
    const status = new Promise<grpc.StatusObject>((r) => call.on('status', r));
    for (const t of ['b1', 'b2', 'b3']) {
      call.write({ text: t });
      await until(() => received.includes(t), `${t} at the server`);
      clock.advance(2_000);
    }
    call.end();
    assert.equal((await status).code, grpc.status.OK);
    assert.deepEqual(got, ['b1,b2,b3']);
    assert.equal(up.hits, 1);
  });

  it('after the half-close, an attempt without response metadata within perTryTimeout is cut and retried with every message', async () => {
    const { up, client, clock } = await setup();
    const bodies: string[][] = [];
    up.behaviour.ClientStream = (call, cb, hit) => {
      const texts: string[] = [];
      call.on('data', (m: EchoRequest) => texts.push(m.text));
      call.on('end', () => {
        bodies.push(texts);
        // The first attempt never answers; the second does.
        if (hit > 1) cb(null, { text: texts.join(','), server: 'a', seen: [] });
      });
    };
    let result: { err: grpc.ServiceError | null; res?: EchoReply } | undefined;
    const call = client.ClientStream(new grpc.Metadata(), {}, (err, res) => (result = { err, res }));
    call.write({ text: 'x' });
    clock.advance(3_000);
    call.write({ text: 'y' });
    call.end();
    await until(() => bodies.length === 1, 'the first attempt\'s half-close at the server');
    assert.equal(up.hits, 1);
    clock.advance(1_000);
    // The retry waits its backoff (at most 25 ms, jittered) on the mesh clock.
    await new Promise((r) => setImmediate(r));
    clock.advance(25);
    await until(() => result !== undefined, 'the reply');
    assert.equal(result?.res?.text, 'x,y');
    assert.deepEqual(bodies, [
      ['x', 'y'],
      ['x', 'y'],
    ]);
  });

  it("the server's deadline (grpc-timeout) is what the attempt may take: the per-try timeout, never more than what remains of the call's", async () => {
    const clock = new ManualClock(5_000);
    const up = await startGrpcUpstream('a');
    ups.push(up);
    const route = { route: [{ destination: { host: 'echo' } }], timeout: '30s', retries: { attempts: 2, perTryTimeout: '2s', retryOn: RETRY_ON } };
    const mesh = await createMesh({ service: 'client', clock, config: [grpcServiceEntry('echo', HOST, 9090, [{ port: up.port }]), virtualService('echo', ['echo'], [route]) as never] });
    meshes.push(mesh);
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    clients.push(client);
    const left: number[] = [];
    up.behaviour.Unary = (call, cb) => {
      const d = call.getDeadline();
      left.push((d instanceof Date ? d.getTime() : (d as number)) - Date.now());
      cb(null, { text: call.request.text, server: 'a', seen: [] });
    };
    // Envoy's setTimeoutHeaders: per-try 2s under a 30s route timeout → grpc-timeout 2s.
    assert.equal((await unary(client, { text: 'a' })).reply?.text, 'a');
    // A caller deadline sooner than the per-try timeout: what remains of it.
    assert.equal((await unary(client, { text: 'b' }, { deadline: Date.now() + 1000 })).reply?.text, 'b');
    assert.equal(left.length, 2);
    assert.ok((left[0] as number) > 0 && (left[0] as number) <= 2000, `server deadline ${left[0]} ms from now, want at most the per-try 2000`);
    assert.ok((left[1] as number) > 0 && (left[1] as number) <= 1000, `server deadline ${left[1]} ms from now, want at most the caller's 1000`);
  });
});
