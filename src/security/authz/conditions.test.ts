import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide, engineOf, judge, policy, type RequestInit } from '../../../test/helpers/authz.ts';

/** One ALLOW rule with one condition: allowed exactly when the condition holds. */
type Row = readonly [name: string, condition: string, request: RequestInit, allow: boolean];

function table(title: string, rows: readonly Row[]): void {
  describe(title, () => {
    for (const [name, cond, init, allow] of rows) {
      it(`${name} → ${allow ? 'allow' : 'deny'}`, () => {
        const e = engineOf(policy('p', `rules:\n- when: [${cond}]`));
        assert.deepEqual(e.findings, []);
        assert.equal(decide(e, init), allow ? 'allow' : 'deny');
      });
    }
  });
}

const SLEEP = 'cluster.local/ns/foo/sa/sleep';
const claims = (c: Record<string, unknown>): RequestInit => ({ claims: { iss: 'iss.example', sub: 'alice', ...c } });

table('request.headers[<name>]', [
  ['exact', '{key: "request.headers[x-foo]", values: ["foo"]}', { headers: { 'x-foo': 'foo' } }, true],
  ['exact, another value (Istio TestAuthz_Conditions)', '{key: "request.headers[x-foo]", values: ["foo"]}', { headers: { 'x-foo': 'bar' } }, false],
  ['missing header', '{key: "request.headers[x-foo]", values: ["foo"]}', {}, false],
  ['the name ignores case', '{key: "request.headers[X-Foo]", values: ["foo"]}', { headers: { 'x-foo': 'foo' } }, true],
  ['the value does not', '{key: "request.headers[x-foo]", values: ["foo"]}', { headers: { 'x-foo': 'FOO' } }, false],
  ['prefix', '{key: "request.headers[x-foo]", values: ["fo*"]}', { headers: { 'x-foo': 'food' } }, true],
  ['suffix', '{key: "request.headers[x-foo]", values: ["*od"]}', { headers: { 'x-foo': 'food' } }, true],
  ['presence: any value, even empty', '{key: "request.headers[x-foo]", values: ["*"]}', { headers: { 'x-foo': '' } }, true],
  ['presence: missing', '{key: "request.headers[x-foo]", values: ["*"]}', {}, false],
  ['repeated header joined with ","', '{key: "request.headers[x-foo]", values: ["a,b"]}', { headers: { 'x-foo': ['a', 'b'] } }, true],
  ['notValues (Istio TestAuthz_Conditions notValues foo)', '{key: "request.headers[x-foo]", notValues: ["bar"]}', { headers: { 'x-foo': 'foo' } }, true],
  ['notValues (Istio TestAuthz_Conditions notValues bar)', '{key: "request.headers[x-foo]", notValues: ["bar"]}', { headers: { 'x-foo': 'bar' } }, false],
  ['notValues, missing header', '{key: "request.headers[x-foo]", notValues: ["bar"]}', {}, true],
  ['values and notValues ANDed', '{key: "request.headers[x-foo]", values: ["b*"], notValues: ["bar"]}', { headers: { 'x-foo': 'bar' } }, false],
  ['host is the authority', '{key: "request.headers[host]", values: ["httpbin:8000"]}', {}, true],
  [':authority too', '{key: "request.headers[:authority]", values: ["httpbin*"]}', {}, true],
  [':method', '{key: "request.headers[:method]", values: ["GET"]}', {}, true],
  [':path carries the query', '{key: "request.headers[:path]", values: ["*?x=1"]}', { path: '/a?x=1' }, true],
  ['a header named constructor is a header like any other', '{key: "request.headers[constructor]", values: ["*"]}', {}, false],
]);

table('source.ip, remote.ip, destination.ip', [
  ['source.ip', '{key: source.ip, values: ["10.0.0.0/8"]}', {}, true],
  ['source.ip, out', '{key: source.ip, values: ["192.168.0.0/16"]}', {}, false],
  ['source.ip notValues', '{key: source.ip, notValues: ["10.0.0.7"]}', {}, false],
  ['remote.ip from X-Forwarded-For', '{key: remote.ip, values: ["1.2.3.4"]}', { headers: { 'x-forwarded-for': '1.2.3.4' } }, true],
  ['remote.ip without it: the peer', '{key: remote.ip, values: ["10.0.0.7"]}', {}, true],
  ['remote.ip notValues', '{key: remote.ip, notValues: ["1.2.3.4"]}', { headers: { 'x-forwarded-for': '1.2.3.4' } }, false],
  ['destination.ip (Istio destination-ip-good)', '{key: destination.ip, values: ["10.0.0.20"]}', {}, true],
  ['destination.ip (Istio destination-ip-bad)', '{key: destination.ip, values: ["1.2.3.4"]}', {}, false],
  ['destination.ip notValues (Istio destination-ip-notValues)', '{key: destination.ip, notValues: ["10.0.0.20"]}', {}, false],
  ['destination.ip unknown to the adapter never matches', '{key: destination.ip, values: ["0.0.0.0/0"]}', { localAddress: undefined }, false],
]);

table('destination.port, connection.sni', [
  ['destination.port (Istio destination-port-good)', '{key: destination.port, values: ["8000"]}', {}, true],
  ['destination.port (Istio destination-port-bad)', '{key: destination.port, values: ["1"]}', {}, false],
  ['destination.port notValues', '{key: destination.port, notValues: ["8000"]}', {}, false],
  ['connection.sni suffix (Istio connection-sni-good)', '{key: connection.sni, values: ["*.httpbin.foo.svc.cluster.local"]}', { sni: 'outbound_.8000_._.httpbin.foo.svc.cluster.local' }, true],
  ['connection.sni (Istio connection-sni-bad)', '{key: connection.sni, values: ["never-matched"]}', { sni: 'outbound_.8000_._.httpbin.foo.svc.cluster.local' }, false],
  ['connection.sni notValues', '{key: connection.sni, notValues: ["*.cluster.local"]}', { sni: 'a.cluster.local' }, false],
  ['connection.sni presence, plaintext', '{key: connection.sni, values: ["*"]}', {}, false],
  ['connection.sni notValues, plaintext', '{key: connection.sni, notValues: ["*"]}', {}, true],
]);

table('source.namespace, source.principal, source.serviceAccount, source.trustDomain', [
  ['source.namespace', '{key: source.namespace, values: ["foo"]}', { peer: SLEEP }, true],
  ['source.namespace, plaintext', '{key: source.namespace, values: ["foo"]}', {}, false],
  ['source.namespace notValues', '{key: source.namespace, notValues: ["bar"]}', { peer: SLEEP }, true],
  ['source.principal', `{key: source.principal, values: ["${SLEEP}"]}`, { peer: SLEEP }, true],
  ['source.principal notValues', `{key: source.principal, notValues: ["${SLEEP}"]}`, { peer: SLEEP }, false],
  ['source.principal prefix', '{key: source.principal, values: ["cluster.local/ns/foo/*"]}', { peer: SLEEP }, true],
  ['source.serviceAccount', '{key: source.serviceAccount, values: ["foo/sleep"]}', { peer: SLEEP }, true],
  ['source.serviceAccount, policy namespace', '{key: source.serviceAccount, values: ["sleep"]}', { peer: SLEEP }, true],
  ['source.serviceAccount, another', '{key: source.serviceAccount, values: ["bar/sleep"]}', { peer: SLEEP }, false],
  ['source.trustDomain (Istio source-trust-domain)', '{key: source.trustDomain, values: ["cluster.local"]}', { peer: SLEEP }, true],
  ['source.trustDomain notValues (Istio source-trust-domain-notValues)', '{key: source.trustDomain, notValues: ["bad.example.com"]}', { peer: SLEEP }, true],
  ['source.trustDomain suffix', '{key: source.trustDomain, values: ["*.local"]}', { peer: SLEEP }, true],
]);

table('request.auth.principal, audiences, presenter', [
  ['principal', '{key: request.auth.principal, values: ["iss.example/alice"]}', claims({}), true],
  ['principal presence (Istio /valid-jwt)', '{key: request.auth.principal, values: ["*"]}', claims({}), true],
  ['principal presence, no token', '{key: request.auth.principal, values: ["*"]}', {}, false],
  ['principal notValues', '{key: request.auth.principal, notValues: ["iss.example/alice"]}', claims({}), false],
  ['principal notValues, no token', '{key: request.auth.principal, notValues: ["iss.example/alice"]}', {}, true],
  ['audiences, a string aud (Istio JWTWithAud)', '{key: request.auth.audiences, values: ["foo"]}', claims({ aud: 'foo' }), true],
  ['audiences, a list aud (Istio JWTWithAudList)', '{key: request.auth.audiences, values: ["foo"]}', claims({ aud: ['bar', 'foo'] }), true],
  ['audiences, not in the list', '{key: request.auth.audiences, values: ["foo"]}', claims({ aud: ['bar'] }), false],
  ['audiences prefix', '{key: request.auth.audiences, values: ["fo*"]}', claims({ aud: ['bar', 'foo'] }), true],
  ['audiences notValues', '{key: request.auth.audiences, notValues: ["foo"]}', claims({ aud: ['bar', 'foo'] }), false],
  ['presenter', '{key: request.auth.presenter, values: ["bar"]}', claims({ azp: 'bar' }), true],
  ['presenter, another', '{key: request.auth.presenter, values: ["bar"]}', claims({ azp: 'baz' }), false],
]);

table('request.auth.claims[<name>] and nested [a][b]', [
  ['string claim (Istio /token2 groups)', '{key: "request.auth.claims[groups]", values: ["group-2"]}', claims({ groups: 'group-2' }), true],
  ['list claim', '{key: "request.auth.claims[groups]", values: ["group-2"]}', claims({ groups: ['group-1', 'group-2'] }), true],
  ['list claim, not in it', '{key: "request.auth.claims[groups]", values: ["group-3"]}', claims({ groups: ['group-1', 'group-2'] }), false],
  ['space-delimited claims arrive split (Istio /scope)', '{key: "request.auth.claims[scope]", values: ["append", "write"]}', claims({ scope: ['read', 'write'] }), true],
  ['a number is no string (Envoy matches strings only)', '{key: "request.auth.claims[level]", values: ["3"]}', claims({ level: 3 }), false],
  ['a boolean is no string', '{key: "request.auth.claims[admin]", values: ["true"]}', claims({ admin: true }), false],
  ['missing claim', '{key: "request.auth.claims[groups]", values: ["*"]}', claims({}), false],
  ['no token', '{key: "request.auth.claims[groups]", values: ["*"]}', {}, false],
  ['notValues, missing claim', '{key: "request.auth.claims[groups]", notValues: ["admin"]}', claims({}), true],
  ['notValues, a list with it', '{key: "request.auth.claims[groups]", notValues: ["admin"]}', claims({ groups: ['x', 'admin'] }), false],
  ['nested (Istio /nested-key1)', '{key: "request.auth.claims[nested][key1]", values: ["valueB"]}', claims({ nested: { key1: 'valueB' } }), true],
  ['nested, another value (Istio NestedToken2 /nested-key1)', '{key: "request.auth.claims[nested][key1]", values: ["valueB"]}', claims({ nested: { key1: 'valueA' } }), false],
  ['three levels (Istio /nested-2-key1)', '{key: "request.auth.claims[nested][nested-2][key1]", values: ["valueA"]}', claims({ nested: { 'nested-2': { key1: 'valueA' } } }), true],
  ['nested, missing (Istio /nested-non-exist)', '{key: "request.auth.claims[nested][non-exist]", values: ["valueC"]}', claims({ nested: { key1: 'valueC' } }), false],
  ['nested through a non-object', '{key: "request.auth.claims[nested][key1]", values: ["*"]}', claims({ nested: 'flat' }), false],
  ['a dotted name is one claim', '{key: "request.auth.claims[a.b]", values: ["x"]}', claims({ 'a.b': 'x' }), true],
  ['prototype names are plain claims', '{key: "request.auth.claims[constructor]", values: ["*"]}', claims({}), false],
]);

describe('experimental.envoy.filters.* (no Envoy metadata in meshlet: cannot be evaluated)', () => {
  const cond = '{key: "experimental.envoy.filters.network.mysql_proxy[db.table]", values: ["[update]"]}';
  it('ALLOW: the rule is dropped, so it allows nothing (a narrower allow)', () => {
    const e = engineOf(policy('p', `rules:\n- when: [${cond}]\n- to: [{operation: {paths: ["/open"]}}]`));
    assert.equal(decide(e, { path: '/headers' }), 'deny');
    assert.equal(decide(e, { path: '/open' }), 'allow', 'the other rule still works');
    assert.match(e.findings.map((f) => f.message).join('\n'), /rule 0 dropped: when experimental\.envoy\.filters\.network\.mysql_proxy\[db\.table\]: .*no Envoy filter metadata/);
  });
  it('DENY: the condition is dropped, so the rule denies more (a wider deny)', () => {
    const e = engineOf(policy('p', `action: DENY\nrules:\n- to: [{operation: {ports: ["8000"]}}]\n  when: [${cond}]`));
    assert.equal(decide(e), 'deny');
    assert.equal(decide(e, { localPort: 9000 }), 'allow', 'the rest of the rule still applies');
    assert.match(e.findings.map((f) => f.message).join('\n'), /ignored, so the DENY rule matches more requests/);
  });
  it('AUDIT: the condition is dropped too', () => {
    const e = engineOf(policy('p', `action: AUDIT\nrules:\n- when: [${cond}]`));
    assert.deepEqual(judge(e).audit, { policy: 'foo/p', rule: 0 });
  });
});

it('a plain header object’s inherited names are not headers', () => {
  const e = engineOf(policy('p', 'rules:\n- when: [{key: "request.headers[constructor]", values: ["*"]}]'));
  assert.equal(decide(e, { headers: { 'x-a': 'b' } }), 'deny');
});
