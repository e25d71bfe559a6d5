/**
 * `mesh.close()` bounds every call in flight by `closeTimeoutMs` — also a call to a cluster that a
 * reload removed while the call was running, and a call on pools a reload replaced (the
 * cluster's connection-pool settings changed: new calls get new pools, the old ones drain). Such
 * state leaves the pipeline at once so its calls can finish; close() must still wait for those
 * calls and cancel them when the grace period ends, and close the pools, instead of returning at
 * once and leaving the call (and its connection, which keeps the process alive) running after
 * close().
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { request } from 'undici';
import { createMesh, isMeshletError, ManualClock } from '../../src/index.ts';
import { compileSnapshot } from '../../src/routing/compile.ts';
import { loadConfig } from '../../src/config/load-config.ts';
import { EchoClient, type Echo, grpc, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';
import { nextConfig } from '../helpers/mesh-events.ts';
import { destinationRule, serviceEntry, startUpstream } from '../helpers/upstreams.ts';

describe('mesh.close() and clusters a reload removed', () => {
  const cases: [string, (write: (names: string[], extra?: object[]) => void) => void, ((clock: ManualClock) => void)?][] = [
    ['a call in flight to a cluster the config no longer has is waited for up to closeTimeoutMs, then cancelled', (write) => write(['kept'])],
    [
      'a call in flight to a removed cluster whose pools began closing 30 s later is still bounded by close()',
      (write) => write(['kept']),
      (clock) => clock.advance(30_000),
    ],
    [
      'a call in flight on pools replaced by new connection-pool settings is waited for up to closeTimeoutMs, then cancelled',
      (write) => write(['gone', 'kept'], [destinationRule('gone', 'gone', { trafficPolicy: { connectionPool: { tcp: { connectTimeout: '3s' } } } })]),
    ],
  ];
  for (const [name, change, later] of cases) it(name, async () => {
    const hung = await startUpstream('hung', () => new Promise(() => {}));
    const dir = mkdtempSync(join(tmpdir(), 'meshlet-removed-'));
    const write = (names: string[], extra: object[] = []) =>
      writeFileSync(join(dir, 'mesh.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [...names.map((n) => serviceEntry(n, `${n}.default.svc.cluster.local`, 80, [{ port: hung.port }])), ...extra] }));
    write(['gone', 'kept']);
    const clock = new ManualClock();
    const mesh = await createMesh({ service: 'client', clock, closeTimeoutMs: 5000, config: dir });
    try {
      const pending = request('http://gone/', { dispatcher: mesh.dispatcher }).then(
        () => 'answered',
        (e: unknown) => (isMeshletError(e) ? `meshlet ${(e as { code: string }).code}` : `error ${(e as Error).name}`),
      );
      while (hung.seen.length === 0) await new Promise((r) => setTimeout(r, 5));
      const applied = nextConfig(mesh);
      change(write);
      await applied;
      later?.(clock);

      let state = 'closing';
      const closed = mesh.close().then(() => (state = 'closed'));
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(state, 'closing', 'close() waits for the call while closeTimeoutMs has not passed');
      clock.advance(5000);
      await closed;
      assert.equal(await pending, 'meshlet MESHLET_ERR_CLOSED');
    } finally {
      await mesh.close();
      await hung.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gRPC: a call in flight on channels replaced by new connection-pool settings is waited for up to closeTimeoutMs, then ends UNAVAILABLE', async () => {
    const up = await startGrpcUpstream('held');
    const entry = grpcServiceEntry('echo', 'echo.default.svc.cluster.local', 9090, [{ port: up.port }]);
    const clock = new ManualClock(0);
    const mesh = await createMesh({ service: 'client', clock, closeTimeoutMs: 1000, config: [entry] });
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    try {
      let arrived!: () => void;
      const there = new Promise<void>((r) => (arrived = r));
      up.behaviour.Unary = () => arrived();
      const pending = unary(client, { text: 'held' });
      await there;
      const loaded = await loadConfig([entry, destinationRule('echo', 'echo', { trafficPolicy: { connectionPool: { http: { idleTimeout: '7s' } } } })] as never);
      assert.ok(loaded.ok);
      mesh.install(compileSnapshot(loaded.resources, { service: 'client', namespace: 'default', labels: {} }));

      let state = 'closing';
      const closed = mesh.close().then(() => (state = 'closed'));
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(state, 'closing', 'close() waits for the call while closeTimeoutMs has not passed');
      clock.advance(1000);
      await closed;
      const r = await pending;
      assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
      assert.match(r.error?.details ?? '', /mesh\.close\(\): the call was still running after closeTimeoutMs \(1000 ms\)/);
    } finally {
      client.close();
      await mesh.close();
      await up.close();
    }
  });
});
