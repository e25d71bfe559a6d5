import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { checkDocuments } from '../../../src/config/load-config.ts';
import { parseText } from '../../../src/config/load.ts';
import { IssueList } from '../../../src/config/issues.ts';
import { isRelevant, PayloadCache, relevantResources } from '../../../src/control-plane-server/filter.ts';
import { contentVersion } from '../../../src/routing/compile.ts';
import { DestinationRuleIndex } from '../../../src/config/destination-policy.ts';
import type { AnyResource } from '../../../src/config/resource.ts';
import { api, startTestServer, type TestServer, watch } from './helpers.ts';

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
kind: PeerAuthentication
metadata: {name: shop-db, namespace: shop}
spec: {selector: {matchLabels: {app: db}}, mtls: {mode: STRICT}, portLevelMtls: {5432: {mode: DISABLE}}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: root-deny, namespace: istio-system}
spec: {action: DENY, rules: [{to: [{operation: {paths: [/admin]}}]}]}
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
    // PeerAuthentications of every namespace go everywhere (auto-mTLS reads the destination's).
    ['own namespace, v1', 'shop', { version: 'v1' }, ['mesh', 'private', 'public', 'root-deny', 'shop-db', 'shop-wide', 'v1-only']],
    ['own namespace, v2: selector does not match', 'shop', { version: 'v2' }, ['mesh', 'private', 'public', 'root-deny', 'shop-db', 'shop-wide']],
    ['prod: exportTo [prod] visible, exportTo [.] not, shop policies not (but its PeerAuthentication)', 'prod', {}, ['mesh', 'other-ns', 'public', 'root-deny', 'shop-db', 'to-prod']],
    ['dev: only exported-to-all, root policies and every PeerAuthentication', 'dev', { version: 'v1' }, ['mesh', 'public', 'root-deny', 'shop-db']],
  ];
  for (const [title, ns, labels, want] of cases) {
    it(title, () => assert.deepEqual(names(ns, labels), [...want].sort()));
  }

  it('custom root namespace', () => {
    const r = resources.find((x) => x.metadata.name === 'root-deny')!;
    assert.equal(isRelevant(r, { namespace: 'dev', labels: {} }, 'mesh-root'), false);
    assert.equal(isRelevant(r, { namespace: 'dev', labels: {} }), true);
  });

  it('an HTTPRoute with a Service parent goes to every workload (the route compiler applies it to its own namespace and, as a producer route, to all)', () => {
    const issues = new IssueList();
    const text = `apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{name: http, port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: shop}
spec: {parentRefs: [{group: "", kind: Service, name: api}], rules: [{backendRefs: [{name: api, port: 80}]}]}
`;
    const route = checkDocuments(parseText(text, 'r.yaml', issues), { analysis: 'off' }, issues).resources.find((r) => r.kind === 'HTTPRoute');
    assert.ok(route !== undefined, issues.all.map(String).join('\n'));
    assert.equal(isRelevant(route, { namespace: 'dev', labels: {} }), true);
  });

  it('a consumer HTTPRoute (its parent Service in another namespace) goes to its own namespace only', () => {
    const issues = new IssueList();
    const text = `apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{name: http, port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: web}
spec: {parentRefs: [{group: "", kind: Service, name: api, namespace: shop}], rules: [{backendRefs: [{name: api, namespace: shop, port: 80}]}]}
`;
    const route = checkDocuments(parseText(text, 'r.yaml', issues), { analysis: 'off' }, issues).resources.find((r) => r.kind === 'HTTPRoute');
    assert.ok(route !== undefined, issues.all.map(String).join('\n'));
    assert.equal(isRelevant(route, { namespace: 'web', labels: {} }), true);
    assert.equal(isRelevant(route, { namespace: 'shop', labels: {} }), false);
    assert.equal(isRelevant(route, { namespace: 'dev', labels: {} }), false);
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

  const get = async (service: string, ns: string, query: string, tokenLabels?: Record<string, string>) => {
    const token = await s.cp.mintToken({ service, namespace: ns, labels: tokenLabels });
    const w = await watch(s.url, `service=${service}&namespace=${ns}&labels=${query}`, { token });
    const hello = await w.next('hello');
    const e = await w.next('config');
    w.close();
    return { names: e.data.resources.map((r: { metadata: { name: string } }) => r.metadata.name).sort(), hello: hello.data };
  };

  it('sends each workload only what applies to its namespace and the labels its token proves', async () => {
    const v1 = await get('cart', 'shop', 'version=v1', { version: 'v1' });
    assert.deepEqual(v1.names, ['mesh', 'private', 'public', 'root-deny', 'shop-db', 'shop-wide', 'v1-only']);
    assert.deepEqual(v1.hello.labels, { version: 'v1', app: 'cart' });
    assert.equal(v1.hello.ignoredLabels, undefined);
    assert.deepEqual((await get('cart', 'shop', 'version=v2', { version: 'v2' })).names, ['mesh', 'private', 'public', 'root-deny', 'shop-db', 'shop-wide']);
    assert.deepEqual((await get('web', 'prod', '')).names, ['mesh', 'other-ns', 'public', 'root-deny', 'shop-db', 'to-prod']);
  });

  it('a query label the token does not prove does not widen what the workload is sent; hello names it as ignored', async () => {
    const claimed = await get('cart', 'shop', 'version=v1');
    assert.deepEqual(claimed.names, ['mesh', 'private', 'public', 'root-deny', 'shop-db', 'shop-wide'], 'the v1-only policy is not sent on the query’s word');
    assert.deepEqual(claimed.hello.labels, { app: 'cart' });
    assert.deepEqual(claimed.hello.ignoredLabels, ['version']);
    // The token proves app (its service) and its labels: asking them again is fine, contradicting them is 403.
    assert.deepEqual((await get('cart', 'shop', 'app=cart,version=v1', { version: 'v1' })).hello.ignoredLabels, undefined);
    const token = await s.cp.mintToken({ service: 'cart', namespace: 'shop', labels: { version: 'v2' } });
    for (const labels of ['version=v1', 'app=web']) {
      const r = await api(s.url, 'GET', `/v1/watch?service=cart&namespace=shop&labels=${labels}`, { token });
      assert.equal(r.status, 403, labels);
      assert.match(r.body.error.message, /contradicts the token, which proves (version=v2|app=cart)/);
    }
  });

  it('an admin watching for a workload is trusted with the query labels', async () => {
    const w = await watch(s.url, 'service=cart&namespace=shop&labels=version=v1', { token: s.admin });
    assert.deepEqual((await w.next('hello')).data.labels, { version: 'v1' });
    assert.ok((await w.next('config')).data.resources.some((r: { metadata: { name: string } }) => r.metadata.name === 'v1-only'));
    w.close();
  });
});

describe('WorkloadEntries in the config go to the workloads that see a service selecting them', () => {
  const yaml = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec: {hosts: [db.shop.svc.cluster.local], exportTo: ['.'], ports: [{number: 5432, name: tcp, protocol: TCP}], resolution: STATIC, workloadSelector: {labels: {app: db}}}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{port: 80, name: http}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-1, namespace: shop}
spec: {address: 10.0.0.1, labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: api-1, namespace: shop}
spec: {address: 10.0.0.2, labels: {app: api}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: api-dns, namespace: shop}
spec: {address: api.example.com, labels: {app: api}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: lonely, namespace: shop}
spec: {address: 10.0.0.3, labels: {app: nobody}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: secret-1, namespace: vault}
spec: {address: 10.0.0.4, labels: {app: secret}}
`;
  const issues = new IssueList();
  const { resources } = checkDocuments(parseText(yaml, 'f.yaml', issues), { analysis: 'off' }, issues);
  const entries = (ns: string) =>
    relevantResources(resources, { namespace: ns, labels: {} })
      .filter((r) => r.kind === 'WorkloadEntry')
      .map((r) => r.metadata.name)
      .sort();
  const rows: [string, string[]][] = [
    // db is exported to shop only; a Service selects only entries with an IP address (as the registry does).
    ['shop', ['api-1', 'db-1']],
    ['prod', ['api-1']],
    ['vault', ['api-1']],
  ];
  for (const [ns, want] of rows) it(`namespace ${ns}`, () => assert.deepEqual(entries(ns), want));
  it('isRelevant without a selection sends no WorkloadEntry', () => {
    assert.equal(isRelevant(resources.find((r) => r.metadata.name === 'api-1')!, { namespace: 'shop', labels: {} }), false);
  });
});

describe('Sidecars reach the workloads they select (workloadSelector.labels, not selector.matchLabels)', () => {
  const SIDECARS = `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: ns-default, namespace: shop}
spec: {egress: [{hosts: ["./*"]}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: for-v2, namespace: shop}
spec: {workloadSelector: {labels: {version: v2}}, egress: [{hosts: ["*/*"]}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: root-default, namespace: istio-system}
spec: {egress: [{hosts: ["./*"]}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: root-selecting, namespace: istio-system}
spec: {workloadSelector: {labels: {app: gw}}, egress: [{hosts: ["*/*"]}]}
`;
  const issues = new IssueList();
  const resources = checkDocuments(parseText(SIDECARS, 's.yaml', issues), { analysis: 'off' }, issues).resources;
  const names = (ns: string, labels: Record<string, string>) =>
    relevantResources(resources, { namespace: ns, labels })
      .map((r) => r.metadata.name)
      .sort();
  const rows: [string, string, Record<string, string>, string[]][] = [
    ['shop, v1: the namespace default (and the root default); not the v2 one', 'shop', { version: 'v1' }, ['ns-default', 'root-default']],
    ['shop, v2: the selecting one too (the mesh picks it over the default)', 'shop', { version: 'v2' }, ['for-v2', 'ns-default', 'root-default']],
    ['dev: the root default only; a root Sidecar with a selector applies in the root namespace only', 'dev', { app: 'gw' }, ['root-default']],
    ['istio-system, app=gw: its own selecting one and the default', 'istio-system', { app: 'gw' }, ['root-default', 'root-selecting']],
  ];
  it('the fixture is valid', () => assert.deepEqual(issues.ofLevel('error').map(String), []));
  for (const [title, ns, labels, want] of rows) it(title, () => assert.deepEqual(names(ns, labels), want));
  it('a custom root namespace', () => {
    assert.deepEqual(
      relevantResources(resources, { namespace: 'dev', labels: {} }, 'mesh-root').map((r) => r.metadata.name),
      [],
    );
  });
});

describe('EnvoyFilters reach the workloads they select (workloadSelector.labels, not selector.matchLabels)', () => {
  const filter = (name: string, ns: string, extra: string) => `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: ${name}, namespace: ${ns}}
spec:
${extra}  configPatches:
  - applyTo: HTTP_FILTER
    match: {context: SIDECAR_INBOUND, listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager}}}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          '@type': type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: http_local_rate_limiter
          token_bucket: {max_tokens: 10, tokens_per_fill: 10, fill_interval: 60s}
`;
  const text = [
    filter('ns-wide', 'shop', ''),
    filter('for-v2', 'shop', '  workloadSelector: {labels: {version: v2}}\n'),
    filter('root-wide', 'istio-system', ''),
    filter('root-for-v2', 'istio-system', '  workloadSelector: {labels: {version: v2}}\n'),
    filter('other-ns', 'dev', ''),
  ].join('---\n');
  const issues = new IssueList();
  const resources = checkDocuments(parseText(text, 'ef.yaml', issues), { analysis: 'off' }, issues).resources;
  const names = (ns: string, labels: Record<string, string>) =>
    relevantResources(resources, { namespace: ns, labels })
      .map((r) => r.metadata.name)
      .sort();
  it('the fixture is valid and has the five EnvoyFilters', () => {
    assert.deepEqual(issues.ofLevel('error').map(String), []);
    assert.equal(resources.length, 5);
  });
  it('shop, v1: its namespace-wide one and the root one; neither selecting v2', () => assert.deepEqual(names('shop', { version: 'v1' }), ['ns-wide', 'root-wide']));
  it('shop, v2: the selecting ones too', () => assert.deepEqual(names('shop', { version: 'v2' }), ['for-v2', 'ns-wide', 'root-for-v2', 'root-wide']));
  it('prod, v1: the root one only', () => assert.deepEqual(names('prod', { version: 'v1' }), ['root-wide']));
});

describe('the DestinationRules a workload receives decide as the whole config does', () => {
  // Rules that shadow, merge and apply by selector, exportTo and namespace (destination-policy.test.ts has why).
  const RULES = [
    ['sel-pp', 'frontend', 'host: reviews.backend.svc.cluster.local\nworkloadSelector: {matchLabels: {app: productpage}}\ntrafficPolicy: {loadBalancer: {simple: RANDOM}}'],
    ['dot', 'frontend', 'host: reviews.backend.svc.cluster.local\nexportTo: ["."]\nsubsets: [{name: dot}]'],
    ['others', 'ops', 'host: reviews.backend.svc.cluster.local\nworkloadSelector: {matchLabels: {app: ratings}}\nsubsets: [{name: sel}]'],
    ['exact', 'backend', 'host: reviews.backend.svc.cluster.local\nexportTo: [team-a]\nsubsets: [{name: exact}]'],
    ['wild', 'backend', 'host: "*.backend.svc.cluster.local"\nsubsets: [{name: wild}]'],
    ['wide', 'backend', 'host: reviews.backend.svc.cluster.local\nexportTo: [team-a, shop]\nsubsets: [{name: wide}]'],
    ['mesh-wide', 'istio-system', 'host: "*.local"\nsubsets: [{name: root}]'],
    ['root-local', 'istio-system', 'host: "*.local"\nexportTo: ["."]\nsubsets: [{name: root-local}]'],
  ].map(([name, ns, spec]) => `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ${name}, namespace: ${ns}}\nspec:\n  ${(spec as string).replace(/\n/g, '\n  ')}`);
  const issues = new IssueList();
  const resources = checkDocuments(parseText(RULES.join('\n---\n'), 'rules.yaml', issues), { analysis: 'off' }, issues).resources;
  const clients: [string, Record<string, string>][] = [
    ['frontend', { app: 'productpage' }],
    ['frontend', { app: 'details' }],
    ['ops', { app: 'productpage' }],
    ['ops', { app: 'ratings' }],
    ['team-a', {}],
    ['shop', {}],
    ['backend', {}],
    ['istio-system', {}],
  ];
  for (const [namespace, labels] of clients) {
    it(`a workload of ${namespace} ${JSON.stringify(labels)}`, () => {
      const applied = (rs: readonly AnyResource[]) => {
        const r = new DestinationRuleIndex(rs, { namespace, labels }).find('reviews.backend.svc.cluster.local', 'backend', namespace);
        return r === undefined ? undefined : { rules: r.rules.map((x) => x.ref), subsets: [...r.subsets.keys()] };
      };
      assert.deepEqual(issues.ofLevel('error').map(String), []);
      assert.deepEqual(applied(relevantResources(resources, { namespace, labels })), applied(resources));
    });
  }
});
