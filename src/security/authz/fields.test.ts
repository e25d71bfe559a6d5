import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide, engineOf, policy, type RequestInit } from '../../../test/helpers/authz.ts';

/** One ALLOW policy with one rule (flow-style YAML): allowed exactly when the rule matches. */
type Row = readonly [name: string, rule: string, request: RequestInit, allow: boolean];

function table(title: string, rows: readonly Row[]): void {
  describe(title, () => {
    for (const [name, rule, init, allow] of rows) {
      it(`${name} → ${allow ? 'allow' : 'deny'}`, () => {
        const e = engineOf(policy('p', `selector: {matchLabels: {app: httpbin}}\nrules:\n- ${rule}`));
        assert.equal(decide(e, init), allow ? 'allow' : 'deny');
      });
    }
  });
}

const SLEEP = 'cluster.local/ns/foo/sa/sleep';
const jwt = (iss: string, sub: string, more: Record<string, unknown> = {}) => ({ claims: { iss, sub, ...more } });
const from = (src: string) => `{from: [{source: {${src}}}]}`;
const to = (op: string) => `{to: [{operation: {${op}}}]}`;

table('principals / notPrincipals (the peer certificate, spiffe:// + value)', [
  ['exact, the same peer', from(`principals: ["${SLEEP}"]`), { peer: SLEEP }, true],
  ['exact, another service account', from(`principals: ["${SLEEP}"]`), { peer: 'cluster.local/ns/foo/sa/other' }, false],
  ['exact, plaintext (no peer certificate)', from(`principals: ["${SLEEP}"]`), {}, false],
  ['prefix', from('principals: ["cluster.local/ns/foo/*"]'), { peer: SLEEP }, true],
  ['prefix, another namespace', from('principals: ["cluster.local/ns/foo/*"]'), { peer: 'cluster.local/ns/bar/sa/sleep' }, false],
  ['suffix', from('principals: ["*/sa/sleep"]'), { peer: 'other.td/ns/x/sa/sleep' }, true],
  ['suffix, no match', from('principals: ["*/sa/sleep"]'), { peer: 'cluster.local/ns/x/sa/sleepy' }, false],
  ['presence *: any mTLS peer', from('principals: ["*"]'), { peer: 'a/b/c' }, true],
  ['presence *: plaintext', from('principals: ["*"]'), {}, false],
  ['case matters', from(`principals: ["${SLEEP}"]`), { peer: 'cluster.local/ns/foo/sa/Sleep' }, false],
  ['notPrincipals *: plaintext matches', from('notPrincipals: ["*"]'), {}, true],
  ['notPrincipals *: an mTLS peer does not', from('notPrincipals: ["*"]'), { peer: SLEEP }, false],
  ['notPrincipals exact, another peer', from(`notPrincipals: ["${SLEEP}"]`), { peer: 'cluster.local/ns/foo/sa/x' }, true],
  ['principals and notPrincipals ANDed', from(`principals: ["cluster.local/ns/foo/*"], notPrincipals: ["${SLEEP}"]`), { peer: SLEEP }, false],
  ['values ORed', from(`principals: ["x/ns/y/sa/z", "${SLEEP}"]`), { peer: SLEEP }, true],
]);

table('requestPrincipals / notRequestPrincipals (the JWT, iss and sub claims)', [
  ['exact', from('requestPrincipals: ["iss.example/alice"]'), jwt('iss.example', 'alice'), true],
  ['exact, another subject', from('requestPrincipals: ["iss.example/alice"]'), jwt('iss.example', 'bob'), false],
  ['exact, no token', from('requestPrincipals: ["iss.example/alice"]'), {}, false],
  ['issuer that is a URL', from('requestPrincipals: ["https://accounts.example.com/alice"]'), jwt('https://accounts.example.com', 'alice'), true],
  ['a subject with a "/" is split at the last "/", as Istio does', from('requestPrincipals: ["i/a/b"]'), jwt('i', 'a/b'), false],
  ['presence *', from('requestPrincipals: ["*"]'), jwt('i', 's'), true],
  ['presence *, no token', from('requestPrincipals: ["*"]'), {}, false],
  ['presence *, empty subject', from('requestPrincipals: ["*"]'), jwt('i', ''), false],
  ['iss/* : any subject', from('requestPrincipals: ["iss.example/*"]'), jwt('iss.example', 'x'), true],
  ['iss/prefix*', from('requestPrincipals: ["iss.example/al*"]'), jwt('iss.example', 'alice'), true],
  ['iss/prefix*, other issuer', from('requestPrincipals: ["iss.example/al*"]'), jwt('other', 'alice'), false],
  ['*/sub: any issuer', from('requestPrincipals: ["*/alice"]'), jwt('whoever', 'alice'), true],
  ['*suffix/sub', from('requestPrincipals: ["*.example/alice"]'), jwt('iss.example', 'alice'), true],
  ['*suffix without "/": subject suffix', from('requestPrincipals: ["*ice"]'), jwt('iss', 'alice'), true],
  ['prefix* without "/": issuer prefix, any subject', from('requestPrincipals: ["iss.*"]'), jwt('iss.example', 'bob'), true],
  ['no "/": the issuer with an empty subject', from('requestPrincipals: ["iss.example"]'), jwt('iss.example', ''), true],
  ['no "/": a non-empty subject does not match', from('requestPrincipals: ["iss.example"]'), jwt('iss.example', 'alice'), false],
  ['notRequestPrincipals *: no token', from('notRequestPrincipals: ["*"]'), {}, true],
  ['notRequestPrincipals *: a token', from('notRequestPrincipals: ["*"]'), jwt('i', 's'), false],
  ['notRequestPrincipals exact, another subject', from('notRequestPrincipals: ["i/s"]'), jwt('i', 't'), true],
]);

table('namespaces / notNamespaces (from the peer certificate)', [
  ['exact', from('namespaces: ["foo"]'), { peer: SLEEP }, true],
  ['exact, another namespace', from('namespaces: ["foo"]'), { peer: 'cluster.local/ns/foobar/sa/sleep' }, false],
  ['exact, plaintext', from('namespaces: ["foo"]'), {}, false],
  ['prefix', from('namespaces: ["fo*"]'), { peer: 'cluster.local/ns/foobar/sa/x' }, true],
  ['suffix', from('namespaces: ["*bar"]'), { peer: 'cluster.local/ns/foobar/sa/x' }, true],
  ['suffix, no match', from('namespaces: ["*bar"]'), { peer: 'cluster.local/ns/barfoo/sa/x' }, false],
  ['presence', from('namespaces: ["*"]'), { peer: SLEEP }, true],
  ['notNamespaces: plaintext matches (Envoy: not authenticated in foo)', from('notNamespaces: ["foo"]'), {}, true],
  ['notNamespaces: the namespace', from('notNamespaces: ["foo"]'), { peer: SLEEP }, false],
  ['notNamespaces: another namespace', from('notNamespaces: ["foo"]'), { peer: 'cluster.local/ns/bar/sa/x' }, true],
]);

table('serviceAccounts / notServiceAccounts', [
  ['sa alone means the policy’s namespace', from('serviceAccounts: ["sleep"]'), { peer: SLEEP }, true],
  ['sa alone, same name in another namespace', from('serviceAccounts: ["sleep"]'), { peer: 'cluster.local/ns/bar/sa/sleep' }, false],
  ['ns/sa', from('serviceAccounts: ["bar/sleep"]'), { peer: 'cluster.local/ns/bar/sa/sleep' }, true],
  ['a longer service account name', from('serviceAccounts: ["sleep"]'), { peer: 'cluster.local/ns/foo/sa/sleep-v2' }, false],
  ['any trust domain', from('serviceAccounts: ["sleep"]'), { peer: 'other.td/ns/foo/sa/sleep' }, true],
  ['plaintext', from('serviceAccounts: ["sleep"]'), {}, false],
  ['notServiceAccounts, the account', from('notServiceAccounts: ["sleep"]'), { peer: SLEEP }, false],
  ['notServiceAccounts, another account', from('notServiceAccounts: ["sleep"]'), { peer: 'cluster.local/ns/foo/sa/x' }, true],
]);

table('trustDomains / notTrustDomains', [
  ['exact', from('trustDomains: ["cluster.local"]'), { peer: SLEEP }, true],
  ['exact, another trust domain', from('trustDomains: ["bad.example.com"]'), { peer: SLEEP }, false],
  ['exact is not a prefix', from('trustDomains: ["cluster"]'), { peer: SLEEP }, false],
  ['suffix', from('trustDomains: ["*.local"]'), { peer: SLEEP }, true],
  ['prefix', from('trustDomains: ["clus*"]'), { peer: SLEEP }, true],
  ['presence', from('trustDomains: ["*"]'), { peer: SLEEP }, true],
  ['plaintext', from('trustDomains: ["*"]'), {}, false],
  ['notTrustDomains, the trust domain (Istio TestAuthz_TrustDomain /not-trust-domain)', from('notTrustDomains: ["cluster.local"]'), { peer: SLEEP }, false],
  ['notTrustDomains, another (Istio TestAuthz_TrustDomain /not-deny)', from('notTrustDomains: ["bad.example.com"]'), { peer: SLEEP }, true],
]);

table('ipBlocks / notIpBlocks (the TCP peer)', [
  ['in the range', from('ipBlocks: ["10.0.0.0/24"]'), {}, true],
  ['single address', from('ipBlocks: ["10.0.0.7"]'), {}, true],
  ['out of the range', from('ipBlocks: ["10.0.1.0/24"]'), {}, false],
  ['an IPv4-mapped socket address', from('ipBlocks: ["10.0.0.0/24"]'), { remoteAddress: '::ffff:10.0.0.7' }, true],
  ['IPv6', from('ipBlocks: ["2001:db8::/32"]'), { remoteAddress: '2001:db8::9' }, true],
  ['X-Forwarded-For is not the peer', from('ipBlocks: ["1.2.3.4"]'), { headers: { 'x-forwarded-for': '1.2.3.4' } }, false],
  ['notIpBlocks, in', from('notIpBlocks: ["10.0.0.0/24"]'), {}, false],
  ['notIpBlocks, out', from('notIpBlocks: ["10.9.0.0/16"]'), {}, true],
]);

table('remoteIpBlocks / notRemoteIpBlocks (X-Forwarded-For, sidecar semantics)', [
  ['the last X-Forwarded-For entry', from('remoteIpBlocks: ["1.2.3.0/24"]'), { headers: { 'x-forwarded-for': '9.9.9.9, 1.2.3.4' } }, true],
  ['an earlier entry is not it', from('remoteIpBlocks: ["9.9.9.9"]'), { headers: { 'x-forwarded-for': '9.9.9.9, 1.2.3.4' } }, false],
  ['no X-Forwarded-For: the peer', from('remoteIpBlocks: ["10.0.0.7"]'), {}, true],
  ['an entry that is no address: the peer', from('remoteIpBlocks: ["10.0.0.7"]'), { headers: { 'x-forwarded-for': 'unknown' } }, true],
  ['repeated headers are joined with ","', from('remoteIpBlocks: ["5.5.5.5"]'), { headers: { 'x-forwarded-for': ['1.1.1.1', '5.5.5.5'] } }, true],
  ['notRemoteIpBlocks', from('notRemoteIpBlocks: ["1.2.3.4"]'), { headers: { 'x-forwarded-for': '1.2.3.4' } }, false],
]);

table('hosts / notHosts (:authority, ignoring case)', [
  ['exact', to('hosts: ["httpbin:8000"]'), {}, true],
  ['exact, other case', to('hosts: ["HTTPBIN:8000"]'), {}, true],
  ['the port is part of the authority', to('hosts: ["httpbin"]'), {}, false],
  ['suffix', to('hosts: ["*.example.com"]'), { authority: 'API.Example.COM' }, true],
  ['suffix, no match', to('hosts: ["*.example.com"]'), { authority: 'example.com' }, false],
  // A trailing dot is part of the authority: Istio's HostMatcher is an exact (or affix) string match and istiod sets no strip_trailing_host_dot.
  ['a trailing dot is another authority', to('hosts: ["reviews.default.svc.cluster.local"]'), { authority: 'reviews.default.svc.cluster.local.' }, false],
  ['a trailing dot, named with it', to('hosts: ["reviews.default.svc.cluster.local."]'), { authority: 'Reviews.default.svc.cluster.local.' }, true],
  ['a trailing dot, suffix', to('hosts: ["*.example.com"]'), { authority: 'api.example.com.' }, false],
  ['prefix', to('hosts: ["httpbin*"]'), { authority: 'HTTPBIN.foo:8000' }, true],
  ['presence', to('hosts: ["*"]'), {}, true],
  ['notHosts (Istio TestAuthz_NotHost allow.*)', to('notHosts: ["deny.httpbin.com"]'), { authority: 'allow.httpbin.com' }, true],
  ['notHosts (Istio TestAuthz_NotHost deny.*)', to('notHosts: ["deny.httpbin.com"]'), { authority: 'Deny.Httpbin.com' }, false],
]);

table('ports / notPorts (the local port)', [
  ['the port', to('ports: ["8000"]'), {}, true],
  ['another port', to('ports: ["9000"]'), {}, false],
  ['values ORed', to('ports: ["9000", "8000"]'), {}, true],
  ['notPorts, the port (Istio TestAuthz_NotPort)', to('notPorts: ["8000"]'), {}, false],
  ['notPorts, another port', to('notPorts: ["8000"]'), { localPort: 8080 }, true],
]);

table('methods / notMethods (:method, case-sensitive)', [
  ['exact', to('methods: ["GET"]'), {}, true],
  ['another method', to('methods: ["POST"]'), {}, false],
  ['case matters', to('methods: ["GET"]'), { method: 'get' }, false],
  ['prefix', to('methods: ["P*"]'), { method: 'PUT' }, true],
  ['suffix', to('methods: ["*CH"]'), { method: 'PATCH' }, true],
  ['presence', to('methods: ["*"]'), { method: 'DELETE' }, true],
  ['notMethods (Istio TestAuthz_NotMethod GET)', to('notMethods: ["PUT"]'), {}, true],
  ['notMethods (Istio TestAuthz_NotMethod PUT)', to('notMethods: ["PUT"]'), { method: 'PUT' }, false],
]);

table('paths / notPaths (the normalized path without query)', [
  ['exact', to('paths: ["/headers"]'), {}, true],
  ['exact, with a query', to('paths: ["/headers"]'), { path: '/headers?x=1' }, true],
  ['exact, with a fragment', to('paths: ["/headers"]'), { path: '/headers#top' }, true],
  ['exact, trailing slash', to('paths: ["/headers"]'), { path: '/headers/' }, false],
  ['case matters', to('paths: ["/headers"]'), { path: '/Headers' }, false],
  ['prefix', to('paths: ["/api/*"]'), { path: '/api/v1?x' }, true],
  ['prefix is a string prefix', to('paths: ["/api*"]'), { path: '/apiv2' }, true],
  ['prefix, too short', to('paths: ["/api/*"]'), { path: '/api' }, false],
  ['prefix, only in the query', to('paths: ["/api/*"]'), { path: '/x?/api/' }, false],
  ['suffix', to('paths: ["*.png"]'), { path: '/a/b.png?size=2' }, true],
  ['suffix, only in the query', to('paths: ["*.png"]'), { path: '/a/b?x=.png' }, false],
  ['presence', to('paths: ["*"]'), { path: '/' }, true],
  ['template {*}', to('paths: ["/api/{*}/users"]'), { path: '/api/v1/users' }, true],
  ['template {*} is one segment', to('paths: ["/api/{*}/users"]'), { path: '/api/v1/x/users' }, false],
  ['template {**}', to('paths: ["/api/{**}"]'), { path: '/api/v1/x/users' }, true],
  ['gRPC method path', to('paths: ["/proto.EchoTestService/Echo"]'), { method: 'POST', path: '/proto.EchoTestService/Echo' }, true],
  ['notPaths', to('notPaths: ["/admin*"]'), { path: '/admin/x' }, false],
  ['notPaths, another path', to('notPaths: ["/admin*"]'), { path: '/public' }, true],
  ['paths and notPaths ANDed (Istio deny-global: /global-deny* but not /global-deny/allow)', to('paths: ["/g*"], notPaths: ["/g/allow"]'), { path: '/g/allow' }, false],
  ['a CONNECT has no path (Envoy sets no :path): presence does not match', to('paths: ["*"]'), { method: 'CONNECT', path: 'example.com:443' }, false],
  ['a CONNECT: a prefix does not match', to('paths: ["/*"]'), { method: 'CONNECT', path: '/example.com:443' }, false],
  ['a CONNECT: notPaths matches', to('notPaths: ["/admin"]'), { method: 'CONNECT', path: '/admin' }, true],
  ['an HTTP/2 extended CONNECT (RFC 8441) arrives as Envoy turns it, GET with upgrade: its :path matches', to('paths: ["/chat"]'), { method: 'GET', path: '/chat', headers: Object.assign(Object.create(null), { upgrade: 'websocket', connection: 'upgrade' }) }, true],
  ['a CONNECT with a :protocol header in the view is still a CONNECT: no path', to('paths: ["/chat"]'), { method: 'CONNECT', path: '/chat', headers: Object.assign(Object.create(null), { ':protocol': 'websocket' }) }, false],
]);

table('rule structure: from ORed, to ORed, fields ANDed', [
  ['one of two sources', `{from: [{source: {principals: ["x/ns/y/sa/z"]}}, {source: {namespaces: ["foo"]}}]}`, { peer: SLEEP }, true],
  ['one of two operations', `{to: [{operation: {methods: ["POST"]}}, {operation: {paths: ["/headers"]}}]}`, {}, true],
  ['fields of one operation ANDed', `{to: [{operation: {methods: ["GET"], paths: ["/other"]}}]}`, {}, false],
  ['from and to ANDed', `{from: [{source: {namespaces: ["foo"]}}], to: [{operation: {paths: ["/headers"]}}]}`, {}, false],
  ['empty rule {} matches everything', '{}', {}, true],
]);
