/**
 * The inbound explainer on CUSTOM policies — it names the provider and rule, and agrees with the
 * AuthorizationPolicy engine given an authorizer that allows and one that denies — and on a
 * malformed request description, which it refuses naming the field.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { verdictOf } from '../../test/helpers/authz.ts';
import { validateYaml } from '../../test/helpers/config.ts';
import type { AnyResource } from '../config/resource.ts';
import { InvalidArgumentError } from '../core/errors.ts';
import { compileAuthz } from '../security/authz/engine.ts';
import type { AuthzResult, ExtAuthzCheck } from '../security/authz/types.ts';
import { explainInbound, type InboundExplainRequest } from './explain.ts';

const WORKLOAD = { service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' } };

function load(yaml: string): AnyResource[] {
  const { resources, errors } = validateYaml(yaml);
  assert.deepEqual(errors, []);
  return resources;
}

describe('CUSTOM policies: explain names the provider and rule, and agrees with the engine either way', () => {
  const yaml = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: my-authz}
  rules: [{to: [{operation: {paths: [/ext/*]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-bad, namespace: foo}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: [/ext/bad]}}]}]
`;
  const allow: ExtAuthzCheck = () => Promise.resolve({ allowed: true });
  const deny: ExtAuthzCheck = () => Promise.resolve({ allowed: false, status: 403, headers: {}, body: 'no' });
  const table: { path: string; providers: readonly string[] | undefined; asked: boolean; ifAllowed: string; status: number }[] = [
    { path: '/ext/a', providers: undefined, asked: true, ifAllowed: 'allow', status: 200 },
    { path: '/ext/bad', providers: ['my-authz'], asked: true, ifAllowed: 'deny', status: 403 },
    { path: '/other', providers: ['my-authz'], asked: false, ifAllowed: 'allow', status: 200 },
    // A provider the mesh does not have: the CUSTOM rules deny, as Istio does.
    { path: '/ext/a', providers: [], asked: false, ifAllowed: 'deny', status: 403 },
  ];
  for (const row of table) {
    it(`${row.path} with providers ${JSON.stringify(row.providers)}`, async () => {
      const res = load(yaml);
      const e = await explainInbound(res, { url: row.path }, { workload: WORKLOAD, extensionProviders: row.providers });
      assert.equal(e.status, row.status, String(e));
      assert.equal(e.authz?.custom !== undefined, row.asked);
      if (row.asked) {
        assert.deepEqual(e.authz?.custom, { provider: 'my-authz', policy: 'foo/ext', rule: 0, assumedConfigured: row.providers === undefined });
        assert.ok(e.assumes.some((a) => a.includes('"my-authz" allows')));
      }
      const req = { method: 'GET', scheme: 'http', authority: 'httpbin', path: row.path, headers: {}, remoteAddress: '127.0.0.1', localPort: 80, peer: undefined, requestPrincipal: undefined, claims: undefined };
      const names = row.providers ?? ['my-authz'];
      const withAllow = await compileAuthz(res, WORKLOAD, { providers: Object.fromEntries(names.map((n) => [n, allow])) }).evaluate(req);
      const withDeny = await compileAuthz(res, WORKLOAD, { providers: Object.fromEntries(names.map((n) => [n, deny])) }).evaluate(req);
      assert.equal(withAllow.decision, row.ifAllowed);
      assert.deepEqual(verdictOf(e.authz?.result as AuthzResult), verdictOf(withAllow));
      if (row.asked) assert.deepEqual([withDeny.decision, withDeny.policy, withDeny.rule, withDeny.action], ['deny', 'foo/ext', 0, 'CUSTOM']);
    });
  }
});

describe('explainInbound refuses a malformed request description, naming the field', () => {
  const table: { req: InboundExplainRequest; error: RegExp }[] = [
    { req: { url: 'admin' }, error: /url: expected a path/ },
    { req: { url: '/a b' }, error: /no spaces/ },
    { req: { url: '/', method: 'GE T' }, error: /method: not an HTTP method/ },
    { req: { url: '/', headers: { 'x-a': 'b\r\nx-admin: yes' } }, error: /the value of x-a has a CR, LF or NUL/ },
    { req: { url: '/', headers: { 'bad name': 'b' } }, error: /not a header name/ },
    { req: { url: '/', port: 70000 }, error: /port: expected 1-65535/ },
    { req: { url: '/', source: { ip: '10.0.0' } }, error: /source\.ip: not an IP address/ },
    { req: { url: '/', source: { principal: 'cluster.local/ns/a/sa/b', namespace: 'c' } }, error: /does not name namespace c/ },
    { req: { url: '/', source: { serviceAccount: 'x' } }, error: /serviceAccount needs source\.namespace/ },
    { req: { url: '/', token: 'a b' }, error: /token: expected a compact JWT/ },
    { req: { url: '/', token: 'x.y.z', headers: { authorization: 'Bearer q' } }, error: /already has an Authorization header/ },
    { req: { url: '/', token: 'x.y.z', requestPrincipal: 'a/b' }, error: /either a token or the request principal/ },
  ];
  for (const row of table) {
    it(row.error.source, async () => {
      await assert.rejects(
        explainInbound([], row.req, { workload: WORKLOAD }),
        (err: unknown) => err instanceof InvalidArgumentError && row.error.test(err.message),
      );
    });
  }
});

describe('CUSTOM is judged before the token, as Istio orders ext_authz before jwt_authn', () => {
  const yaml = `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  jwtRules: [{issuer: https://issuer.example, jwksUri: https://issuer.example/jwks}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: my-authz}
  rules: [{to: [{operation: {paths: [/ext/*]}}]}]
`;
  for (const [path, asked] of [
    ['/ext/a', true],
    ['/other', false],
  ] as const) {
    it(`a malformed token on ${path}: refused by JWT authentication${asked ? ', once the authorizer (asked first) has allowed it' : ''}`, async () => {
      const e = await explainInbound(load(yaml), { url: path, headers: { authorization: 'Bearer not-a-jwt' } }, { workload: WORKLOAD, extensionProviders: ['my-authz'] });
      assert.deepEqual([e.status, e.refusedBy], [401, 'jwt'], String(e));
      assert.equal(
        e.assumes.some((a) => a.includes('"my-authz" allows the request') && a.includes('before the token is checked')),
        asked,
      );
    });
  }

  it('a CUSTOM rule whose provider the mesh does not have denies (403) before the token is judged, as enforced', async () => {
    const e = await explainInbound(load(yaml), { url: '/ext/a', headers: { authorization: 'Bearer not-a-jwt' } }, { workload: WORKLOAD, extensionProviders: [] });
    assert.deepEqual([e.status, e.refusedBy], [403, 'authorization'], String(e));
    assert.match(e.reason, /CUSTOM policy foo\/ext rule 0 matched, and extension provider "my-authz" is not configured/);
  });
});
