/**
 * A config change that only changes an endpoint's weight (same address and port) takes effect:
 * the endpoint keeps its state (in-flight count, ejection) but balances with its new weight.
 * Before, the per-endpoint state kept the weight it was first created with, so a ServiceEntry
 * or WorkloadEntry weight change was ignored until the endpoint left and came back.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { stringify } from 'yaml';
import { createMesh } from '../../src/index.ts';
import { call, destinationRule, startUpstream, type Upstream } from '../helpers/upstreams.ts';

const ups: Upstream[] = [];
const dir = mkdtempSync(join(tmpdir(), 'meshlet-weight-'));
after(async () => {
  await Promise.all(ups.map((u) => u.close()));
  rmSync(dir, { recursive: true, force: true });
});

function config(a: Upstream, b: Upstream, weights: [number, number]): string {
  const se = {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'svc', namespace: 'default' },
    spec: {
      hosts: ['svc.example'],
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      ports: [{ number: 80, name: 'http', protocol: 'HTTP' }],
      endpoints: [
        { address: a.host, ports: { http: a.port }, weight: weights[0] },
        { address: b.host, ports: { http: b.port }, weight: weights[1] },
      ],
    },
  };
  const dr = destinationRule('svc', 'svc.example', { trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } } });
  return [se, dr].map((d) => stringify(d)).join('---\n');
}

test('changing an endpoint weight in place re-weights round robin on the next call', async () => {
  const a = await startUpstream('a');
  const b = await startUpstream('b');
  ups.push(a, b);
  const file = join(dir, 'mesh.yaml');
  writeFileSync(file, config(a, b, [1, 1]));
  const mesh = await createMesh({ service: 'client', config: file, watch: false, logger: { warn: () => undefined } });
  try {
    const count = async (n: number) => {
      const hits: Record<string, number> = { a: 0, b: 0 };
      for (let i = 0; i < n; i++) {
        const r = await call(mesh, 'http://svc.example/');
        hits[r.body] = (hits[r.body] ?? 0) + 1;
      }
      return hits;
    };
    assert.deepEqual(await count(10), { a: 5, b: 5 });
    writeFileSync(file, config(a, b, [1, 4]));
    assert.equal(await mesh.reload(), true);
    // Weighted round robin is exact over whole cycles: 1 + 4 = 5 calls per cycle.
    assert.deepEqual(await count(20), { a: 4, b: 16 });
    assert.match(String(mesh.explain({ url: 'http://svc.example/' })), /ROUND_ROBIN \(weighted EDF\)/);
  } finally {
    await mesh.close();
  }
});
