/**
 * A control plane serving a large config keeps answering while it checks a change (issue 11,
 * point 12): an apply against 6,000 resources is validated and analysed in slices, and a request
 * sent meanwhile is answered first. (What it costs is measured in bench/config/large.ts.)
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type ControlPlane, startControlPlane } from '../../../src/control-plane-server/server.ts';
import { largeConfig } from '../../helpers/config-dir.ts';
import { api, memoryLogger, tempDir } from './helpers.ts';

const { dir, cleanup } = tempDir();
let cp: ControlPlane;
let admin: string;

before(async () => {
  const config = join(dir, 'config');
  mkdirSync(config);
  const all = largeConfig(2000);
  for (let f = 0; f * 100 < all.length; f++) writeFileSync(join(config, `part-${f}.json`), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: all.slice(f * 100, (f + 1) * 100) }));
  cp = await startControlPlane({ configDir: config, dataDir: join(dir, 'data'), host: '127.0.0.1', port: 0, logger: memoryLogger() });
  admin = await cp.mintToken({ admin: true });
});
after(async () => {
  await cp.close();
  cleanup();
});

test('an apply against 6,000 resources lets the server answer other requests while it is checked', async () => {
  const vs = { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'extra', namespace: 'default' }, spec: { hosts: ['svc-1'], http: [{ route: [{ destination: { host: 'svc-1', subset: 'v2' } }] }] } };
  // Health checks one after the other while the apply runs: the longest wait for one answer is
  // compared with the apply's whole time (a ratio in one run, not a time limit). Checked in one
  // piece, the apply held every request for most of its time.
  let done = false;
  const answers: number[] = [];
  const pinging = (async () => {
    while (!done) {
      const r = await api(cp.url, 'GET', '/healthz');
      assert.equal(r.status, 200);
      answers.push(performance.now());
    }
  })();
  await new Promise((r) => setTimeout(r, 20));
  const start = performance.now();
  const applied = await api(cp.url, 'POST', '/v1/resources', { token: admin, text: JSON.stringify(vs) });
  const end = performance.now();
  done = true;
  await pinging;
  assert.equal(applied.status, 200, JSON.stringify(applied.body));
  assert.deepEqual(applied.body.applied, [{ ref: 'VirtualService default/extra', action: 'created' }]);
  const during = [start, ...answers.filter((t) => t > start && t < end), end];
  const longestWait = Math.max(...during.slice(1).map((t, i) => t - (during[i] as number)));
  assert.ok(during.length > 3, `${during.length - 2} health checks answered during the apply`);
  assert.ok(longestWait < 0.5 * (end - start), `a health check waited ${longestWait.toFixed(0)} ms of the apply's ${(end - start).toFixed(0)} ms`);
});
