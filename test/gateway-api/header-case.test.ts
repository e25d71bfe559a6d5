/**
 * HTTPRoute header matches whose names differ only in case: the API server accepts them (the
 * list's map key is the exact name) and istiod keeps both (conversion.go createHeadersMatch keys
 * its map by the exact name), so Envoy checks both against the one header: both must match.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc } from '../helpers/config.ts';
import { compile, decide, req } from '../helpers/route-decisions.ts';

const svc = (name: string) => doc('v1', 'Service', name, `selector: {app: ${name}}\nports: [{name: http, port: 9080}]`);
const route = (a: string, b: string) =>
  doc(
    'gateway.networking.k8s.io/v1',
    'HTTPRoute',
    'r',
    `parentRefs: [{group: "", kind: Service, name: reviews}]\nrules:\n- matches: [{headers: [{name: X-User, value: ${a}}, {name: x-user, value: ${b}}]}]\n  backendRefs: [{name: v2, port: 9080}]\n- backendRefs: [{name: v1, port: 9080}]`,
  );
const host = (a: string, b: string, user: string) => decide(compile([svc('reviews'), svc('v1'), svc('v2'), route(a, b)]), req('reviews:9080', '/', { 'x-user': user })).target?.host;

describe('HTTPRoute header matches named alike but for case', () => {
  it('are accepted, and both must match the header', () => {
    assert.equal(host('a', 'b', 'a'), 'v1.default.svc.cluster.local');
    assert.equal(host('a', 'b', 'b'), 'v1.default.svc.cluster.local');
    assert.equal(host('a', 'a', 'a'), 'v2.default.svc.cluster.local');
  });
});
