/**
 * `mesh.close()` bounds every call in flight by `closeTimeoutMs` — also a call to a cluster that a
 * reload removed while the call was running. Such a cluster's state leaves the pipeline at once
 * (its pools close 30 s later, so its calls can finish); close() must still wait for those calls
 * and cancel them when the grace period ends, and close the pools, instead of returning at once
 * and leaving the call (and its connection, which keeps the process alive) running after close().
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { request } from 'undici';
import { createMesh, isMeshletError, ManualClock } from '../../src/index.ts';
import { nextConfig } from '../helpers/mesh-events.ts';
import { serviceEntry, startUpstream } from '../helpers/upstreams.ts';

describe('mesh.close() and clusters a reload removed', () => {
  it('a call in flight to a cluster the config no longer has is waited for up to closeTimeoutMs, then cancelled', async () => {
    const hung = await startUpstream('hung', () => new Promise(() => {}));
    const dir = mkdtempSync(join(tmpdir(), 'meshlet-removed-'));
    const write = (names: string[]) =>
      writeFileSync(join(dir, 'mesh.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: names.map((n) => serviceEntry(n, `${n}.default.svc.cluster.local`, 80, [{ port: hung.port }])) }));
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
      write(['kept']);
      await applied;

      let state = 'closing';
      const closed = mesh.close().then(() => (state = 'closed'));
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(state, 'closing', 'close() waits for the call to the removed cluster while closeTimeoutMs has not passed');
      clock.advance(5000);
      await closed;
      assert.equal(await pending, 'meshlet MESHLET_ERR_CLOSED');
    } finally {
      await mesh.close();
      await hung.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
