/**
 * An embedded mesh's first reload reuses createMesh's work: the first load goes through the same
 * caches as the reloads after it, so a change to one file after start-up validates and compiles
 * that file's resources only — the other files' resources are the very objects of the first
 * load (before, the first reload started from empty caches and made every resource again).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createMesh } from '../../src/index.ts';

function serviceEntry(name: string, port: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name}, namespace: default }
spec:
  hosts: [${name}.example]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{ number: ${port}, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1 }]
`;
}

test('the first reload after createMesh reuses the resources of the files that did not change', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-reuse-'));
  try {
    for (let i = 0; i < 5; i++) writeFileSync(join(dir, `se-${i}.yaml`), serviceEntry(`svc-${i}`, 80));
    const mesh = await createMesh({ service: 'client', config: dir, watch: false, logger: { warn: () => undefined } });
    try {
      const before = new Map(mesh.snapshot.resources.map((r) => [r.metadata.name, r]));
      writeFileSync(join(dir, 'se-2.yaml'), serviceEntry('svc-2', 8080));
      assert.equal(await mesh.reload(), true);
      const after = mesh.snapshot.resources;
      assert.equal(after.length, 5);
      const remade = after.filter((r) => before.get(r.metadata.name) !== r).map((r) => r.metadata.name);
      assert.deepEqual(remade, ['svc-2']);
    } finally {
      await mesh.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
