import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { describe, it } from 'node:test';
import { compileAuthz } from '../security/authz/engine.ts';
import { HTTPBIN, policy, resourcesOf } from '../../test/helpers/authz.ts';
import type { ExtAuthzCheck } from '../security/authz/types.ts';
import { type AuthzDecisionMessage, authorizationPhase } from './authz-phase.ts';
import { type InboundRequest, newInboundRequest, InboundPipeline, type Phase } from './pipeline.ts';

function inbound(init: Partial<InboundRequest> = {}): InboundRequest {
  return newInboundRequest({
    protocol: 'http1',
    method: 'GET',
    scheme: 'http',
    authority: 'httpbin:8000',
    path: '/headers',
    headers: Object.create(null),
    remoteAddress: '10.0.0.7',
    remotePort: 40000,
    localPort: 8000,
    ...init,
  });
}

const engineOf = (yaml: string, providers?: Record<string, ExtAuthzCheck>) => compileAuthz(resourcesOf(yaml), HTTPBIN, providers === undefined ? {} : { providers });

describe('the authorization phase in the inbound pipeline', () => {
  const yaml =
    policy('deny-admin', 'action: DENY\nrules: [{to: [{operation: {paths: ["/admin*"]}}]}]') +
    policy('allow-jwt', 'rules: [{from: [{source: {requestPrincipals: ["iss/alice"]}}]}]') +
    policy('trial', 'action: DENY\nrules: [{to: [{operation: {methods: ["DELETE"]}}]}]', 'foo', { 'istio.io/dry-run': 'true' });

  it('an allowed request: admitted synchronously, req.authz says which rule', () => {
    const p = new InboundPipeline([authorizationPhase(engineOf(yaml))]);
    const req = inbound({ requestPrincipal: 'iss/alice', claims: { iss: 'iss', sub: 'alice' } });
    const a = p.admit(req);
    assert.ok(!(a instanceof Promise));
    assert.equal(a.admitted, true);
    assert.deepEqual([req.authz?.decision, req.authz?.policy, req.authz?.rule], ['allow', 'foo/allow-jwt', 0]);
  });

  it('a DENY: 403 RBAC: access denied, and the reason names the policy', () => {
    const req = inbound({ path: '/admin/x', requestPrincipal: 'iss/alice', claims: { iss: 'iss', sub: 'alice' } });
    const a = new InboundPipeline([authorizationPhase(engineOf(yaml))]).admit(req);
    assert.ok(!(a instanceof Promise) && !a.admitted);
    assert.deepEqual([a.denial.status, a.denial.grpcStatus, a.denial.body, a.denial.phase], [403, 7, 'RBAC: access denied', 'authorization']);
    assert.equal(a.denial.reason, 'denied by DENY policy foo/deny-admin rule 0');
  });

  it('no token: default deny (403, not 401: that is the jwt phase’s answer to a bad token)', () => {
    const a = new InboundPipeline([authorizationPhase(engineOf(yaml))]).admit(inbound());
    assert.ok(!(a instanceof Promise) && !a.admitted);
    assert.equal(a.denial.status, 403);
    assert.match(a.denial.reason, /no rule of the ALLOW policies \(foo\/allow-jwt\) matched/);
  });

  it('every verdict is published with its dry-run outcomes, when someone listens', () => {
    const got: AuthzDecisionMessage[] = [];
    const listener = (m: unknown) => got.push(m as AuthzDecisionMessage);
    subscribe('meshlet:authz:decision', listener);
    try {
      const req = inbound({ method: 'DELETE', requestPrincipal: 'iss/alice', claims: { iss: 'iss', sub: 'alice' } });
      new InboundPipeline([authorizationPhase(engineOf(yaml))]).admit(req);
      assert.equal(got.length, 1);
      assert.equal(got[0]?.request, req);
      assert.equal(got[0]?.result.decision, 'allow');
      assert.deepEqual(got[0]?.result.dryRun.map((d) => [d.action, d.result, d.policy]), [['DENY', 'deny', 'foo/trial']]);
    } finally {
      unsubscribe('meshlet:authz:decision', listener);
    }
  });

  it('CUSTOM: the external authorizer’s denial is rendered as it answered (gRPC status from its HTTP status)', async () => {
    const ext: ExtAuthzCheck = async () => ({ allowed: false, status: 401, headers: { 'www-authenticate': 'Basic realm="x"' }, body: 'no' });
    const e = engineOf(policy('ext', 'action: CUSTOM\nprovider: {name: ext}\nrules: [{}]'), { ext });
    const a = await new InboundPipeline([authorizationPhase(e)]).admit(inbound({ protocol: 'grpc' }));
    assert.ok(!a.admitted);
    assert.deepEqual([a.denial.status, a.denial.grpcStatus, a.denial.body, a.denial.headers], [401, 16, 'no', { 'www-authenticate': 'Basic realm="x"' }]);
  });

  it('CUSTOM allow: headers set and removed on the request the app sees; response headers for the adapter', async () => {
    const ext: ExtAuthzCheck = async () => ({ allowed: true, headersToUpstream: { 'x-user': 'alice' }, headersToRemove: ['x-secret'], headersToDownstream: { 'x-trace': '1' } });
    const e = engineOf(policy('ext', 'action: CUSTOM\nprovider: {name: ext}\nrules: [{}]'), { ext });
    const seenByApp: Record<string, unknown>[] = [];
    const app: Phase = {
      name: 'rate-limit',
      run(r) {
        seenByApp.push({ ...r.headers });
        return undefined;
      },
    };
    const req = inbound({ headers: Object.assign(Object.create(null), { 'x-secret': 's', 'x-keep': 'k' }) });
    const a = await new InboundPipeline([authorizationPhase(e), app]).admit(req);
    assert.equal(a.admitted, true);
    assert.deepEqual(seenByApp, [{ 'x-keep': 'k', 'x-user': 'alice' }]);
    assert.deepEqual({ ...req.authz?.responseHeaders }, { 'x-trace': '1' });
  });

  it('the engine is read per request: a new config applies to the next request', () => {
    let current = engineOf(policy('all', 'rules: [{}]'));
    const p = new InboundPipeline([authorizationPhase(() => current)]);
    assert.equal((p.admit(inbound()) as { admitted: boolean }).admitted, true);
    current = engineOf(policy('none', '{}'));
    assert.equal((p.admit(inbound()) as { admitted: boolean }).admitted, false);
  });

  it('no engine yet: everything passes, as with no AuthorizationPolicy', () => {
    assert.equal((new InboundPipeline([authorizationPhase(() => undefined)]).admit(inbound()) as { admitted: boolean }).admitted, true);
  });
});
