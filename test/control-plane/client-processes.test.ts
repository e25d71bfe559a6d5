/**
 * Meshes in child processes (test/control-plane/fixtures/mesh-child.ts) receive a route change
 * from one control plane and route by it.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { serviceEntry, startUpstream, type Upstream } from '../helpers/upstreams.ts';
import { routeAll, startTestControlPlane, type TestControlPlane, until } from './client-helpers.ts';

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

/**
 * The first message from `child` satisfying `pred`; rejects as soon as the child exits (or cannot
 * be started) without sending one. No real-time limit: how long four processes take to load
 * meshlet's TypeScript sources on a loaded machine is not what this test checks, and a child
 * that cannot start or reach the control plane says so itself (an `error` report, or its exit;
 * its mesh gives up after its own startupTimeoutMs). A hang is caught by the test's timeout.
 */
function report(child: ChildProcess, pred: (m: Report) => boolean): Promise<Report> {
  return new Promise((resolve, reject) => {
    const done = () => {
      child.off('message', onMessage);
      child.off('exit', onExit);
      child.off('error', onError);
    };
    const onMessage = (m: Report) => {
      if (!pred(m)) return;
      done();
      resolve(m);
    };
    const onExit = (code: number | null, signal: string | null) => {
      done();
      reject(new Error(`child ${child.pid} exited (code ${code}, signal ${signal}) before reporting`));
    };
    const onError = (err: Error) => {
      done();
      reject(err);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
    child.on('error', onError);
  });
}

// Liveness bound of the whole test (it would otherwise hang on a lost push), not a speed check.
test('meshes in 4 child processes receive a route change and route by it', { timeout: 300_000 }, async () => {
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
      const r = report(child, (m) => m.type === 'ready' || m.type === 'error');
      r.catch(() => undefined); // awaited below; not unhandled if the child dies while the others start
      ready.push(r);
    }
    const first = await Promise.all(ready);
    for (const r of first) assert.deepEqual(r, { type: 'ready', version: t.cp.status().configVersion, upstream: 'a' });
    const changed = children.map((c) => report(c, (m) => m.type === 'config' || m.type === 'error'));
    await t.write('vs', [routeAll('svc', 'svc.example', 'b.example')]);
    const reports = await Promise.all(changed);
    const v = t.cp.status().configVersion;
    for (const r of reports) assert.deepEqual(r, { type: 'config', version: v, upstream: 'b' });
    await until(() => t.cp.status().workloads.filter((w) => w.disconnectedAt === undefined && w.acked.config?.version === v).length === 4, 'every child ACKs', Number.POSITIVE_INFINITY);
    for (const c of children) c.send('close');
    await Promise.all(children.map((c) => (c.exitCode === null ? once(c, 'exit') : undefined)));
    for (const c of children) assert.equal(c.exitCode, 0);
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill();
  }
});
