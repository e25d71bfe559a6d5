/**
 * The route timeout of a streaming gRPC call starts at the caller's half-close, as Envoy's global
 * timeout starts at the downstream's end of stream (source/common/router/router.cc
 * `Filter::onRequestComplete` arms `response_timeout_`; `decodeHeaders` only computes it): a
 * client or bidi stream written for longer than the route timeout is not cut by it; once the
 * caller half-closed, the call gets the route timeout to be answered (DEADLINE_EXCEEDED, UT
 * after). The upstream is still told the route timeout at the start (`grpc-timeout`, as Envoy's
 * setTimeoutHeaders writes it from decodeHeaders). All time is the mesh's ManualClock; the
 * server's own deadline runs on the wall clock and is never reached here.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMesh, ManualClock } from '../../src/index.ts';
import { until } from '../helpers/until.ts';
import { virtualService } from '../helpers/upstreams.ts';
import { closedAfter, type Echo, EchoClient, type EchoReply, type EchoRequest, grpc, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';

const HOST = 'echo.default.svc.cluster.local';

describe('gRPC streams: the route timeout starts at the half-close', () => {
  const { ups, meshes, clients } = closedAfter();

  async function setup() {
    const clock = new ManualClock(5_000);
    const up = await startGrpcUpstream('a');
    ups.push(up);
    const config = [grpcServiceEntry('echo', HOST, 9090, [{ port: up.port }]), virtualService('echo', ['echo'], [{ route: [{ destination: { host: 'echo' } }], timeout: '1s' }]) as never];
    const mesh = await createMesh({ service: 'client', clock, config });
    meshes.push(mesh);
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    clients.push(client);
    return { up, client, clock };
  }

  it('client streaming written for 10s under a 1s route timeout: every message, OK; the upstream was told 1s (x-envoy-expected-rq-timeout-ms)', async () => {
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
    assert.equal(up.seen.at(-1)?.metadata['x-envoy-expected-rq-timeout-ms'], '1000');
  });

  /**
   * A client stream whose server never answers, half-closed `writeMs` after its start; then the
   * clock moves by each of `quiet` (the call must still be waiting after each), and by 1 ms more:
   * DEADLINE_EXCEEDED, UT.
   */
  async function cutAfterHalfClose(writeMs: number, quiet: [number, string][]): Promise<void> {
    const { up, client, clock } = await setup();
    let ended = false;
    up.behaviour.ClientStream = (call) => {
      call.on('data', () => undefined);
      call.on('end', () => (ended = true));
    };
    let result: { err: grpc.ServiceError | null } | undefined;
    const call = client.ClientStream(new grpc.Metadata(), {}, (err) => (result = { err }));
    call.write({ text: 'x' });
    clock.advance(writeMs);
    call.end();
    await until(() => ended, 'the half-close at the server');
    for (const [ms, why] of quiet) {
      clock.advance(ms);
      await new Promise((r) => setImmediate(r));
      assert.equal(result, undefined, why);
    }
    clock.advance(1);
    await until(() => result !== undefined, 'the status');
    const err = (result as { err: grpc.ServiceError | null } | undefined)?.err;
    assert.equal(err?.code, grpc.status.DEADLINE_EXCEEDED);
    assert.equal(err?.metadata.get('x-meshlet-response-flags')[0], 'UT');
  }

  it('after the half-close, no answer within the route timeout: DEADLINE_EXCEEDED, UT', async () => {
    await cutAfterHalfClose(3_000, [[999, 'not cut before the route timeout has passed since the half-close']]);
  });

  it('half-closed 600ms in, before the 1s route timeout passed: the timeout runs from the half-close (cut at 1.6s, not 1s)', async () => {
    await cutAfterHalfClose(600, [
      [400, 'not cut 1s after the start: Envoy counts from the end of the request'],
      [599, 'not cut before 1s after the half-close'],
    ]);
  });

  it('bidi answering as it reads, written for 3s under a 1s route timeout: every answer, OK', async () => {
    const { up, client, clock } = await setup();
    up.behaviour.Bidi = (call) => {
      call.on('data', (m: EchoRequest) => call.write({ text: m.text, server: 'a', seen: [] }));
      call.on('end', () => call.end());
    };
    const call = client.Bidi();
    const got: string[] = [];
    call.on('data', (m: EchoReply) => got.push(m.text));
    const status = new Promise<grpc.StatusObject>((r) => call.on('status', r));
    for (const t of ['b1', 'b2', 'b3']) {
      call.write({ text: t });
      await until(() => got.includes(t), `${t} answered`);
      clock.advance(1_000);
    }
    call.end();
    assert.equal((await status).code, grpc.status.OK);
    assert.deepEqual(got, ['b1', 'b2', 'b3']);
  });

  it('with a caller deadline later than the route timeout: the stream written for 5s is not cut, the caller deadline still holds', async () => {
    const { up, client, clock } = await setup();
    const received: string[] = [];
    up.behaviour.ClientStream = (call, cb) => {
      call.on('data', (m: EchoRequest) => received.push(m.text));
      call.on('end', () => cb(null, { text: received.join(','), server: 'a', seen: [] }));
    };
    let result: { err: grpc.ServiceError | null; res?: EchoReply } | undefined;
    const call = client.ClientStream(new grpc.Metadata(), { deadline: Date.now() + 60_000 }, (err, res) => (result = { err, res }));
    call.write({ text: 'd1' });
    await until(() => received.length === 1, 'd1 at the server');
    clock.advance(5_000);
    call.write({ text: 'd2' });
    call.end();
    await until(() => result !== undefined, 'the reply');
    assert.equal(result?.err, null);
    assert.equal(result?.res?.text, 'd1,d2');
  });

  it('a unary call: the route timeout runs as before (the request ends as it is sent)', async () => {
    const { up, client, clock } = await setup();
    up.behaviour.Unary = () => undefined;
    const r = unary(client, { text: 'u' });
    await until(() => up.hits === 1, 'the call at the server');
    clock.advance(1_000);
    const { error } = await r;
    assert.equal(error?.code, grpc.status.DEADLINE_EXCEEDED);
  });
});
