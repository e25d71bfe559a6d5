/**
 * A canary shift as Flagger and Argo Rollouts make it: the HTTPRoute's backendRefs weights
 * change in the watched config, and new calls follow the new weights (the route is applied like
 * any config change: validated, compiled, swapped in).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { nextConfig } from '../helpers/mesh-events.ts';
import { startUpstream } from '../helpers/upstreams.ts';

const config = (v1: number, v2: number, w1: number, w2: number) => `apiVersion: v1
kind: Service
metadata: {name: app}
spec: {selector: {app: app}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: app-primary}
spec: {selector: {app: app, track: primary}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: app-canary}
spec: {selector: {app: app, track: canary}, ports: [{name: http, port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: primary}
spec: {address: 127.0.0.1, ports: {http: ${v1}}, labels: {app: app, track: primary}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: canary}
spec: {address: 127.0.0.1, ports: {http: ${v2}}, labels: {app: app, track: canary}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app}
spec:
  parentRefs: [{group: "", kind: Service, name: app, port: 80}]
  rules:
  - backendRefs:
    - {name: app-primary, port: 80, weight: ${w1}}
    - {name: app-canary, port: 80, weight: ${w2}}
`;

describe('HTTPRoute weights changed in a watched file', () => {
  it('new calls follow the new weights (100/0, then 0/100)', async () => {
    const primary = await startUpstream('primary');
    const canary = await startUpstream('canary');
    const dir = await mkdtemp(join(tmpdir(), 'meshlet-gamma-reload-'));
    await writeFile(join(dir, 'app.yaml'), config(primary.port, canary.port, 100, 0));
    const mesh = await createMesh({ service: 'web', config: dir });
    try {
      const bodies = async () => {
        const out = new Set<string>();
        for (let i = 0; i < 20; i++) out.add(await (await mesh.fetch('http://app/')).text());
        return [...out];
      };
      assert.deepEqual(await bodies(), ['primary']);
      const applied = nextConfig(mesh);
      await writeFile(join(dir, 'app.yaml'), config(primary.port, canary.port, 0, 100));
      await applied;
      assert.deepEqual(await bodies(), ['canary']);
    } finally {
      await mesh.close();
      await primary.close();
      await canary.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
