import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { checkDocuments } from '../../../src/config/load-config.ts';
import { parseText } from '../../../src/config/load.ts';
import { IssueList } from '../../../src/config/issues.ts';
import { isRelevant, PayloadCache } from '../../../src/control-plane-server/filter.ts';
import { contentVersion } from '../../../src/routing/compile.ts';
import { startTestServer, type TestServer, watch } from './helpers.ts';

const YAML = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: public, namespace: shop}
spec: {hosts: [api.example.com], ports: [{number: 443, name: https, protocol: HTTPS}], resolution: DNS}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: shop}
spec: {hosts: [db.shop.svc.cluster.local], exportTo: ['.'], ports: [{number: 5432, name: tcp, protocol: TCP}], resolution: STATIC}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: to-prod, namespace: shop}
spec: {host: api.example.com, exportTo: [prod]}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: mesh, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: v1-only, namespace: shop}
spec: {selector: {matchLabels: {version: v1}}, action: DENY, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: shop-wide, namespace: shop}
spec: {action: ALLOW, rules: [{}]}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: other-ns, namespace: prod}
spec: {}
`;

function load() {
  const issues = new IssueList();
  const r = checkDocuments(parseText(YAML, 'f.yaml', issues), { analysis: 'off' }, issues);
  assert.deepEqual(issues.ofLevel('error').map(String), []);
  return r.resources;
}

describe('config filtering', () => {
  const resources = load();
  const names = (ns: string, labels: Record<string, string>) =>
    resources
      .filter((r) => isRelevant(r, { namespace: ns, labels }))
      .map((r) => r.metadata.name)
      .sort();

  const cases: [string, string, Record<string, string>, string[]][] = [
    ['own namespace, v1', 'shop', { version: 'v1' }, ['mesh', 'private', 'public', 'shop-wide', 'to-prod', 'v1-only'].filter((n) => n !== 'to-prod')],
    ['own namespace, v2: selector does not match', 'shop', { version: 'v2' }, ['mesh', 'private', 'public', 'shop-wide']],
    ['prod: exportTo [prod] visible, exportTo [.] not, shop policies not', 'prod', {}, ['mesh', 'other-ns', 'public', 'to-prod']],
    ['dev: only exported-to-all and root policies', 'dev', { version: 'v1' }, ['mesh', 'public']],
  ];
  for (const [title, ns, labels, want] of cases) {
    it(title, () => assert.deepEqual(names(ns, labels), [...want].sort()));
  }

  it('custom root namespace', () => {
    const r = resources.find((x) => x.metadata.name === 'mesh')!;
    assert.equal(isRelevant(r, { namespace: 'dev', labels: {} }, 'mesh-root'), false);
  });

  it('PayloadCache serializes once per (version, namespace, labels)', () => {
    const cache = new PayloadCache();
    const state = { version: contentVersion(resources), resources, findings: [] };
    const a = cache.config(state, { namespace: 'shop', labels: { version: 'v1' } });
    const b = cache.config(state, { namespace: 'shop', labels: { version: 'v1' } });
    assert.equal(a, b, 'the same Buffer is shared');
    cache.config(state, { namespace: 'shop', labels: { version: 'v2' } });
    assert.equal(cache.size, 2);
    cache.config({ version: 'other', resources, findings: [] }, { namespace: 'shop', labels: {} });
    assert.equal(cache.size, 1, 'a new version drops the old payloads');
  });
});

describe('filtering on the watch stream', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ 'mesh.yaml': YAML }, { analysis: 'off' });
  });
  after(() => s.close());

  it('sends each workload only what applies to its namespace and labels', async () => {
    const get = async (service: string, ns: string, labels: string) => {
      const token = await s.cp.mintToken({ service, namespace: ns });
      const w = await watch(s.url, `service=${service}&namespace=${ns}&labels=${labels}`, { token });
      const e = await w.next('config');
      w.close();
      return e.data.resources.map((r: { metadata: { name: string } }) => r.metadata.name).sort();
    };
    assert.deepEqual(await get('cart', 'shop', 'version=v1'), ['mesh', 'private', 'public', 'shop-wide', 'v1-only']);
    assert.deepEqual(await get('cart', 'shop', 'version=v2'), ['mesh', 'private', 'public', 'shop-wide']);
    assert.deepEqual(await get('web', 'prod', ''), ['mesh', 'other-ns', 'public', 'to-prod']);
  });
});
