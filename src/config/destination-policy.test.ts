/**
 * DestinationRule selection and merging as istiod does it (pilot/pkg/model/push_context.go
 * `setDestinationRules`, `destinationRule`; destination_rule.go `mergeDestinationRule`;
 * sidecar.go `SidecarScope.DestinationRule`), with rows of Istio's own tests
 * (push_context_test.go TestSetDestinationRuleWithWorkloadSelector, TestSetDestinationRuleMerging; its
 * selector rules' `exportTo: [test2, "."]`, which validation rejects, are `["."]` here).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../test/helpers/config.ts';
import { DestinationRuleIndex } from './destination-policy.ts';
import type { AnyResource } from './resource.ts';

const NET = 'networking.istio.io/v1';

function resources(docs: readonly string[]): readonly AnyResource[] {
  const { resources, errors } = validateYaml(docs.join('---\n'));
  assert.deepEqual(errors, []);
  return resources;
}

/** The refs of the rules merged into the rule a client gets, and its subset names. */
function applied(rs: readonly AnyResource[], client: { namespace: string; labels?: Record<string, string> }, host: string, svcNs: string, inbound = false) {
  const index = new DestinationRuleIndex(rs, { namespace: client.namespace, labels: client.labels ?? {} }, 'istio-system', { inbound });
  const r = index.find(host, svcNs, client.namespace);
  return r === undefined ? undefined : { from: r.rules.map((x) => x.ref), subsets: [...r.subsets.keys()] };
}

const dr = (name: string, ns: string, spec: string) => doc(NET, 'DestinationRule', name, spec, ns);

describe('DestinationRule selection as istiod: TestSetDestinationRuleWithWorkloadSelector', () => {
  // In creation order: ns-rule4 is the oldest; selector rules sort first all the same.
  const nsRule4 = dr('ns-rule4', 'test', 'host: httpbin.org\nexportTo: [".", test2]\nsubsets: [{name: ns, labels: {v: ns}}]\ntrafficPolicy: {tls: {mode: SIMPLE}}');
  const nsRule1 = dr('ns-rule1', 'test', 'host: httpbin.org\nexportTo: ["."]\nworkloadSelector: {matchLabels: {app: app1}}\ntrafficPolicy: {tls: {mode: DISABLE}}');
  const nsRule2 = dr('ns-rule2', 'test', 'host: httpbin.org\nexportTo: ["."]\nworkloadSelector: {matchLabels: {app: app2}}\nsubsets: [{name: two, labels: {v: two}}]');
  const nsRule3 = dr('ns-rule3', 'test', 'host: httpbin.org\nexportTo: ["."]\nworkloadSelector: {matchLabels: {app: app2}}\nsubsets: [{name: three, labels: {v: three}}]');
  const rs = resources([nsRule4, nsRule1, nsRule2, nsRule3]);
  const ref = (n: string) => `DestinationRule test/${n}`;

  it('a selected workload gets its selector rule with the namespace rule merged in (subsets and, lacking one, the policy)', () => {
    assert.deepEqual(applied(rs, { namespace: 'test', labels: { app: 'app1' } }, 'httpbin.org', 'test'), { from: [ref('ns-rule1'), ref('ns-rule4')], subsets: ['ns'] });
    const app2 = new DestinationRuleIndex(rs, { namespace: 'test', labels: { app: 'app2' } }).find('httpbin.org', 'test', 'test');
    assert.deepEqual(app2?.rules.map((r) => r.ref), [ref('ns-rule2'), ref('ns-rule3'), ref('ns-rule4')]);
    assert.deepEqual([...(app2?.subsets.keys() ?? [])], ['two', 'three', 'ns']);
    assert.deepEqual(app2?.trafficPolicy, { tls: { mode: 'SIMPLE' } });
  });

  it('other workloads of the namespace get the namespace rule', () => {
    assert.deepEqual(applied(rs, { namespace: 'test', labels: { app: 'other' } }, 'httpbin.org', 'test'), { from: [ref('ns-rule4')], subsets: ['ns'] });
  });

  it('a workload-specific rule is not exported', () => {
    assert.deepEqual(applied(rs, { namespace: 'test2', labels: { app: 'app1' } }, 'httpbin.org', 'test'), { from: [ref('ns-rule4')], subsets: ['ns'] });
  });

  it('inbound, a selector rule never applies', () => {
    assert.deepEqual(applied(rs, { namespace: 'test', labels: { app: 'app1' } }, 'httpbin.org', 'test', true), { from: [ref('ns-rule4')], subsets: ['ns'] });
  });

  it('a namespace rule without exportTo merges into no selector rule (their exportTo differ)', () => {
    const plain = dr('plain', 'test', 'host: httpbin.org\nsubsets: [{name: plain, labels: {v: p}}]');
    const r = resources([plain, nsRule1]);
    assert.deepEqual(applied(r, { namespace: 'test', labels: { app: 'app1' } }, 'httpbin.org', 'test'), { from: [ref('ns-rule1')], subsets: [] });
    assert.deepEqual(applied(r, { namespace: 'test', labels: { app: 'x' } }, 'httpbin.org', 'test'), { from: [ref('plain')], subsets: ['plain'] });
  });

  it('a namespace rule exported to "." only merges into a selector rule and still applies to the other workloads (meshlet differs: istio/istio#58322)', () => {
    const dot = dr('dot', 'test', 'host: httpbin.org\nexportTo: ["."]\nsubsets: [{name: dot, labels: {v: d}}]');
    const r = resources([dot, nsRule1]);
    assert.deepEqual(applied(r, { namespace: 'test', labels: { app: 'app1' } }, 'httpbin.org', 'test'), { from: [ref('ns-rule1'), ref('dot')], subsets: ['dot'] });
    assert.deepEqual(applied(r, { namespace: 'test', labels: { app: 'x' } }, 'httpbin.org', 'test'), { from: [ref('dot')], subsets: ['dot'] });
  });

  it('two selector rules with different selectors both selecting the workload: the first applies, unmerged', () => {
    const a = dr('a', 'test', 'host: httpbin.org\nworkloadSelector: {matchLabels: {app: x}}\nsubsets: [{name: a, labels: {v: a}}]');
    const b = dr('b', 'test', 'host: httpbin.org\nworkloadSelector: {matchLabels: {tier: y}}\nsubsets: [{name: b, labels: {v: b}}]');
    assert.deepEqual(applied(resources([a, b]), { namespace: 'test', labels: { app: 'x', tier: 'y' } }, 'httpbin.org', 'test'), { from: [ref('a')], subsets: ['a'] });
  });

  it("a selector rule whose exportTo leaves out its own namespace (validation refuses it; a resource that skipped it) still applies to the workloads it selects, as istiod forces it to '.'", () => {
    const sel = {
      apiVersion: NET,
      kind: 'DestinationRule',
      metadata: { name: 'sel', namespace: 'test' },
      spec: { host: 'httpbin.org', exportTo: ['other'], workloadSelector: { matchLabels: { app: 'x' } }, subsets: [{ name: 'a', labels: { v: 'a' } }] },
    } as unknown as AnyResource;
    assert.deepEqual(applied([sel], { namespace: 'test', labels: { app: 'x' } }, 'httpbin.org', 'test')?.subsets, ['a']);
    assert.equal(applied([sel], { namespace: 'other', labels: { app: 'x' } }, 'httpbin.org', 'test'), undefined);
  });
});

describe('DestinationRule selection as istiod: the first namespace holding a rule for the host decides', () => {
  const svc = 'reviews.bookinfo.svc.cluster.local';
  const meshWide = dr('mesh-wide', 'istio-system', 'host: "*.local"\nsubsets: [{name: root, labels: {v: r}}]');

  it('a selector rule selecting other workloads of the client namespace hides the root namespace rule (no rule applies)', () => {
    const others = dr('others', 'bookinfo', `host: ${svc}\nworkloadSelector: {matchLabels: {app: ratings}}\nsubsets: [{name: sel, labels: {v: s}}]`);
    const rs = resources([meshWide, others]);
    assert.equal(applied(rs, { namespace: 'bookinfo', labels: { app: 'productpage' } }, svc, 'bookinfo'), undefined);
    assert.deepEqual(applied(rs, { namespace: 'bookinfo', labels: { app: 'ratings' } }, svc, 'bookinfo')?.subsets, ['sel']);
    // A client of another namespace does not see the selector rule: the root namespace's applies.
    assert.deepEqual(applied(rs, { namespace: 'shop' }, svc, 'bookinfo')?.subsets, ['root']);
  });

  it('the service namespace exact-host rule exported to the client beats its wildcard rule; exported elsewhere it hides nothing (meshlet differs: istio/istio#49409)', () => {
    const exact = dr('exact', 'bookinfo', `host: ${svc}\nexportTo: [team-a]\nsubsets: [{name: exact, labels: {v: e}}]`);
    const wild = dr('wild', 'bookinfo', 'host: "*.bookinfo.svc.cluster.local"\nsubsets: [{name: wild, labels: {v: w}}]');
    const rs = resources([exact, wild, meshWide]);
    assert.deepEqual(applied(rs, { namespace: 'team-a' }, svc, 'bookinfo')?.subsets, ['exact']);
    // istiod matches the most specific host among all the namespace's exported rules, then drops it as not exported to shop
    // and goes on to the root namespace; meshlet sees only what is exported to shop, as its control plane sends it.
    assert.deepEqual(applied(rs, { namespace: 'shop' }, svc, 'bookinfo')?.subsets, ['wild']);
  });

  it('a client in the root namespace: the service namespace rule beats the root namespace rule exported mesh-wide', () => {
    const inSvc = dr('in-svc', 'bookinfo', `host: ${svc}\nsubsets: [{name: svc, labels: {v: s}}]`);
    const rs = resources([meshWide, inSvc]);
    assert.deepEqual(applied(rs, { namespace: 'istio-system' }, svc, 'bookinfo')?.subsets, ['svc']);
    // A root namespace rule exported to it alone comes first for it.
    const local = dr('local', 'istio-system', 'host: "*.local"\nexportTo: ["."]\nsubsets: [{name: local, labels: {v: l}}]');
    assert.deepEqual(applied(resources([meshWide, inSvc, local]), { namespace: 'istio-system' }, svc, 'bookinfo')?.subsets, ['local']);
  });
});

describe('DestinationRule merging as istiod: TestSetDestinationRuleMerging', () => {
  const rule1 = dr('rule1', 'test', 'host: httpbin.org\nsubsets: [{name: subset1}, {name: subset2}]');
  const rule2 = dr('rule2', 'test', 'host: httpbin.org\nsubsets: [{name: subset3}, {name: subset4}]');
  const rule3 = dr('rule3', 'test', 'host: httpbin.org\nexportTo: [istio-system]\nsubsets: [{name: subset5}, {name: subset6}]');
  const rs = resources([rule1, rule2, rule3]);

  it('rules with the same exportTo merge; one with another exportTo stays apart', () => {
    assert.deepEqual(applied(rs, { namespace: 'test' }, 'httpbin.org', 'test'), { from: ['DestinationRule test/rule1', 'DestinationRule test/rule2'], subsets: ['subset1', 'subset2', 'subset3', 'subset4'] });
    assert.deepEqual(applied(rs, { namespace: 'other' }, 'httpbin.org', 'test')?.subsets, ['subset1', 'subset2', 'subset3', 'subset4']);
  });

  it('where both apply, the last one without a selector is taken (SidecarScope.DestinationRule)', () => {
    assert.deepEqual(applied(rs, { namespace: 'istio-system' }, 'httpbin.org', 'test'), { from: ['DestinationRule test/rule3'], subsets: ['subset5', 'subset6'] });
  });
});

describe('DestinationRule exportTo as istiod: TestSetDestinationRuleWithExportTo', () => {
  const subsets = (a: string, b: string) => `subsets: [{name: ${a}}, {name: ${b}}]`;
  const rs = resources([
    dr('rule1', 'test1', `host: httpbin.org\nexportTo: [".", ns1]\n${subsets('subset1', 'subset2')}`),
    // Istio's test has newNS, not a namespace name; and exportTo [test1, test2, "*"], which validation rejects ("*" alone).
    dr('rule2', 'test2', `host: httpbin.org\nexportTo: [test2, ns1, test1, newns]\n${subsets('subset3', 'subset4')}`),
    dr('rule3', 'test3', `host: httpbin.org\nexportTo: ["*"]\n${subsets('subset5', 'subset6')}`),
    dr('rule4-local', 'test4', `host: httpbin.org\nexportTo: [test4]\n${subsets('subset15', 'subset16')}`),
    dr('rule4', 'istio-system', `host: httpbin.org\n${subsets('subset7', 'subset8')}`),
    dr('rule1', 'istio-system', `host: httpbin.org\nexportTo: ["."]\n${subsets('subset9', 'subset10')}`),
    dr('rule2', 'istio-system', `host: "*.org"\nexportTo: ["."]\n${subsets('subset11', 'subset12')}`),
    dr('rule3', 'istio-system', `host: "*.app.org"\nexportTo: ["."]\n${subsets('subset13', 'subset14')}`),
    dr('rule5', 'test5', `host: api.test.com\nexportTo: [istio-system]\n${subsets('subset5-0', 'subset5-1')}`),
    dr('rule6', 'test6', `host: api.test.com\nexportTo: [istio-system]\n${subsets('subset6-0', 'subset6-1')}`),
  ]);
  const rows: [proxyNs: string, serviceNs: string, host: string, want: string[] | undefined][] = [
    ['test1', 'test1', 'httpbin.org', ['subset1', 'subset2']],
    ['test1', 'test2', 'httpbin.org', ['subset1', 'subset2']],
    ['test2', 'test1', 'httpbin.org', ['subset3', 'subset4']],
    ['newns', 'test2', 'httpbin.org', ['subset3', 'subset4']],
    ['test3', 'test1', 'httpbin.org', ['subset5', 'subset6']],
    ['test5', 'test4', 'httpbin.org', ['subset7', 'subset8']],
    ['ns1', 'test1', 'httpbin.org', ['subset1', 'subset2']],
    ['ns1', 'random', 'httpbin.org', ['subset7', 'subset8']],
    ['random', 'random', 'httpbin.org', ['subset7', 'subset8']],
    ['test3', 'random', 'httpbin.org', ['subset5', 'subset6']],
    ['istio-system', 'random', 'httpbin.org', ['subset9', 'subset10']],
    ['istio-system', 'istio-system', 'httpbin.org', ['subset9', 'subset10']],
    ['istio-system', 'istio-system', 'foo.app.org', ['subset13', 'subset14']],
    ['istio-system', 'test5', 'api.test.com', ['subset5-0', 'subset5-1']],
    ['istio-system', 'test6', 'api.test.com', ['subset6-0', 'subset6-1']],
    ['istio-system', 'test7', 'api.test.com', undefined],
  ];
  for (const [proxyNs, serviceNs, host, want] of rows) {
    it(`a proxy in ${proxyNs}, ${host} of ${serviceNs}: ${want?.join(', ') ?? 'no rule'}`, () => {
      assert.deepEqual(applied(rs, { namespace: proxyNs }, host, serviceNs)?.subsets, want);
    });
  }
});
