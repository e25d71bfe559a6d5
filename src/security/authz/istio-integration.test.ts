/**
 * Istio's own authorization integration tests (tests/integration/security/authz_test.go and
 * testdata/authz/*.yaml.tmpl at istio/istio 86c9f01f), translated: the templates with their
 * parameters filled in (To = b in ns1; Allowed = ns1/a, Denied = ns2/a; echo's workload ports
 * http 18080, http2 18085, grpc 17070), and every HTTP, HTTP2 and gRPC case of the tables.
 * TCP cases are left out: meshlet's servers are HTTP (and gRPC) only.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide, engineOf, type RequestInit } from '../../../test/helpers/authz.ts';

const TO = { namespace: 'ns1', labels: { app: 'b' } };
const ALLOWED = 'cluster.local/ns/ns1/sa/a';
const DENIED = 'cluster.local/ns/ns2/sa/a';
const PORTS = { http: 18080, http2: 18085, grpc: 17070 } as const;
type Port = keyof typeof PORTS;

const ap = (name: string, spec: string, namespace = 'ns1') =>
  `---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\nspec:\n${spec
    .trim()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n')}\n`;

/** A call as Istio's echo client makes it: GET on HTTP ports, POST /proto.EchoTestService/Echo on gRPC. */
function call(port: Port, from: string | undefined, path = '/', more: RequestInit = {}): RequestInit {
  const grpc = port === 'grpc';
  return { localPort: PORTS[port], method: grpc ? 'POST' : 'GET', path: grpc ? '/proto.EchoTestService/Echo' : path, ...(from === undefined ? {} : { peer: from }), ...more };
}

/** The three rules (HTTP, gRPC; the TCP one never matches an HTTP request) of allow-*.yaml.tmpl, with a given source. */
function threeRules(name: string, action: 'ALLOW' | 'DENY', source: string, httpPaths = '["/allow"]', notPaths = ''): string {
  return ap(
    name,
    `selector: {matchLabels: {app: b}}
action: ${action}
rules:
- to: [{operation: {ports: ["18080", "18085"], paths: ${httpPaths}${notPaths}, methods: ["GET"]}}]
  from: [{source: {${source}}}]
- to: [{operation: {ports: ["17070"], paths: ["/proto.EchoTestService/Echo"], methods: ["POST"]}}]
  from: [{source: {${source}}}]
- to: [{operation: {ports: ["19090"]}}]
  from: [{source: {${source}}}]`,
  );
}

const DENY_GLOBAL = ap('policy-deny-system', 'action: DENY\nrules:\n- to: [{operation: {ports: ["18080", "18085"], paths: ["/global-deny*"], notPaths: ["/global-deny/allow"]}}]', 'istio-system');

function check(yaml: string, cases: readonly (readonly [string, RequestInit, boolean])[]): void {
  const e = engineOf(yaml, TO);
  for (const [name, init, allow] of cases) {
    it(`${name} → ${allow ? 'allow' : 'deny'}`, () => assert.equal(decide(e, init), allow ? 'allow' : 'deny'));
  }
}

/** The allow/deny table of TestAuthz_Principal, _ServiceAccount and _Namespace, for one caller. */
function allowCases(from: string, allowed: boolean) {
  return [
    ...(['grpc'] as const).map((p) => [`${from} ${p}`, call(p, from), allowed] as const),
    ...(['http', 'http2'] as const).flatMap((p) => [
      [`${from} ${p} /allow`, call(p, from, '/allow'), allowed] as const,
      [`${from} ${p} /allow?param=value`, call(p, from, '/allow?param=value'), allowed] as const,
      [`${from} ${p} /deny`, call(p, from, '/deny'), false] as const,
      [`${from} ${p} /deny?param=value`, call(p, from, '/deny?param=value'), false] as const,
    ]),
  ];
}

describe('Istio TestAuthz_Principal', () => check(threeRules('b', 'ALLOW', `principals: ["${ALLOWED}"]`), [...allowCases(ALLOWED, true), ...allowCases(DENIED, false)]));

describe('Istio TestAuthz_ServiceAccount', () => check(threeRules('b', 'ALLOW', 'serviceAccounts: ["ns1/a"]'), [...allowCases(ALLOWED, true), ...allowCases(DENIED, false)]));

describe('Istio TestAuthz_Namespace', () => check(threeRules('b', 'ALLOW', 'namespaces: ["ns1"]'), [...allowCases(ALLOWED, true), ...allowCases(DENIED, false)]));

describe('Istio TestAuthz_TrustDomain', () => {
  const yaml = ap(
    'b',
    `selector: {matchLabels: {app: b}}
rules:
- to: [{operation: {ports: ["18080", "18085"], paths: ["/allow"], methods: ["GET"]}}]
  from: [{source: {trustDomains: ["cluster.local"]}}]
- to: [{operation: {ports: ["18080", "18085"], paths: ["/deny"], methods: ["GET"]}}]
  from: [{source: {trustDomains: ["bad.example.com"]}}]
- to: [{operation: {ports: ["18080", "18085"], paths: ["/not-trust-domain"], methods: ["GET"]}}]
  from: [{source: {notTrustDomains: ["cluster.local"]}}]
- to: [{operation: {ports: ["18080", "18085"], paths: ["/not-deny"], methods: ["GET"]}}]
  from: [{source: {notTrustDomains: ["bad.example.com"]}}]
- to: [{operation: {ports: ["17070"], paths: ["/proto.EchoTestService/Echo"], methods: ["POST"]}}]
  from: [{source: {trustDomains: ["cluster.local"]}}]`,
  );
  check(
    yaml,
    [ALLOWED, DENIED].flatMap((from) => [
      [`${from} grpc`, call('grpc', from), true] as const,
      ...(['http', 'http2'] as const).flatMap((p) => [
        [`${from} ${p} /allow`, call(p, from, '/allow'), true] as const,
        [`${from} ${p} /deny`, call(p, from, '/deny'), false] as const,
        [`${from} ${p} /not-trust-domain`, call(p, from, '/not-trust-domain'), false] as const,
        [`${from} ${p} /not-deny`, call(p, from, '/not-deny'), true] as const,
      ]),
    ]),
  );
});

/** The table of TestAuthz_DenyPrincipal and _DenyNamespace, for one caller. */
function denyCases(from: string, allow: boolean) {
  return [
    [`${from} grpc`, call('grpc', from), allow] as const,
    ...(['http', 'http2'] as const).flatMap((p) =>
      (
        [
          ['/deny', allow],
          ['/deny?param=value', allow],
          ['/deny/allow', true],
          ['/deny/allow?param=value', true],
          ['/allow', true],
          ['/allow?param=value', true],
          ['/global-deny', false],
          ['/global-deny?param=value', false],
          ['/global-deny/allow', true],
          ['/global-deny/allow?param=value', true],
        ] as const
      ).map(([path, want]) => [`${from} ${p} ${path}`, call(p, from, path), want] as const),
    ),
  ];
}

describe('Istio TestAuthz_DenyPrincipal (with deny-global in the root namespace)', () =>
  check(DENY_GLOBAL + threeRules('b', 'DENY', `principals: ["${DENIED}"]`, '["/deny*"]', ', notPaths: ["/deny/allow"]'), [...denyCases(ALLOWED, true), ...denyCases(DENIED, false)]));

describe('Istio TestAuthz_DenyNamespace (with deny-global in the root namespace)', () =>
  check(DENY_GLOBAL + threeRules('b', 'DENY', 'namespaces: ["ns2"]', '["/deny*"]', ', notPaths: ["/deny/allow"]'), [...denyCases(ALLOWED, true), ...denyCases(DENIED, false)]));

describe('Istio TestAuthz_NotNamespace', () => {
  const yaml = ap('b-deny', 'selector: {matchLabels: {app: b}}\naction: DENY\nrules:\n- from: [{source: {notNamespaces: ["ns1"]}}]');
  check(
    yaml,
    (['grpc', 'http', 'http2'] as const).flatMap((p) => [[`ns1 ${p}`, call(p, ALLOWED), true] as const, [`ns2 ${p}`, call(p, DENIED), false] as const]),
  );
});

describe('Istio TestAuthz_DenyPlaintext (notPrincipals: ["*"])', () => {
  const yaml = ap('b', 'selector: {matchLabels: {app: b}}\naction: DENY\nrules:\n- from: [{source: {notPrincipals: ["*"]}}]');
  check(
    yaml,
    (['grpc', 'http', 'http2'] as const).flatMap((p) => [[`mTLS ${p}`, call(p, ALLOWED), true] as const, [`plaintext ${p}`, call(p, undefined), false] as const]),
  );
});

describe('Istio TestAuthz_JWT (claims as Envoy’s jwt_authn leaves them: scope, permission and the configured spaceDelimitedClaims split)', () => {
  const yaml = ap(
    'b',
    `selector: {matchLabels: {app: b}}
rules:
- to: [{operation: {paths: ["/token1"], methods: ["GET"]}}]
  from: [{source: {requestPrincipals: ["test-issuer-1@istio.io/sub-1"]}}]
- to: [{operation: {paths: ["/token2"], methods: ["GET"]}}]
  when: [{key: "request.auth.claims[groups]", values: ["group-2"]}]
- to: [{operation: {paths: ["/tokenAny"], methods: ["GET"]}}]
  from: [{source: {requestPrincipals: ["*"]}}]
- to: [{operation: {paths: ["/scope"], methods: ["GET"]}}]
  when: [{key: "request.auth.claims[scope]", values: ["append", "write"]}]
- to: [{operation: {paths: ["/otherscope"], methods: ["GET"]}}]
  when: [{key: "request.auth.claims[scope]", values: ["admin"]}]
- to: [{operation: {paths: ["/permission"], methods: ["GET"]}}]
  when: [{key: "request.auth.claims[permission]", values: ["write", "append"]}]
- to: [{operation: {paths: ["/custom-scope-admin"], methods: ["GET"]}}]
  when: [{key: "request.auth.claims[custom_scope]", values: ["admin"]}]
- to: [{operation: {paths: ["/custom-scope-user"], methods: ["GET"]}}]
  when: [{key: "request.auth.claims[custom_scope]", values: ["user"]}]
- to: [{operation: {paths: ["/nested-key1"], methods: ["GET"]}}]
  when: [{key: "request.auth.claims[nested][key1]", values: ["valueB"]}]
- to: [{operation: {paths: ["/nested-non-exist"], methods: ["GET"]}}]
  when: [{key: "request.auth.claims[nested][non-exist]", values: ["valueC"]}]
- to: [{operation: {paths: ["/nested-key2"], methods: ["GET"]}}]
  when: [{key: "request.auth.claims[nested][key2]", values: ["valueC"]}]
- to: [{operation: {paths: ["/nested-2-key1"], methods: ["GET"]}}]
  when: [{key: "request.auth.claims[nested][nested-2][key1]", values: ["valueA"]}]
- to: [{operation: {paths: ["/valid-jwt"]}}]
  when: [{key: request.auth.principal, values: ["*"]}]
- to: [{operation: {paths: ["*/presenter"]}}]
  when: [{key: request.auth.presenter, values: ["bar"]}]
- to: [{operation: {paths: ["*/audiences"]}}]
  when: [{key: request.auth.audiences, values: ["foo"]}]
- to: [{operation: {paths: ["/token3"], methods: ["GET"]}}]
  from: [{source: {notRequestPrincipals: ["test-issuer-1@istio.io/sub-1"]}}]`,
  );
  const i1 = { iss: 'test-issuer-1@istio.io', sub: 'sub-1' };
  const i2 = { iss: 'test-issuer-2@istio.io', sub: 'sub-2' };
  const T: Record<string, Record<string, unknown> | undefined> = {
    NoJWT: undefined,
    Token1: { ...i1, groups: ['group-1'] },
    Token2: { ...i2, groups: ['group-2'] },
    WithSpaceDelimitedPermission: { ...i2, permission: ['read', 'write'] },
    WithSpaceDelimitedScope: { ...i2, scope: ['write', 'read'] },
    CustomScope: { ...i2, custom_scope: ['admin', 'user'] },
    Nested1: { ...i1, nested: { key1: ['valueA', 'valueB'], 'nested-2': { key1: ['valueA', 'valueB'] } } },
    Nested2: { ...i1, nested: { key2: 'valueC', 'nested-2': { key2: 'valueC' } } },
    WithAud: { ...i1, aud: 'foo' },
    WithAudList: { ...i1, aud: ['foo', 'buzz'] },
  };
  const rows: [string, string, boolean][] = [
    ['NoJWT', '/token1', false],
    ['NoJWT', '/token2', false],
    ['Token1', '/token1', true],
    ['Token1', '/token2', false],
    ['Token2', '/token1', false],
    ['Token2', '/token2', true],
    ['Token1', '/token3', false],
    ['Token2', '/token3', true],
    ['Token1', '/tokenAny', true],
    ['Token2', '/tokenAny', true],
    ['Token1', '/permission', false],
    ['Token2', '/permission', false],
    ['WithSpaceDelimitedPermission', '/permission', true],
    ['WithSpaceDelimitedScope', '/scope', true],
    ['WithSpaceDelimitedScope', '/otherscope', false],
    ['CustomScope', '/custom-scope-admin', true],
    ['CustomScope', '/custom-scope-user', true],
    ['NoJWT', '/custom-scope-admin', false],
    ['NoJWT', '/custom-scope-user', false],
    ['Token1', '/custom-scope-admin', false],
    ['Token1', '/custom-scope-user', false],
    ['Nested1', '/nested-key1', true],
    ['Nested2', '/nested-key1', false],
    ['Nested1', '/nested-key2', false],
    ['Nested2', '/nested-key2', true],
    ['Nested1', '/nested-2-key1', true],
    ['Nested2', '/nested-2-key1', false],
    ['Nested1', '/nested-non-exist', false],
    ['Nested2', '/nested-non-exist', false],
    ['NoJWT', '/tokenAny', false],
    ['WithAud', '/audiences', true],
    ['WithAudList', '/audiences', true],
  ];
  check(
    yaml,
    rows.flatMap(([token, path, allow]) => (['http', 'http2'] as const).map((p) => [`[${token}] ${p} ${path}`, call(p, ALLOWED, path, { claims: T[token] }), allow] as const)),
  );
});

describe('Istio TestAuthz_Conditions (remaining rows: source.ip, source.namespace, source.principal, /other)', () => {
  const rule = (path: string, cond: string) => `- to: [{operation: {paths: ["${path}"]}}]\n  when: [${cond}]`;
  const yaml = ap(
    'b-conditions',
    `selector: {matchLabels: {app: b}}
rules:
${rule('/source-ip', '{key: source.ip, values: ["10.1.0.5"]}')}
${rule('/source-ip-notValues', '{key: source.ip, notValues: ["10.2.0.5"]}')}
${rule('/source-namespace', '{key: source.namespace, values: ["ns1"]}')}
${rule('/source-namespace-notValues', '{key: source.namespace, notValues: ["ns2"]}')}
${rule('/source-principal', `{key: source.principal, values: ["${ALLOWED}"]}`)}
${rule('/source-principal-notValues', `{key: source.principal, notValues: ["${DENIED}"]}`)}`,
  );
  const addr: Record<string, string> = { [ALLOWED]: '10.1.0.5', [DENIED]: '10.2.0.5' };
  check(
    yaml,
    [ALLOWED, DENIED].flatMap((from) =>
      ['/source-ip', '/source-ip-notValues', '/source-namespace', '/source-namespace-notValues', '/source-principal', '/source-principal-notValues', '/other'].map(
        (path) => [`${from} ${path}`, call('http', from, path, { remoteAddress: addr[from] }), from === ALLOWED && path !== '/other'] as const,
      ),
    ),
  );
});

describe('Istio TestAuthz_PathNormalization (paths as the adapter hands them over, normalized)', () => {
  // The adapters normalize (Envoy's normalize_path, merge_slashes, unescaping of %2E); the
  // engine sees the result, so /public/../private arrives as /private.
  const yaml = ap('b', 'selector: {matchLabels: {app: b}}\nrules:\n- to: [{operation: {paths: ["/public*"], methods: ["GET"]}}]');
  check(yaml, [
    ['/public', call('http', ALLOWED, '/public'), true],
    ['/public/../public normalized', call('http', ALLOWED, '/public'), true],
    ['/private', call('http', ALLOWED, '/private'), false],
    ['/public/../private normalized', call('http', ALLOWED, '/private'), false],
  ]);
});
