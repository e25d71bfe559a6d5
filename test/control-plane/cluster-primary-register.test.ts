/**
 * One registration per pod under node:cluster: the primary, which lives as long as the pod,
 * registers for its workers (a worker's `mesh.close()` would deregister the pod's one entry while
 * the other workers still serve). The primary's mesh has no server of its own — its workers listen
 * on the registered port — so it is not warned that the port is not served; a primary without
 * workers still is.
 */
import assert from 'node:assert/strict';
import cluster from 'node:cluster';
import { after, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { startTestControlPlane, type TestControlPlane } from './client-helpers.ts';

const opened: { close(): Promise<void> }[] = [];
after(async () => {
  for (const o of opened.reverse()) await o.close();
});

describe('mesh.register() in a node:cluster primary', () => {
  it('does not warn that the registered port is unserved while workers run (they serve it); without workers it does', async () => {
    const t: TestControlPlane = await startTestControlPlane({ mesh: [] }, { certTtlMs: 3_600_000 });
    opened.push(t);
    const warnings: string[] = [];
    const logger = { warn: (m: string) => warnings.push(m), error: () => undefined };
    const mesh: Mesh = await createMesh({ service: 'reviews', labels: { app: 'reviews' }, controlPlane: t.cp.url, token: await t.cp.mintToken({ service: 'reviews', namespace: 'default' }), drainMs: 0, logger });
    opened.push(mesh);

    cluster.setupPrimary({ exec: new URL('./fixtures/idle-cluster-worker.ts', import.meta.url).pathname, execArgv: [], silent: true });
    const worker = cluster.fork();
    const exited = new Promise((r) => worker.once('exit', r));
    opened.push({
      close: async () => {
        if (worker.isDead()) return;
        worker.kill();
        await exited;
      },
    });
    await new Promise((r) => worker.once('message', r));
    const reg = await mesh.register({ ports: { http: 9080 }, address: '127.0.0.1' });
    await reg.close();
    assert.deepEqual(warnings.filter((w) => w.includes('mesh.register')), []);

    worker.disconnect();
    await exited;
    const alone = await mesh.register({ ports: { http: 9080 }, address: '127.0.0.1' });
    await alone.close();
    assert.equal(warnings.filter((w) => w.includes('mesh.register: port http=9080 is not served')).length, 1);
  });

  it('warns a worker that registers, once: the one entry of the pod goes when the first worker closes its mesh', async () => {
    const t: TestControlPlane = await startTestControlPlane({ mesh: [] }, { certTtlMs: 3_600_000 });
    opened.push(t);
    cluster.setupPrimary({
      exec: new URL('./fixtures/registering-cluster-worker.ts', import.meta.url).pathname,
      execArgv: [],
      silent: true,
    });
    const worker = cluster.fork({ CP_URL: t.cp.url, CP_TOKEN: await t.cp.mintToken({ service: 'reviews', namespace: 'default' }) });
    const exited = new Promise((r) => worker.once('exit', r));
    opened.push({
      close: async () => {
        if (worker.isDead()) return;
        worker.disconnect();
        await exited;
      },
    });
    const warnings = (await new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('exit', (code) => reject(new Error(`worker exited (${code})`)));
    })) as string[];
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.match(warnings[0] as string, /^meshlet: mesh\.register in a node:cluster worker: .*deregisters while the others still serve; register once, from the primary/);
  });
});
