/**
 * Deadlines further away than a Node timer holds (2^31-1 ms, 24.8 days). Node fires a longer
 * setTimeout after 1 ms (TimeoutOverflowWarning), and a grpc-js server reads `grpc-timeout` into a
 * 32-bit integer (`| 0`, server-interceptors.ts): a deadline 25 to 49 days away arrived in the
 * past and ended the call with DEADLINE_EXCEEDED after 1 ms, a longer one days early. The mesh
 * keeps the caller's deadline (and a route timeout) on its clock, which waits long delays in steps;
 * it sends at most 2147483 s as `grpc-timeout`; its channel's watchConnectivityState waits in steps.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { MAX_TIMEOUT_MS } from '../../src/core/clock.ts';
import { closedAfter, type Echo, EchoClient, grpc, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';
import { virtualService } from '../helpers/upstreams.ts';

const DAY = 86_400_000;
const HOST = 'echo.default.svc.cluster.local';

describe('gRPC deadlines further away than 24.8 days', () => {
  const { ups, meshes, clients } = closedAfter();

  async function setup(route: object) {
    const up = await startGrpcUpstream('a');
    ups.push(up);
    const config = [grpcServiceEntry('echo', HOST, 9090, [{ port: up.port }]), virtualService('echo', ['echo'], [{ route: [{ destination: { host: 'echo' } }], ...route }]) as never];
    const mesh = await createMesh({ service: 'client', config });
    meshes.push(mesh);
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    clients.push(client);
    // The deadline the grpc-js server took from the call's grpc-timeout, in ms from now.
    const left: number[] = [];
    up.behaviour.Unary = (call, cb) => {
      const d = call.getDeadline();
      left.push((d instanceof Date ? d.getTime() : (d as number)) - Date.now());
      cb(null, { text: call.request.text, server: 'a', seen: [] });
    };
    return { client, left };
  }

  for (const days of [30, 45, 60]) {
    it(`a caller deadline ${days} days away: the server's deadline is not in the past (at most 2147483 s), the call answers, no timer overflows`, async () => {
      const { client, left } = await setup({});
      const warnings: string[] = [];
      const onWarning = (w: Error) => warnings.push(w.name);
      process.on('warning', onWarning);
      const r = await unary(client, { text: 'a' }, { deadline: Date.now() + days * DAY });
      // Node emits its timer warnings on the next tick.
      await new Promise((resolve) => process.nextTick(resolve));
      process.off('warning', onWarning);
      assert.deepEqual(warnings.filter((w) => w.startsWith('Timeout')), []);
      assert.equal(r.error, undefined);
      assert.equal(r.reply?.text, 'a');
      assert.equal(left.length, 1);
      assert.ok((left[0] as number) > 24 * DAY && (left[0] as number) <= MAX_TIMEOUT_MS, `the server's deadline is ${left[0]} ms away`);
    });
  }

  it("a route timeout of 30 days: the same", async () => {
    const { client, left } = await setup({ timeout: `${30 * 86_400}s` });
    const r = await unary(client, { text: 'a' });
    assert.equal(r.error, undefined);
    assert.ok((left[0] as number) > 24 * DAY && (left[0] as number) <= MAX_TIMEOUT_MS, `the server's deadline is ${left[0]} ms away`);
  });

  it('watchConnectivityState with a deadline 30 days away waits (no timer over 2^31-1 ms), and calls back without an error when the channel shuts down', async (t) => {
    const mesh = await createMesh({ service: 'client', config: [] });
    meshes.push(mesh);
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    const channel = client.getChannel();
    const delays: number[] = [];
    const real = globalThis.setTimeout;
    t.mock.method(globalThis, 'setTimeout', (fn: () => void, ms: number) => {
      delays.push(ms);
      return real(fn, ms);
    });
    const watched = new Promise<Error | undefined>((r) => channel.watchConnectivityState(grpc.connectivityState.READY, Date.now() + 30 * DAY, r));
    t.mock.restoreAll();
    assert.ok(delays.length > 0 && delays.every((d) => d <= MAX_TIMEOUT_MS), `timers set: ${delays.join(', ')}`);
    client.close();
    assert.equal(await watched, undefined);
  });
});
