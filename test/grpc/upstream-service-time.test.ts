/**
 * `x-envoy-upstream-service-time` on a gRPC call's response, as Envoy's router adds it to every
 * upstream head it forwards (source/common/router/router.cc, `Filter::onUpstreamHeaders`: only
 * once the downstream request is complete, and not with `suppress_envoy_headers`, Istio's
 * `proxyHeaders.envoyDebugHeaders` disabled): the ms from the caller's half-close — retries and
 * backoffs included — to the head, replacing an endpoint's own. The caller reads it in the
 * response metadata (or, for a trailers-only answer, the status's). The mesh clock is a
 * ManualClock: the value is exact.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMesh, ManualClock } from '../../src/index.ts';
import { virtualService } from '../helpers/upstreams.ts';
import { until } from '../helpers/until.ts';
import { closedAfter, collect, type Echo, EchoClient, grpc, grpcServiceEntry, startGrpcUpstream, status, unary } from '../helpers/grpc.ts';

const HOST = 'echo.default.svc.cluster.local';
const NAME = 'x-envoy-upstream-service-time';

describe('gRPC responses carry x-envoy-upstream-service-time', () => {
  const { ups, meshes, clients } = closedAfter();
  /** Unary calls the endpoint holds until the test answers them. */
  const held: { call: grpc.ServerUnaryCall<unknown, unknown>; cb: grpc.sendUnaryData<unknown> }[] = [];

  async function setup(route: object = {}, extra: object = {}) {
    const up = await startGrpcUpstream('a', { Unary: (call, cb) => held.push({ call, cb: cb as grpc.sendUnaryData<unknown> }) });
    ups.push(up);
    const clock = new ManualClock(5_000);
    const config = [grpcServiceEntry('echo', HOST, 9090, [{ port: up.port }]), virtualService('echo', ['echo'], [{ route: [{ destination: { host: 'echo' } }], ...route }]) as never];
    const mesh = await createMesh({ service: 'client', clock, config, ...extra });
    meshes.push(mesh);
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    clients.push(client);
    return { up, client, clock };
  }

  /** The next held call, once it has arrived and the clock has moved `ms`. */
  async function nextAfter(clock: ManualClock, ms: number) {
    await until(() => held.length > 0, 'the call to reach the endpoint');
    clock.advance(ms);
    return held.shift() as (typeof held)[number];
  }

  it('the ms from the half-close to the response metadata; an endpoint\'s own value is replaced', async () => {
    const { client, clock } = await setup();
    const p = unary(client, { text: 'a' });
    (await nextAfter(clock, 40)).cb(null, { text: 'a', server: 'a', seen: [] });
    const r = await p;
    assert.equal(r.reply?.text, 'a');
    assert.deepEqual(r.metadata?.get(NAME), ['40']);

    const own = unary(client, { text: 'b' });
    const h = await nextAfter(clock, 7);
    const md = new grpc.Metadata();
    md.set(NAME, '999');
    md.set('x-app', 'kept');
    h.call.sendMetadata(md);
    h.cb(null, { text: 'b', server: 'a', seen: [] });
    const r2 = await own;
    assert.deepEqual(r2.metadata?.get(NAME), ['7'], 'the endpoint sent 999: the mesh\'s value replaces it');
    assert.deepEqual(r2.metadata?.get('x-app'), ['kept']);
  });

  it('a trailers-only answer (an error status): in the status\'s metadata', async () => {
    const { client, clock } = await setup();
    const p = unary(client, { text: 'a' });
    (await nextAfter(clock, 12)).cb(status(grpc.status.NOT_FOUND, 'nope', { 'x-app': 'kept' }));
    const r = await p;
    assert.equal(r.error?.code, grpc.status.NOT_FOUND);
    assert.deepEqual(r.error?.metadata.get(NAME), ['12']);
    assert.deepEqual(r.error?.metadata.get('x-app'), ['kept']);
  });

  it('retries and their backoffs count', async () => {
    const { client, clock } = await setup({ retries: { attempts: 1, retryOn: 'unavailable' } });
    const p = unary(client, { text: 'a' });
    (await nextAfter(clock, 10)).cb(status(grpc.status.UNAVAILABLE, 'again'));
    // The retry waits for its backoff (under 25 ms): it goes once the clock has moved that far.
    await new Promise((r) => setTimeout(r, 20));
    clock.advance(25);
    (await nextAfter(clock, 5)).cb(null, { text: 'a', server: 'a', seen: [] });
    const r = await p;
    assert.equal(r.reply?.text, 'a');
    assert.deepEqual(r.metadata?.get(NAME), ['40'], '10 ms, the 25 ms the clock moved for the backoff, then 5 ms');
  });

  it('none on a head that comes before the caller half-closed (Envoy: the request is not complete)', async () => {
    const { up, client } = await setup();
    up.behaviour.Bidi = (call) => {
      call.sendMetadata(new grpc.Metadata());
      call.on('data', (m: { text: string }) => call.write({ text: m.text, server: 'a', seen: [] }));
      call.on('end', () => call.end());
    };
    const stream = client.Bidi();
    let head: grpc.Metadata | undefined;
    stream.on('metadata', (md: grpc.Metadata) => (head = md));
    const done = collect(stream);
    await until(() => head !== undefined, 'the response metadata');
    stream.write({ text: 'x' });
    stream.end();
    const r = await done;
    assert.equal(r.status.code, grpc.status.OK);
    assert.equal(r.messages.length, 1);
    assert.deepEqual(head?.get(NAME), []);
  });

  it('a server stream (the caller half-closes at once): on its response metadata', async () => {
    const { client } = await setup();
    const stream = client.ServerStream({ text: 's', count: 2 });
    let head: grpc.Metadata | undefined;
    stream.on('metadata', (md: grpc.Metadata) => (head = md));
    const r = await collect(stream);
    assert.equal(r.messages.length, 2);
    assert.deepEqual(head?.get(NAME), ['0']);
  });

  it('none on the mesh\'s own answers (a fault abort)', async () => {
    const { client } = await setup({ fault: { abort: { percentage: { value: 100 }, grpcStatus: 'UNAVAILABLE' } } });
    const r = await unary(client, { text: 'a' });
    assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
    assert.deepEqual(r.error?.metadata.get(NAME), []);
  });

  it('not with proxyHeaders.envoyDebugHeaders disabled: an endpoint\'s own value goes through', async () => {
    const { client, clock } = await setup({}, { proxyHeaders: { envoyDebugHeaders: { disabled: true } } });
    const p = unary(client, { text: 'a' });
    (await nextAfter(clock, 4)).cb(null, { text: 'a', server: 'a', seen: [] });
    assert.deepEqual((await p).metadata?.get(NAME), []);
    const own = unary(client, { text: 'b' });
    const h = await nextAfter(clock, 4);
    const md = new grpc.Metadata();
    md.set(NAME, '999');
    h.call.sendMetadata(md);
    h.cb(null, { text: 'b', server: 'a', seen: [] });
    assert.deepEqual((await own).metadata?.get(NAME), ['999']);
  });
});
