/**
 * `meshlet control-plane --mesh-config`: the file is watched from before it is first read, so an
 * edit made while the control plane starts (after that read, before `startControlPlane`
 * resolved) is pushed once the control plane is up, not only with the next edit. Real file, real
 * watcher; the control plane's side is what it is handed (`setMeshConfig`).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { controlPlaneMeshConfig, watchMeshConfigFile } from '../../src/cli/commands/control-plane-mesh-config.ts';
import { until } from '../control-plane/client-helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-cp-mesh-watch-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('--mesh-config watch during start-up', () => {
  it('an edit between the first read and the control plane being up is pushed when it is up; later edits as they come', async () => {
    const file = join(dir, 'mesh.yaml');
    writeFileSync(file, 'connectTimeout: 1s\n');
    const watch = watchMeshConfigFile(file);
    try {
      const first = await controlPlaneMeshConfig(file);
      assert.deepEqual(first.meshConfig, { connectTimeout: '1s' });
      // The control plane is starting: the file changes.
      writeFileSync(file, 'connectTimeout: 2s\n');
      // The watcher sees it (debounced) while nothing is attached.
      const pushed: unknown[] = [];
      await until(() => watch.missed, 'the edit seen before the control plane is up', 10_000);
      watch.attach({ setMeshConfig: (m) => void pushed.push(m) });
      await until(() => pushed.length > 0, 'the edit made during start-up pushed', 10_000);
      assert.deepEqual(pushed.at(-1), { connectTimeout: '2s' });
      writeFileSync(file, 'connectTimeout: 3s\n');
      await until(() => (pushed.at(-1) as { connectTimeout?: string } | undefined)?.connectTimeout === '3s', 'a later edit pushed', 10_000);
    } finally {
      watch.stop();
    }
  });
});
