/**
 * mesh.register() through WorkloadGroups, end to end: the control plane serves Bookinfo-style
 * config (a Kubernetes Service for reviews, a DestinationRule with version subsets, a
 * VirtualService sending jason to v2); two reviews instances register, one through the
 * default group (named like the service, template version v1), one naming the `reviews-v2`
 * group; the Service selects both, and the subsets pick them by the labels their groups gave.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { MeshletError } from '../../src/index.ts';
import { startUpstream, type Upstream } from '../helpers/upstreams.ts';
import { quietLogger, startTestControlPlane, type TestControlPlane, until } from './client-helpers.ts';

const NET = 'networking.istio.io/v1';
const config = [
  { apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews', namespace: 'default' }, spec: { ports: [{ name: 'http', port: 9080 }], selector: { app: 'reviews' } } },
  { apiVersion: NET, kind: 'WorkloadGroup', metadata: { name: 'reviews', namespace: 'default' }, spec: { template: { labels: { version: 'v1' }, serviceAccount: 'bookinfo-reviews' } } },
  { apiVersion: NET, kind: 'WorkloadGroup', metadata: { name: 'reviews-v2', namespace: 'default' }, spec: { metadata: { labels: { version: 'v2' } }, template: { ports: { http: 9080 } } } },
  { apiVersion: NET, kind: 'DestinationRule', metadata: { name: 'reviews', namespace: 'default' }, spec: { host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] } },
  {
    apiVersion: NET,
    kind: 'VirtualService',
    metadata: { name: 'reviews', namespace: 'default' },
    spec: {
      hosts: ['reviews'],
      http: [
        { match: [{ headers: { 'end-user': { exact: 'jason' } } }], route: [{ destination: { host: 'reviews', subset: 'v2' } }] },
        { route: [{ destination: { host: 'reviews', subset: 'v1' } }] },
      ],
    },
  },
];

let t: TestControlPlane;
let v1: Upstream;
let v2: Upstream;
before(async () => {
  t = await startTestControlPlane({ bookinfo: config });
  v1 = await startUpstream('v1');
  v2 = await startUpstream('v2');
});
after(async () => {
  await t.close();
  await v1.close();
  await v2.close();
});

function endpoints(mesh: Mesh, subset: string): string[] {
  const cluster = mesh.snapshot.clusters.get(`outbound|9080|${subset}|reviews.default.svc.cluster.local`);
  return (cluster?.endpoints ?? []).map((e) => e.key);
}

test('instances registered through WorkloadGroups are selected by the Service and land in the subsets their groups label', async () => {
  // The group's template names the service account its workloads run as; the token proves it.
  const reviewsToken = await t.cp.mintToken({ service: 'reviews', namespace: 'default', serviceAccount: 'bookinfo-reviews' });
  const productpage = await createMesh({ service: 'productpage', controlPlane: t.cp.url, token: await t.cp.mintToken({ service: 'productpage', namespace: 'default' }), logger: quietLogger });
  const first = await createMesh({ service: 'reviews', labels: {}, controlPlane: t.cp.url, token: reviewsToken, drainMs: 0, identity: 'none', logger: quietLogger });
  const second = await createMesh({ service: 'reviews', labels: {}, controlPlane: t.cp.url, token: reviewsToken, drainMs: 0, identity: 'none', logger: quietLogger });
  try {
    // The default group (named like the service) gives version v1; the named one version v2 and the port.
    const a = await first.register({ ports: { http: v1.port }, address: '127.0.0.1' });
    assert.match(a.name, new RegExp(`^reviews-127-0-0-1-${v1.port}-[0-9a-f]{10}$`));
    const b = await second.register({ group: 'reviews-v2', ports: { http: v2.port }, address: '127.0.0.1' });
    assert.match(b.name, new RegExp(`^reviews-v2-127-0-0-1-${v2.port}-[0-9a-f]{10}$`));
    await until(() => endpoints(productpage, 'v1').length === 1 && endpoints(productpage, 'v2').length === 1, 'productpage sees both subsets');
    assert.deepEqual(endpoints(productpage, 'v1'), [`127.0.0.1:${v1.port}`]);
    assert.deepEqual(endpoints(productpage, 'v2'), [`127.0.0.1:${v2.port}`]);
    const jason = await productpage.fetch('http://reviews:9080/', { headers: { 'end-user': 'jason' } });
    assert.equal(await jason.text(), 'v2');
    const other = await productpage.fetch('http://reviews:9080/');
    assert.equal(await other.text(), 'v1');

    // A group that does not exist is refused at once, with the control plane's reason.
    await assert.rejects(
      () => second.register({ group: 'reviews-v7', ports: { http: v2.port }, address: '127.0.0.1' }),
      (e: unknown) => e instanceof MeshletError && e.code === 'MESHLET_ERR_CONTROL_PLANE' && /WorkloadGroup default\/reviews-v7 does not exist/.test(e.message),
    );
    // Ports may come from the group's template alone; without either the client refuses before asking.
    const c = await second.register({ group: 'reviews-v2', address: '127.0.0.2' });
    assert.match(c.name, /^reviews-v2-127-0-0-2-9080-[0-9a-f]{10}$/);
    await c.close();
    await assert.rejects(() => second.register({ address: '127.0.0.3' }), /`ports` is required \(unless `group` names a WorkloadGroup whose template has ports\)/);
  } finally {
    await first.close();
    await second.close();
    await productpage.close();
  }
});

test("a registration whose token proves another service account than the group's template is refused, as istiod's auto-registration refuses it; the entry names the token's account", async () => {
  const other = await createMesh({ service: 'reviews', controlPlane: t.cp.url, token: await t.cp.mintToken({ service: 'reviews', namespace: 'default' }), drainMs: 0, identity: 'none', logger: quietLogger });
  const own = await createMesh({ service: 'reviews', controlPlane: t.cp.url, token: await t.cp.mintToken({ service: 'reviews', namespace: 'default', serviceAccount: 'bookinfo-reviews' }), drainMs: 0, identity: 'none', logger: quietLogger });
  try {
    await assert.rejects(() => other.register({ ports: { http: 9080 }, address: '127.0.0.1' }), /WorkloadGroup default\/reviews gives its workloads service account "bookinfo-reviews", but the workload's is "default"/);
    const reg = await own.register({ ports: { http: 9080 }, address: '127.0.0.1' });
    const rec = t.cp.status();
    assert.equal(rec.registered, 1);
    await reg.close();
  } finally {
    await other.close();
    await own.close();
  }
});

test('mesh.register refuses bad options before asking the control plane', async () => {
  const token = await t.cp.mintToken({ service: 'reviews', namespace: 'default' });
  const mesh = await createMesh({ service: 'reviews', controlPlane: t.cp.url, token, drainMs: 0, logger: quietLogger });
  try {
    const rows: [string, unknown, RegExp][] = [
      ['no ports and no group', {}, /`ports` is required \(unless `group` names a WorkloadGroup/],
      ['empty ports and no group', { ports: {} }, /`ports` is required/],
      ['ports as a list', { ports: [9080] }, /`ports` must map port names to numbers/],
      ['a port out of range', { ports: { http: 70000 } }, /port "http" must be an integer 1..65535, got 70000/],
      ['an empty group', { group: '', ports: { http: 1 } }, /`group` must be a WorkloadGroup name, got ""/],
      ['a group that is not a string', { group: 7 }, /`group` must be a WorkloadGroup name, got 7/],
      ['a misspelt option', { ports: { http: 1 }, lables: { version: 'v2' } }, /^mesh\.register: unknown option "lables" \(did you mean "labels"\?\)$/],
    ];
    for (const [name, options, error] of rows) {
      await assert.rejects(() => mesh.register(options as never), (e: unknown) => e instanceof MeshletError && e.code === 'MESHLET_ERR_INVALID_ARG' && error.test(e.message), name);
    }
    assert.equal(t.cp.status().registered, 0);
  } finally {
    await mesh.close();
  }
});
