/**
 * A test runner's fake timers — `vi.useFakeTimers()` (Vitest fakes setTimeout, setImmediate,
 * setInterval, Date and performance on `globalThis`), `jest.useFakeTimers()` — installed before
 * `createMesh`: the mesh must still come up. Its config is compiled in slices with a turn of the
 * event loop between them, and those turns are not time: were they taken with the global
 * `setImmediate`, a faked one would never run them and `createMesh` would never resolve (a test
 * that hangs until the runner's timeout, with nothing to say why). Time itself (timeouts,
 * backoff) is the mesh's clock's, which fake timers may drive (docs/testing.md).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as realSetTimeout } from 'node:timers/promises';
import { after, test } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';

const SE = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'ServiceEntry',
  metadata: { name: 'reviews' },
  spec: { hosts: ['reviews'], ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }], resolution: 'STATIC', endpoints: [{ address: '127.0.0.1' }] },
};
const dir = mkdtempSync(join(tmpdir(), 'meshlet-fake-timers-'));
writeFileSync(join(dir, 'reviews.json'), JSON.stringify(SE));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `fn` with the global setImmediate replaced by one that never runs its callback, as a fake timer holds it until the test advances time. */
async function withHeldImmediates<T>(fn: () => Promise<T>): Promise<T | 'hung'> {
  const real = globalThis.setImmediate;
  globalThis.setImmediate = ((): NodeJS.Immediate => ({}) as NodeJS.Immediate) as unknown as typeof setImmediate;
  try {
    return await Promise.race([fn(), realSetTimeout(5000, 'hung' as const)]);
  } finally {
    globalThis.setImmediate = real;
  }
}

for (const [name, config] of [
  ['resource objects', [SE]],
  ['a directory of config files', dir],
] as const) {
  test(`createMesh with ${name} resolves while the global setImmediate is faked`, async () => {
    const mesh = await withHeldImmediates(() => createMesh({ service: 'productpage', config, watch: false }));
    assert.notEqual(mesh, 'hung', 'createMesh never resolved');
    assert.match(String((mesh as Mesh).explain({ url: 'http://reviews:9080/' })), /reviews/);
    const reloaded = await withHeldImmediates(() => (mesh as Mesh).reload());
    assert.notEqual(reloaded, 'hung', 'mesh.reload() never resolved');
    await (mesh as Mesh).close();
  });
}
