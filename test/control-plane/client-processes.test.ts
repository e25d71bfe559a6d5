/**
 * Meshes in child processes (test/control-plane/fixtures/mesh-child.ts) receive a route change
 * from one control plane and route by it.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { serviceEntry, startUpstream, type Upstream } from '../helpers/upstreams.ts';
import { routeAll, startTestControlPlane, type TestControlPlane, until, waitFor } from './client-helpers.ts';

const FIXTURE = new URL('./fixtures/mesh-child.ts', import.meta.url);

interface Report {
  type: string;
  version?: string;
  upstream?: string | null;
  message?: string;
}

let a: Upstream;
let b: Upstream;
let t: TestControlPlane;
before(async () => {
  a = await startUpstream('a');
  b = await startUpstream('b');
  t = await startTestControlPlane({
    se: [serviceEntry('a', 'a.example', 80, [{ port: a.port }]), serviceEntry('b', 'b.example', 80, [{ port: b.port }])],
    vs: [routeAll('svc', 'svc.example', 'a.example')],
  });
});
after(async () => {
  await t.close();
  await a.close();
  await b.close();
});

// The waits below are liveness bounds, not speed checks: four processes each loading meshlet's
// TypeScript sources take well over 15 s on a loaded 2-CPU machine.
test('meshes in 4 child processes receive a route change and route by it', async () => {
  const children: ChildProcess[] = [];
  try {
    const ready: Promise<Report>[] = [];
    for (let i = 0; i < 4; i++) {
      const service = `child${i}`;
      const token = await t.cp.mintToken({ service, namespace: 'default' });
      const child = fork(FIXTURE, [], {
        execPath: process.execPath,
        env: { ...process.env, MESH_CHILD_CONTROL_PLANE: t.cp.url, MESH_CHILD_TOKEN: token, MESH_CHILD_SERVICE: service },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      children.push(child);
      ready.push(waitFor<Report>(child, 'message', (m) => m.type === 'ready' || m.type === 'error', 60_000));
    }
    const first = await Promise.all(ready);
    for (const r of first) assert.deepEqual(r, { type: 'ready', version: t.cp.status().configVersion, upstream: 'a' });
    const changed = children.map((c) => waitFor<Report>(c, 'message', (m) => m.type === 'config' || m.type === 'error', 30_000));
    await t.write('vs', [routeAll('svc', 'svc.example', 'b.example')]);
    const reports = await Promise.all(changed);
    const v = t.cp.status().configVersion;
    for (const r of reports) assert.deepEqual(r, { type: 'config', version: v, upstream: 'b' });
    await until(() => t.cp.status().workloads.filter((w) => w.disconnectedAt === undefined && w.acked.config?.version === v).length === 4, 'every child ACKs');
    for (const c of children) c.send('close');
    await Promise.all(children.map((c) => (c.exitCode === null ? once(c, 'exit') : undefined)));
    for (const c of children) assert.equal(c.exitCode, 0);
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill();
  }
});
