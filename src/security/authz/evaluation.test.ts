import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Resource } from '../../config/resource.ts';
import type { AuthorizationPolicySpec } from '../../config/types/security.ts';
import { compileAuthz } from './engine.ts';
import { decide, engineOf, HTTPBIN, judge, policy, request, resourcesOf } from '../../../test/helpers/authz.ts';
import type { AuthzResult, ExtAuthzCheck, ExtAuthzResponse } from './types.ts';

const DRY = { 'istio.io/dry-run': 'true' };

describe('evaluation order: DENY before ALLOW, default deny once an ALLOW policy applies', () => {
  it('no policy: allowed, nothing decided', () => {
    const r = judge(engineOf(policy('other', 'selector: {matchLabels: {app: other}}\nrules: [{}]')));
    assert.equal(r.decision, 'allow');
    assert.equal(r.action, undefined);
    assert.equal(r.policy, undefined);
  });
  it('DENY wins over a matching ALLOW (Istio TestAuthz_PathPrecedence)', () => {
    const e = engineOf(policy('deny', 'action: DENY\nrules:\n- to: [{operation: {paths: ["/allow/admin"]}}]') + policy('allow', 'rules:\n- to: [{operation: {paths: ["/allow*"]}}]'));
    for (const [path, want] of [
      ['/allow/admin', 'deny'],
      ['/allow/admin?param=value', 'deny'],
      ['/allow', 'allow'],
      ['/allow?param=value', 'allow'],
    ] as const) {
      assert.equal(decide(e, { path }), want, path);
    }
    const r = judge(e, { path: '/allow/admin' });
    assert.deepEqual([r.action, r.policy, r.rule, r.details], ['DENY', 'foo/deny', 0, 'rbac_access_denied_matched_policy[ns[foo]-policy[deny]-rule[0]]']);
    assert.deepEqual(r.denial, { status: 403, headers: {}, body: 'RBAC: access denied' });
  });
  it('an ALLOW policy that matches nothing denies the rest (the default-deny trap)', () => {
    const e = engineOf(policy('allow', 'rules:\n- to: [{operation: {methods: ["GET"]}}]'));
    const r = judge(e, { method: 'POST' });
    assert.deepEqual([r.decision, r.action, r.policy, r.details], ['deny', 'ALLOW', undefined, 'rbac_access_denied_matched_policy[none]']);
    assert.match(r.reason, /no rule of the ALLOW policies \(foo\/allow\) matched/);
  });
  it('only DENY policies: what they do not match is allowed', () => {
    const e = engineOf(policy('deny', 'action: DENY\nrules:\n- to: [{operation: {methods: ["DELETE"]}}]'));
    assert.equal(decide(e), 'allow');
    assert.equal(decide(e, { method: 'DELETE' }), 'deny');
  });
  it('the reported rule is the first in Envoy’s order (sorted policy ids)', () => {
    const e = engineOf(policy('b', 'rules: [{}]') + policy('a', 'rules: [{to: [{operation: {methods: ["POST"]}}]}, {}]'));
    const r = judge(e);
    assert.deepEqual([r.policy, r.rule], ['foo/a', 1]);
  });
});

describe('rules unset vs [{}]', () => {
  it('ALLOW without rules (spec: {}) allows nothing: allow-nothing', () => {
    const e = engineOf(policy('nothing', '{}'));
    assert.equal(decide(e), 'deny');
  });
  it('ALLOW with rules: [{}] allows everything', () => {
    assert.equal(decide(engineOf(policy('all', 'rules: [{}]'))), 'allow');
  });
  it('allow-nothing next to an allowing policy: the other policy still allows', () => {
    const e = engineOf(policy('nothing', '{}') + policy('get', 'rules: [{to: [{operation: {methods: ["GET"]}}]}]'));
    assert.equal(decide(e), 'allow');
    assert.equal(decide(e, { method: 'PUT' }), 'deny');
  });
  it('DENY with rules: [{}] denies everything (Istio deny-all)', () => {
    assert.equal(decide(engineOf(policy('deny-all', 'action: DENY\nrules: [{}]'))), 'deny');
  });
  it('AUDIT without rules never matches', () => {
    assert.equal(judge(engineOf(policy('audit', 'action: AUDIT'))).audit, undefined);
  });
});

describe('AUDIT: reported, never decides', () => {
  it('an AUDIT hit on an allowed request', () => {
    const e = engineOf(policy('audit', 'action: AUDIT\nrules: [{to: [{operation: {paths: ["/headers"]}}]}]'));
    const r = judge(e);
    assert.equal(r.decision, 'allow');
    assert.deepEqual(r.audit, { policy: 'foo/audit', rule: 0 });
    assert.equal(judge(e, { path: '/x' }).audit, undefined);
  });
  it('an AUDIT hit on a denied request', () => {
    const e = engineOf(policy('audit', 'action: AUDIT\nrules: [{}]') + policy('deny', 'action: DENY\nrules: [{}]'));
    const r = judge(e);
    assert.equal(r.decision, 'deny');
    assert.deepEqual(r.audit, { policy: 'foo/audit', rule: 0 });
  });
  it('AUDIT policies do not make ALLOW’s default deny', () => {
    assert.equal(decide(engineOf(policy('audit', 'action: AUDIT\nrules: [{}]'))), 'allow');
  });
});

describe('dry-run (istio.io/dry-run: "true"): evaluated and reported, never enforced', () => {
  it('a dry-run DENY that matches: allowed, reported as would-deny', () => {
    const e = engineOf(policy('deny', 'action: DENY\nrules: [{to: [{operation: {paths: ["/headers"]}}]}]', 'foo', DRY));
    const r = judge(e);
    assert.equal(r.decision, 'allow');
    assert.deepEqual(r.dryRun, [{ action: 'DENY', result: 'deny', policy: 'foo/deny', rule: 0, id: 'ns[foo]-policy[deny]-rule[0]' }]);
    assert.deepEqual(judge(e, { path: '/x' }).dryRun, [{ action: 'DENY', result: 'allow', policy: undefined, rule: undefined, id: undefined }]);
  });
  it('a dry-run ALLOW does not turn on default deny; it reports what it would do', () => {
    const e = engineOf(policy('allow', 'rules: [{to: [{operation: {methods: ["GET"]}}]}]', 'foo', DRY));
    const post = judge(e, { method: 'POST' });
    assert.equal(post.decision, 'allow');
    assert.equal(post.action, undefined);
    assert.deepEqual(post.dryRun, [{ action: 'ALLOW', result: 'deny', policy: undefined, rule: undefined, id: undefined }]);
    assert.deepEqual(judge(e).dryRun[0]?.result, 'allow');
  });
  it('dry-run next to enforced policies of the same action: only the enforced ones decide', () => {
    const e = engineOf(policy('real', 'rules: [{to: [{operation: {methods: ["GET"]}}]}]') + policy('trial', 'rules: [{to: [{operation: {paths: ["/new"]}}]}]', 'foo', DRY));
    const r = judge(e, { method: 'POST', path: '/new' });
    assert.equal(r.decision, 'deny');
    assert.deepEqual(r.dryRun, [{ action: 'ALLOW', result: 'allow', policy: 'foo/trial', rule: 0, id: 'ns[foo]-policy[trial]-rule[0]' }]);
  });
  it('as in Envoy, a request an enforced DENY refused is not run past the dry-run ALLOW rules', () => {
    const e = engineOf(policy('deny', 'action: DENY\nrules: [{}]') + policy('trial', 'rules: [{}]', 'foo', DRY));
    assert.deepEqual(judge(e).dryRun, []);
  });
  it('"false" and Go’s other spellings are not dry-run', () => {
    const e = engineOf(policy('deny', 'action: DENY\nrules: [{}]', 'foo', { 'istio.io/dry-run': 'F' }));
    assert.equal(decide(e), 'deny');
  });
});

/** A resource with its spec replaced (shapes validation would refuse, as unvalidated input could carry). */
function withSpec(yaml: string, spec: AuthorizationPolicySpec): Resource[] {
  return resourcesOf(yaml).map((r) => ({ ...r, spec }) as Resource);
}

describe('unknown when keys: the rule is dropped, whatever the action (Istio model.New fails)', () => {
  const rules = [{ when: [{ key: 'request.foo', values: ['x'] }] }, { to: [{ operation: { paths: ['/open'] } }] }];
  it('ALLOW: narrower (the rule allows nothing)', () => {
    const e = compileAuthz(withSpec(policy('p', 'rules: [{}]'), { rules }), HTTPBIN);
    assert.equal(decide(e, { path: '/headers' }), 'deny');
    assert.equal(decide(e, { path: '/open' }), 'allow');
    assert.match(String(e.findings[0]?.message), /rule 0 dropped: unknown attribute request\.foo/);
  });
  it('DENY: the rule never denies (Istio drops it too; meshlet’s validator refuses such a policy)', () => {
    const e = compileAuthz(withSpec(policy('p', 'rules: [{}]'), { action: 'DENY', rules }), HTTPBIN);
    assert.equal(decide(e, { path: '/headers' }), 'allow');
    assert.equal(decide(e, { path: '/open' }), 'deny');
    assert.equal(e.findings[0]?.level, 'error');
  });
  it('an ALLOW policy whose every rule was dropped still denies by default', () => {
    const e = compileAuthz(withSpec(policy('p', 'rules: [{}]'), { rules: [rules[0] as object] }), HTTPBIN);
    assert.equal(decide(e), 'deny');
  });
  it('a DENY policy whose every rule was dropped denies nothing', () => {
    const e = compileAuthz(withSpec(policy('p', 'rules: [{}]'), { action: 'DENY', rules: [rules[0] as object] }), HTTPBIN);
    assert.equal(decide(e), 'allow');
  });
  it('a malformed value (an invalid port) follows checkError: ALLOW drops the rule, DENY the value', () => {
    const allow = compileAuthz(withSpec(policy('p', 'rules: [{}]'), { rules: [{ to: [{ operation: { ports: ['http'] } }] }] }), HTTPBIN);
    assert.equal(decide(allow), 'deny');
    const deny = compileAuthz(withSpec(policy('p', 'rules: [{}]'), { action: 'DENY', rules: [{ to: [{ operation: { ports: ['http'], methods: ['GET'] } }] }] }), HTTPBIN);
    assert.equal(decide(deny), 'deny', 'the port is ignored, the method still applies');
    assert.equal(decide(deny, { method: 'POST' }), 'allow');
  });
});

describe('which policies apply: namespace, root namespace, selector, targetRefs', () => {
  const yaml =
    policy('ns-wide', 'rules: [{to: [{operation: {paths: ["/ns"]}}]}]') +
    policy('mine', 'selector: {matchLabels: {app: httpbin}}\nrules: [{to: [{operation: {paths: ["/mine"]}}]}]') +
    policy('bad', 'selector: {matchLabels: {app: httpbin, foo: bla}}\nrules: [{to: [{operation: {paths: ["/bad"]}}]}]') +
    policy('mesh', 'selector: {matchLabels: {app: httpbin}}\nrules: [{to: [{operation: {paths: ["/mesh"]}}]}]', 'istio-system') +
    policy('elsewhere', 'rules: [{to: [{operation: {paths: ["/elsewhere"]}}]}]', 'bar');
  // Istio TestAuthz_WorkloadSelector, translated: one workload, these paths.
  const rows: [string, string, boolean][] = [
    ['/ns', 'namespace-wide policy of its namespace', true],
    ['/mine', 'its own selector', true],
    ['/bad', 'a selector with a label it lacks', false],
    ['/mesh', 'a root-namespace policy selecting it', true],
    ['/elsewhere', 'another namespace’s policy', false],
  ];
  for (const [path, what, want] of rows) {
    it(`${what}: ${path} ${want ? 'allowed' : 'denied'}`, () => assert.equal(decide(engineOf(yaml), { path }), want ? 'allow' : 'deny'));
  }
  it('the bad selector selects the workload once it has the label (Istio updateLabel case)', () => {
    const e = engineOf(yaml, { namespace: 'foo', labels: { app: 'httpbin', foo: 'bla' } });
    assert.equal(decide(e, { path: '/bad' }), 'allow');
  });
  it('another workload of the namespace gets only the namespace-wide policy', () => {
    const e = engineOf(yaml, { namespace: 'foo', labels: { app: 'other' } });
    assert.equal(decide(e, { path: '/ns' }), 'allow');
    assert.equal(decide(e, { path: '/mine' }), 'deny');
  });
  it('a custom root namespace', () => {
    const e = engineOf(yaml.replace('namespace: istio-system', 'namespace: mesh-root'), HTTPBIN, { rootNamespace: 'mesh-root' });
    assert.equal(decide(e, { path: '/mesh' }), 'allow');
  });
  it('a workload in the root namespace itself', () => {
    const e = engineOf(policy('root', 'rules: [{to: [{operation: {paths: ["/r"]}}]}]', 'istio-system'), { namespace: 'istio-system', labels: {} });
    assert.deepEqual(e.policies.map((p) => p.ref), ['istio-system/root']);
  });
  it('targetRefs policies do not apply to a sidecar workload', () => {
    const e = engineOf(policy('gw', 'targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]\naction: DENY\nrules: [{}]'));
    assert.equal(decide(e), 'allow');
    assert.match(String(e.findings[0]?.message), /apply to gateways and waypoints, not to a sidecar workload/);
  });
  it('toString lists the policies', () => {
    assert.equal(String(engineOf(yaml)), 'ALLOW istio-system/mesh: 1 rule(s)\nALLOW foo/ns-wide: 1 rule(s)\nALLOW foo/mine: 1 rule(s)');
  });
});

describe('options: trust domain, remote address', () => {
  it('cluster.local in a policy means the mesh’s trust domain', () => {
    const yaml = policy('p', 'rules: [{from: [{source: {principals: ["cluster.local/ns/foo/sa/sleep"]}}]}]');
    const e = engineOf(yaml, HTTPBIN, { trustDomain: 'example.com' });
    assert.equal(decide(e, { peer: 'example.com/ns/foo/sa/sleep' }), 'allow');
    assert.equal(decide(e, { peer: 'cluster.local/ns/foo/sa/sleep' }), 'deny', 'cluster.local is not itself trusted once the trust domain differs');
  });
  it('aliases: a peer of an old trust domain is the same workload', () => {
    const yaml = policy('p', 'rules: [{from: [{source: {principals: ["new.td/ns/foo/sa/sleep"]}}]}]');
    const e = engineOf(yaml, HTTPBIN, { trustDomain: 'new.td', trustDomainAliases: ['old.td'] });
    assert.equal(decide(e, { peer: 'old.td/ns/foo/sa/sleep' }), 'allow');
    assert.equal(decide(e, { peer: 'other.td/ns/foo/sa/sleep' }), 'deny');
  });
  it('trustDomains values expand to the aliases', () => {
    const e = engineOf(policy('p', 'rules: [{from: [{source: {trustDomains: ["new.td"]}}]}]'), HTTPBIN, { trustDomain: 'new.td', trustDomainAliases: ['old.td'] });
    assert.equal(decide(e, { peer: 'old.td/ns/foo/sa/sleep' }), 'allow');
  });
  it('numTrustedProxies: the gateway reading of X-Forwarded-For', () => {
    const yaml = policy('p', 'rules: [{from: [{source: {remoteIpBlocks: ["2.2.2.2"]}}]}]');
    const headers = { 'x-forwarded-for': '1.1.1.1, 2.2.2.2, 3.3.3.3' };
    assert.equal(decide(engineOf(yaml, HTTPBIN, { numTrustedProxies: 2 }), { headers }), 'allow');
    assert.equal(decide(engineOf(yaml, HTTPBIN, { numTrustedProxies: 1 }), { headers }), 'deny');
    assert.equal(decide(engineOf(yaml, HTTPBIN, { numTrustedProxies: 0 }), { headers, remoteAddress: '2.2.2.2' }), 'allow', '0: the peer');
    assert.throws(() => engineOf(yaml, HTTPBIN, { numTrustedProxies: -1 }), /numTrustedProxies must be a whole number/);
  });
});

/** A provider that answers from a table and records what it was asked. */
function fakeProvider(answer: (path: string) => ExtAuthzResponse, asked: string[]): ExtAuthzCheck {
  return async (req) => {
    asked.push(`${req.path} x-user=${String(req.headers['x-user'])}`);
    return answer(req.path);
  };
}

const custom = (provider: string, paths: string) => policy(`ext-${provider}`, `action: CUSTOM\nprovider: {name: ${provider}}\nrules: [{to: [{operation: {paths: ${paths}}}]}]`);

describe('CUSTOM: asks the provider only for the requests its rules match, before DENY and ALLOW', () => {
  const allowWithHeader: ExtAuthzResponse = { allowed: true, headersToUpstream: { 'x-user': 'alice' }, headersToDownstream: { 'x-trace': '1' } };
  const denied: ExtAuthzResponse = { allowed: false, status: 401, headers: { 'www-authenticate': 'Basic' }, body: 'who are you' };

  it('a request no CUSTOM rule matches is judged synchronously, the provider not asked', () => {
    const asked: string[] = [];
    const e = compileAuthz(resourcesOf(custom('ext', '["/custom*"]')), HTTPBIN, { providers: { ext: fakeProvider(() => denied, asked) } });
    assert.equal(decide(e, { path: '/health' }), 'allow');
    assert.deepEqual(asked, []);
  });
  it('the provider’s denial is the answer; DENY and ALLOW are not reached', async () => {
    const asked: string[] = [];
    const e = compileAuthz(resourcesOf(custom('ext', '["/custom*"]') + policy('all', 'rules: [{}]')), HTTPBIN, { providers: { ext: fakeProvider(() => denied, asked) } });
    const r = (await e.evaluate(request({ path: '/custom' }))) as AuthzResult;
    assert.deepEqual([r.decision, r.action, r.policy, r.provider, r.details], ['deny', 'CUSTOM', 'foo/ext-ext', 'ext', 'ext_authz_denied']);
    assert.deepEqual(r.denial, { status: 401, headers: { 'www-authenticate': 'Basic' }, body: 'who are you' });
    assert.deepEqual(asked, ['/custom x-user=undefined']);
  });
  it('an allow goes on to DENY and ALLOW, which see the headers the provider set', async () => {
    const e = compileAuthz(
      resourcesOf(custom('ext', '["/custom*"]') + policy('user', 'rules: [{when: [{key: "request.headers[x-user]", values: ["alice"]}]}]')),
      HTTPBIN,
      { providers: { ext: fakeProvider(() => allowWithHeader, []) } },
    );
    const r = (await e.evaluate(request({ path: '/custom' }))) as AuthzResult;
    assert.deepEqual([r.decision, r.action, r.policy, r.provider], ['allow', 'ALLOW', 'foo/user', 'ext']);
    assert.deepEqual({ ...r.headersToUpstream }, { 'x-user': 'alice' });
    assert.deepEqual({ ...r.headersToDownstream }, { 'x-trace': '1' });
    assert.equal(decide(e, { path: '/other' }), 'deny', 'without the provider’s header the ALLOW rule does not match');
  });
  it('a DENY after a CUSTOM allow still denies', async () => {
    const e = compileAuthz(resourcesOf(custom('ext', '["*"]') + policy('d', 'action: DENY\nrules: [{}]')), HTTPBIN, { providers: { ext: fakeProvider(() => allowWithHeader, []) } });
    const r = (await e.evaluate(request())) as AuthzResult;
    assert.deepEqual([r.decision, r.action, r.provider], ['deny', 'DENY', 'ext']);
  });
  it('a provider that is not configured: matched requests are denied (403), others pass', () => {
    const e = compileAuthz(resourcesOf(custom('missing', '["/custom"]')), HTTPBIN, { providers: {} });
    const r = judge(e, { path: '/custom' });
    assert.deepEqual([r.decision, r.action, r.denial?.status], ['deny', 'CUSTOM', 403]);
    assert.match(r.details, /^rbac_access_denied_matched_policy\[istio-ext-authz-missing-ns\[foo\]-policy\[ext-missing\]-rule\[0\]-deny-due-to-bad-CUSTOM-action\]$/);
    assert.equal(decide(e, { path: '/other' }), 'allow');
    assert.match(String(e.findings[0]?.message), /extension provider "missing" is not configured/);
  });
  it('two providers without multipleCustomProviders: both deny what they match; with it, both are asked in name order', async () => {
    const asked: string[] = [];
    const providers = { a: fakeProvider(() => ({ allowed: true, headersToUpstream: { 'x-user': 'from-a' } }), asked), b: fakeProvider(() => ({ allowed: true }), asked) };
    const yaml = custom('b', '["*"]') + custom('a', '["*"]');
    assert.equal(decide(compileAuthz(resourcesOf(yaml), HTTPBIN, { providers }), {}), 'deny');
    const r = (await compileAuthz(resourcesOf(yaml), HTTPBIN, { providers, multipleCustomProviders: true }).evaluate(request())) as AuthzResult;
    assert.equal(r.decision, 'allow');
    assert.deepEqual(asked, ['/headers x-user=undefined', '/headers x-user=from-a'], 'a first, and b sees what a set');
    assert.equal(r.provider, 'a,b');
  });
  it('a provider that throws fails closed', async () => {
    const e = compileAuthz(resourcesOf(custom('ext', '["*"]')), HTTPBIN, {
      providers: {
        ext: async () => {
          throw new Error('bug');
        },
      },
    });
    const r = (await e.evaluate(request())) as AuthzResult;
    assert.deepEqual([r.decision, r.details, r.denial?.status], ['deny', 'ext_authz_error', 403]);
  });
});
