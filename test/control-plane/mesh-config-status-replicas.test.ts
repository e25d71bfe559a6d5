/**
 * `meshlet status` over replicas that push different MeshConfigs (each its own `--mesh-config`):
 * said, as different trust bundles and config versions are, since a mesh takes the MeshConfig of
 * the replica it watches and another one after it moves.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, test } from 'node:test';
import { startTestControlPlane, type TestControlPlane } from './client-helpers.ts';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const open: TestControlPlane[] = [];
after(async () => {
  for (const t of open) await t.close();
});

/** Runs `meshlet status` against `urls` (a child process: the control planes here answer meanwhile). */
const status = (...urls: string[]) =>
  new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [MAIN, 'status', '--control-plane', urls.join(',')], { encoding: 'utf8', env: { ...process.env, MESHLET_TOKEN: '', MESHLET_TOKEN_FILE: '', MESHLET_CONTROL_PLANE: '' } }, (err, stdout, stderr) => {
      resolve({ status: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });

test('meshlet status names replicas that push different MeshConfigs, and says nothing of it when they agree', async () => {
  const a = await startTestControlPlane({}, { insecure: true, meshConfig: { connectTimeout: '2s' } });
  open.push(a);
  const b = await startTestControlPlane({}, { insecure: true, meshConfig: { connectTimeout: '3s' } });
  open.push(b);
  const c = await startTestControlPlane({}, { insecure: true });
  open.push(c);
  const differ = await status(a.cp.url, b.cp.url, c.cp.url);
  assert.equal(differ.status, 0, differ.stderr);
  const va = a.cp.status().meshConfig?.version ?? '?';
  const vb = b.cp.status().meshConfig?.version ?? '?';
  assert.match(differ.stdout, new RegExp(`replicas push different MeshConfigs \\(a mesh takes the one of the replica it watches\\): ${a.cp.url} ${va}, ${b.cp.url} ${vb}, ${c.cp.url} none`), differ.stdout);
  const same = await status(a.cp.url, a.cp.url);
  assert.equal(same.status, 0, same.stderr);
  assert.doesNotMatch(same.stdout, /replicas push different MeshConfigs/);
});
