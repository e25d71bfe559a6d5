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
import { cpuGaps, largeConfig } from '../../helpers/config-dir.ts';
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
  // Health checks one after the other while the apply runs: the most CPU time the server's thread
  // spent between two answers is compared with all it spent on the apply (a ratio in one run, not
  // a time limit). Checked in one piece, the apply was one gap holding nearly all of it.
  const health = cpuGaps(async () => assert.equal((await api(cp.url, 'GET', '/healthz')).status, 200));
  await new Promise((r) => setTimeout(r, 20));
  health.start();
  const applied = await api(cp.url, 'POST', '/v1/resources', { token: admin, text: JSON.stringify(vs) });
  const { longest, total, answers } = await health.stop();
  assert.equal(applied.status, 200, JSON.stringify(applied.body));
  assert.deepEqual(applied.body.applied, [{ ref: 'VirtualService default/extra', action: 'created' }]);
  assert.ok(answers > 3, `${answers} health checks answered during the apply`);
  assert.ok(longest < 0.5 * total, `the longest gap between two answers took ${longest.toFixed(0)} ms of CPU, of ${total.toFixed(0)} ms for the apply`);
});
