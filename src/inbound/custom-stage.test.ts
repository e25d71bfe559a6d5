/**
 * The CUSTOM stage's answer as the later stages see it: an authorizer's removals come after its
 * other header changes (Envoy's order), and a later authorizer's header outlives an earlier one's
 * removal. And the authorization phase refuses to trust an ext-authz phase it cannot be sure
 * judged with the same engine.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { engineOf, policy, request } from '../../test/helpers/authz.ts';
import { authorizationPhase } from './authz-phase.ts';
import type { ExtAuthzCheck } from '../security/authz/types.ts';

const custom = (provider: string) => policy(`ext-${provider}`, `action: CUSTOM\nprovider: { name: ${provider} }\nrules: [{}]`);

describe('the CUSTOM stage', () => {
  it("an answer that both sets and removes a header removes it (removals last, as Envoy's ext_authz)", async () => {
    const check: ExtAuthzCheck = async () => ({ allowed: true, headersToUpstream: { 'x-a': '1', 'x-b': '2' }, headersToRemove: ['x-a'] });
    const r = await engineOf(custom('one'), undefined, { providers: { one: check } }).evaluate(request({ headers: { 'x-a': 'client' } }));
    assert.equal(r.decision, 'allow');
    assert.deepEqual({ ...r.headersToUpstream }, { 'x-b': '2' });
    assert.deepEqual(r.headersToRemove, ['x-a']);
  });

  it("a later authorizer's header is kept though an earlier one removed it", async () => {
    const first: ExtAuthzCheck = async () => ({ allowed: true, headersToRemove: ['x-a'] });
    const second: ExtAuthzCheck = async (req) => ({ allowed: true, headersToUpstream: { 'x-a': `seen ${String(req.headers['x-a'])}` } });
    const engine = engineOf(custom('a1') + custom('a2'), undefined, { providers: { a1: first, a2: second }, multipleCustomProviders: true });
    const r = await engine.evaluate(request({ headers: { 'x-a': 'client' } }));
    assert.equal(r.decision, 'allow');
    assert.deepEqual({ ...r.headersToUpstream }, { 'x-a': 'seen undefined' });
    assert.equal(r.headersToRemove, undefined);
  });

  it('authorizationPhase with customRunsBefore takes the engine itself, not a per-request source', () => {
    const engine = engineOf(custom('one'), undefined, { providers: { one: async () => ({ allowed: true }) } });
    assert.throws(() => authorizationPhase(() => engine, undefined, true), /give the engine itself/);
    assert.equal(authorizationPhase(engine, undefined, true).name, 'authorization');
  });
});
