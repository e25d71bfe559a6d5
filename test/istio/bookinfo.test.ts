/**
 * Istio's Bookinfo sample, unchanged (test/fixtures/istio/bookinfo, copied from Istio with a
 * two-line header): the Kubernetes manifest (Services, ServiceAccounts, Deployments) and every
 * file of samples/bookinfo/networking load, with loadConfig, createMesh and `meshlet validate`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load-config.ts';
import { ServiceRegistry } from '../../src/config/registry.ts';
import { createMesh, type Mesh, seededRandom } from '../../src/index.ts';
import { call, startUpstream, type Upstream } from '../helpers/upstreams.ts';

const DIR = fileURLToPath(new URL('../fixtures/istio/bookinfo/', import.meta.url));
const KUBE = `${DIR}platform/kube/bookinfo.yaml`;
const NETWORKING = `${DIR}networking/`;
const DR_ALL = `${NETWORKING}destination-rule-all.yaml`;
const NETWORKING_FILES = readdirSync(NETWORKING).filter((f) => f.endsWith('.yaml')).sort();
const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

const SERVICES = ['details', 'productpage', 'ratings', 'reviews'];
const fqdn = (s: string) => `${s}.default.svc.cluster.local`;

describe('Bookinfo (Istio samples/bookinfo, unchanged)', () => {
  it('has every networking file of the sample', () => {
    assert.equal(NETWORKING_FILES.length, 21);
    for (const f of [KUBE, ...NETWORKING_FILES.map((n) => NETWORKING + n)]) assert.match(readFileSync(f, 'utf8'), /^# Copied unchanged from Istio .*\n# at commit 86c9f01f/);
  });

  it('loads the Kubernetes manifest: 4 Services, one notice per skipped kind', async () => {
    const { ok, resources, issues } = await loadConfig(KUBE);
    assert.ok(ok, issues.all.map(String).join('\n'));
    assert.deepEqual(resources.map((r) => r.ref).sort(), SERVICES.map((s) => `Service default/${s}`));
    assert.deepEqual(issues.all.map((i) => [i.level, i.code]), [
      ['info', 'MESHLET0003'],
      ['info', 'MESHLET0003'],
    ]);
    const [accounts, deployments] = issues.all.map(String);
    assert.match(accounts ?? '', /bookinfo\.yaml: skipped 4 ServiceAccount \(v1\): default\/bookinfo-details, default\/bookinfo-ratings, default\/bookinfo-reviews, default\/bookinfo-productpage; workload identity comes from/);
    assert.match(deployments ?? '', /bookinfo\.yaml: skipped 6 Deployment \(apps\/v1\): default\/details-v1, default\/ratings-v1, default\/reviews-v1, default\/reviews-v2, default\/reviews-v3, default\/productpage-v1; workloads run outside meshlet/);
  });

  it('puts the 4 services in the registry with their hosts, ports and protocols', async () => {
    const { resources } = await loadConfig(KUBE);
    const registry = new ServiceRegistry(resources);
    assert.deepEqual(registry.services.map((s) => s.hostname).sort(), SERVICES.map(fqdn));
    for (const s of registry.services) {
      assert.equal(s.location, 'MESH_INTERNAL');
      assert.deepEqual(s.ports, [{ number: 9080, name: 'http', protocol: 'HTTP' }]);
      assert.deepEqual(s.workloads, [], 'the Deployments are skipped, so no endpoints yet');
    }
  });

  for (const file of NETWORKING_FILES) {
    it(`applies networking/${file} with the manifest without errors`, async () => {
      // The sample's tasks apply destination-rule-all.yaml before any VirtualService that names
      // subsets; files that bring their own DestinationRules replace it (kubectl apply).
      const text = readFileSync(NETWORKING + file, 'utf8');
      const paths = /kind: DestinationRule/.test(text) ? [KUBE, NETWORKING + file] : [KUBE, DR_ALL, NETWORKING + file];
      const { ok, issues } = await loadConfig(paths);
      assert.ok(ok, issues.ofLevel('error').map(String).join('\n'));
      const notices = issues.all.filter((i) => i.code === 'MESHLET0003');
      const kinds = notices.map((i) => /skipped \d+ (\w+)/.exec(i.message)?.[1]);
      assert.deepEqual(kinds, /kind: Gateway/.test(text) ? ['ServiceAccount', 'Deployment', 'Gateway'] : ['ServiceAccount', 'Deployment']);
    });
  }

  it('resolves every subset of destination-rule-all.yaml', async () => {
    const { resources } = await loadConfig([KUBE, DR_ALL]);
    const mesh = await createMesh({ service: 'productpage', config: [...resources], watch: false });
    try {
      const defined: Record<string, string[]> = { productpage: ['v1'], reviews: ['v1', 'v2', 'v3'], ratings: ['v1', 'v2', 'v2-mysql', 'v2-mysql-vm'], details: ['v1', 'v2'] };
      for (const [svc, subsets] of Object.entries(defined)) {
        for (const subset of subsets) {
          const vs = { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: svc, namespace: 'default' }, spec: { hosts: [svc], http: [{ route: [{ destination: { host: svc, subset } }] }] } };
          const m = await createMesh({ service: 'productpage', config: [...resources, vs], watch: false });
          try {
            const target = m.snapshot.routes.route({ method: 'GET', scheme: 'http', authority: `${svc}:9080`, path: '/', headers: {} }, 0);
            assert.ok(typeof target === 'object' && target.target !== undefined, `${svc}|${subset}`);
            assert.equal(target.target.missing, undefined, `${svc}|${subset}`);
            assert.equal(target.target.cluster?.name, `outbound|9080|${subset}|${fqdn(svc)}`);
          } finally {
            await m.close();
          }
        }
      }
    } finally {
      await mesh.close();
    }
  });

  it('`meshlet validate` accepts the manifest with the networking files: exit 0, the notices printed', () => {
    const files = ['bookinfo-gateway.yaml', 'certmanager-gateway.yaml', 'destination-rule-all.yaml', 'egress-rule-google-apis.yaml', 'virtual-service-all-v1.yaml'].map((f) => NETWORKING + f);
    const r = spawnSync(process.execPath, [MAIN, 'validate', `${DIR}platform/kube`, ...files], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^info +.*bookinfo\.yaml: skipped 4 ServiceAccount \(v1\)/m);
    assert.match(r.stdout, /^info +.*bookinfo\.yaml: skipped 6 Deployment \(apps\/v1\)/m);
    assert.match(r.stdout, /^warning +.*bookinfo-gateway\.yaml: skipped 2 Gateway \(networking\.istio\.io\/v1\) \(in 2 files\): default\/bookinfo-gateway, istio-system\/cert-manager-gateway; meshlet runs inside workloads/m);
    assert.match(r.stdout, /^0 error\(s\), \d+ warning\(s\), \d+ info\(s\); 17 valid resource\(s\)$/m);
  });
});

describe('Bookinfo through real calls: the unchanged files plus WorkloadEntries for the pods', () => {
  let v1: Upstream;
  let v2: Upstream;
  let v3: Upstream;
  let mesh: Mesh;

  before(async () => {
    [v1, v2, v3] = (await Promise.all(['reviews-v1', 'reviews-v2', 'reviews-v3'].map((n) => startUpstream(n)))) as [Upstream, Upstream, Upstream];
    // bookinfo-gateway.yaml's VirtualService (hosts "*", gateways [bookinfo-gateway]) must not touch mesh calls.
    const { ok, resources, issues } = await loadConfig([KUBE, DR_ALL, `${NETWORKING}virtual-service-reviews-test-v2.yaml`, `${NETWORKING}bookinfo-gateway.yaml`]);
    assert.ok(ok, issues.all.map(String).join('\n'));
    // What the skipped Deployments would run: one WorkloadEntry per pod, labelled as the pods are.
    const pods = [v1, v2, v3].map((u, i) => ({
      apiVersion: 'networking.istio.io/v1',
      kind: 'WorkloadEntry',
      metadata: { name: `reviews-v${i + 1}`, namespace: 'default' },
      spec: { address: '127.0.0.1', ports: { http: u.port }, labels: { app: 'reviews', version: `v${i + 1}` } },
    }));
    mesh = await createMesh({ service: 'productpage', labels: { app: 'productpage', version: 'v1' }, config: [...resources, ...pods], random: seededRandom(1), watch: false });
  });

  after(async () => {
    await mesh?.close();
    await Promise.all([v1, v2, v3].map((u) => u?.close()));
  });

  it('routes jason to reviews v2 and everyone else to v1 (virtual-service-reviews-test-v2.yaml)', async () => {
    for (let i = 0; i < 4; i++) {
      assert.equal((await call(mesh, 'http://reviews:9080/reviews/0', { headers: { 'end-user': 'jason' } })).body, 'reviews-v2');
      assert.equal((await call(mesh, 'http://reviews:9080/reviews/0')).body, 'reviews-v1');
    }
    assert.equal(v3.hits, 0);
  });

  it('ignores the gateway-bound VirtualService: productpage has no endpoints, and no route sends its paths elsewhere', async () => {
    const res = await call(mesh, 'http://productpage:9080/productpage');
    assert.equal(res.status, 503);
    assert.equal(res.flags, 'UH');
    assert.equal(mesh.snapshot.routes.virtualHost('productpage:9080')?.virtualService, undefined);
  });
});
