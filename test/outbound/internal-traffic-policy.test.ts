/**
 * A Kubernetes Service with `internalTrafficPolicy: Local`, through real calls: only the endpoints
 * on the caller's node get calls, the node being the `kubernetes.io/hostname` label of the mesh and
 * of the endpoints (istiod's EDS filter compares the proxy's node name with the endpoint's); with
 * no endpoint on the caller's node the call fails as Envoy's does (503, UH); a mesh and endpoints
 * that name no node keep every endpoint; without the policy, every endpoint is used.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh, seededRandom } from '../../src/index.ts';
import { call, startUpstream, type Upstream } from '../helpers/upstreams.ts';

const service = (name: string, local: boolean) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default' },
  spec: { ports: [{ name: 'http', port: 9080 }], selector: { app: name }, ...(local ? { internalTrafficPolicy: 'Local' } : {}) },
});
const workloadEntry = (name: string, app: string, port: number, node?: string) => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'WorkloadEntry',
  metadata: { name, namespace: 'default' },
  spec: { address: '127.0.0.1', ports: { http: port }, labels: { app, ...(node === undefined ? {} : { 'kubernetes.io/hostname': node }) } },
});

describe('internalTrafficPolicy: Local, through real calls', () => {
  const ups: Record<string, Upstream> = {};
  const meshes: Mesh[] = [];
  let config: object[];

  before(async () => {
    for (const n of ['agent-1', 'agent-2', 'open-1', 'open-2', 'anon-a', 'anon-b', 'external']) ups[n] = await startUpstream(n);
    const up = (n: string) => (ups[n] as Upstream).port;
    config = [
      service('agent', true),
      workloadEntry('agent-1', 'agent', up('agent-1'), 'node-1'),
      workloadEntry('agent-2', 'agent', up('agent-2'), 'node-2'),
      service('open', false),
      workloadEntry('open-1', 'open', up('open-1'), 'node-1'),
      workloadEntry('open-2', 'open', up('open-2'), 'node-2'),
      service('anon', true),
      // An ExternalName Service is a DNS alias: the policy does not apply (istiod builds no endpoints for it).
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'ext', namespace: 'default' }, spec: { type: 'ExternalName', externalName: 'localhost', ports: [{ name: 'http', port: up('external') }], internalTrafficPolicy: 'Local' } },
      workloadEntry('anon-a', 'anon', up('anon-a')),
      workloadEntry('anon-b', 'anon', up('anon-b')),
    ];
  });

  after(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    await Promise.all(Object.values(ups).map((u) => u.close()));
  });

  async function mesh(node?: string): Promise<Mesh> {
    const m = await createMesh({ service: 'client', labels: { app: 'client', ...(node === undefined ? {} : { 'kubernetes.io/hostname': node }) }, random: seededRandom(5), config });
    meshes.push(m);
    return m;
  }

  async function served(m: Mesh, url: string): Promise<string[]> {
    const seen = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const r = await call(m, url);
      seen.add(r.status === 200 ? r.body : `${r.status} ${r.flags}`);
    }
    return [...seen].sort();
  }

  it('a caller on node-1 reaches only the endpoint on node-1; without the policy, both', async () => {
    const m = await mesh('node-1');
    assert.deepEqual(await served(m, 'http://agent:9080/'), ['agent-1']);
    assert.deepEqual(await served(m, 'http://open:9080/'), ['open-1', 'open-2']);
  });

  it('an ExternalName Service with the policy still reaches what it names', async () => {
    assert.deepEqual(await served(await mesh('node-2'), `http://ext:${(ups.external as Upstream).port}/`), ['external']);
  });

  it('a caller on a node with no endpoint gets 503 UH (explain says why); one on node-2 reaches node-2', async () => {
    const m3 = await mesh('node-3');
    assert.deepEqual(await served(m3, 'http://agent:9080/'), ['503 UH']);
    assert.match(String(m3.explain({ url: 'http://agent:9080/' })), /endpoints: internalTrafficPolicy Local: only endpoints on node node-3 — none there \(503 UH\)/);
    assert.deepEqual(await served(await mesh('node-2'), 'http://agent:9080/'), ['agent-2']);
  });

  it('a caller and endpoints that name no node: every endpoint (and a caller that names none does not reach endpoints on a named node)', async () => {
    const m = await mesh();
    assert.deepEqual(await served(m, 'http://anon:9080/'), ['anon-a', 'anon-b']);
    assert.deepEqual(await served(m, 'http://agent:9080/'), ['503 UH']);
  });
});
