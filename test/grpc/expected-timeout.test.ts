/**
 * `x-envoy-expected-rq-timeout-ms` on gRPC calls, as Envoy's router sends it
 * (`FilterUtility::setTimeoutHeaders`, source/common/router/router.cc): the time the attempt may
 * take — the per-try timeout when the route has one, never more than what remains of the call's
 * deadline — beside `grpc-timeout` (Istio sets `max_grpc_timeout` on every route,
 * pilot/pkg/networking/core/route/route.go `setTimeout`, so a caller's deadline is the timeout
 * even on a route without one); none with `proxyHeaders.envoyDebugHeaders` disabled
 * (`suppress_envoy_headers`). A server under the mesh's interceptors takes it as the call's
 * MeshContext deadline, as the HTTP servers do. The mesh clock is a ManualClock: the value sent
 * is exact.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMesh, ManualClock, type Mesh } from '../../src/index.ts';
import { virtualService } from '../helpers/upstreams.ts';
import { closedAfter, type Echo, EchoClient, grpc, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';
import { type MeshGrpcServer, plainClient, startMeshGrpcServer } from '../helpers/grpc-server.ts';

const HOST = 'echo.default.svc.cluster.local';
const HEADER = 'x-envoy-expected-rq-timeout-ms';

describe('gRPC calls carry x-envoy-expected-rq-timeout-ms', () => {
  const { ups, meshes, clients } = closedAfter();

  async function setup(route: object, extra: object = {}) {
    const up = await startGrpcUpstream('a');
    ups.push(up);
    const config = [grpcServiceEntry('echo', HOST, 9090, [{ port: up.port }]), virtualService('echo', ['echo'], [{ route: [{ destination: { host: 'echo' } }], ...route }]) as never];
    const mesh = await createMesh({ service: 'client', clock: new ManualClock(5_000), config, ...extra });
    meshes.push(mesh);
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    clients.push(client);
    return { up, client };
  }

  const sent = (up: { seen: { metadata: Record<string, unknown> }[] }, i = -1) => up.seen.at(i)?.metadata[HEADER];

  it('the route timeout (30s): 30000', async () => {
    const { up, client } = await setup({ timeout: '30s' });
    assert.equal((await unary(client, { text: 'a' })).reply?.text, 'a');
    assert.equal(sent(up), '30000');
    assert.equal(up.seen.at(-1)?.metadata['grpc-timeout'], undefined, 'grpc-js reads grpc-timeout itself (the deadline), never as metadata');
  });

  it('a per-try timeout under the route timeout: the per-try timeout', async () => {
    const { up, client } = await setup({ timeout: '30s', retries: { attempts: 2, perTryTimeout: '2s', retryOn: 'unavailable' } });
    await unary(client, { text: 'a' });
    assert.equal(sent(up), '2000');
  });

  it("no route timeout, a caller deadline: what remains of it (Istio's max_grpc_timeout 0: the grpc-timeout is the timeout)", async () => {
    const { up, client } = await setup({});
    await unary(client, { text: 'a' }, { deadline: Date.now() + 60_000 });
    const v = Number(sent(up));
    assert.ok(v > 50_000 && v <= 60_000, `sent ${v}`);
  });

  it('neither: no header; a value the caller set itself is not sent (the mesh writes it, as Envoy overwrites it)', async () => {
    const { up, client } = await setup({});
    const md = new grpc.Metadata();
    md.set(HEADER, '1');
    await unary(client, { text: 'a' }, { metadata: md });
    assert.equal(sent(up), undefined);
    await unary(client, { text: 'b' });
    assert.equal(sent(up), undefined);
  });

  it('proxyHeaders.envoyDebugHeaders disabled: none, grpc-timeout still sent', async () => {
    const { up, client } = await setup({ timeout: '30s' }, { proxyHeaders: { envoyDebugHeaders: { disabled: true } } });
    let left = 0;
    up.behaviour.Unary = (call, cb) => {
      const d = call.getDeadline();
      left = (d instanceof Date ? d.getTime() : (d as number)) - Date.now();
      cb(null, { text: call.request.text, server: 'a', seen: [] });
    };
    await unary(client, { text: 'a' });
    assert.equal(sent(up), undefined);
    assert.ok(left > 20_000 && left <= 30_000, `server deadline ${left} ms away`);
  });
});

describe('a gRPC server under the mesh takes x-envoy-expected-rq-timeout-ms as the MeshContext deadline', () => {
  let mesh: Mesh;
  let server: MeshGrpcServer;
  const closers: (() => unknown)[] = [];
  after(async () => {
    for (const c of closers.reverse()) await c();
  });

  it('from a plain grpc-js caller (no deadline of its own), and from a mesh caller whose route has a timeout', async () => {
    mesh = await createMesh({ service: 'echo', config: [] });
    closers.push(() => mesh.close());
    server = await startMeshGrpcServer(mesh);
    closers.push(() => server.close());
    const plain = plainClient(server.port) as Echo;
    closers.push(() => plain.close());
    const md = new grpc.Metadata();
    md.set(HEADER, '30000');
    const t0 = performance.now();
    assert.equal((await unary(plain, { text: 'p' }, { metadata: md })).reply?.text, 'p');
    const d = (server.seen.at(-1)?.context.deadline ?? 0) - t0;
    assert.ok(d > 25_000 && d <= 30_000 + (performance.now() - t0), `deadline ${d} ms after the call started`);

    const caller = await createMesh({ service: 'client', config: [grpcServiceEntry('echo', HOST, 9090, [{ port: server.port }]), virtualService('echo', ['echo'], [{ route: [{ destination: { host: 'echo' } }], timeout: '45s' }]) as never] });
    closers.push(() => caller.close());
    const client = caller.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    closers.push(() => client.close());
    const t1 = performance.now();
    await unary(client, { text: 'm' });
    const d1 = (server.seen.at(-1)?.context.deadline ?? 0) - t1;
    assert.ok(d1 > 40_000 && d1 <= 45_000 + (performance.now() - t1), `deadline ${d1} ms after the call started`);
  });
});
