import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../test/helpers/config.ts';
import { mergeDelegates, mergeHTTPRoute } from './delegation.ts';
import type { HTTPMatchRequest, HTTPRoute } from './types/networking.ts';

const NET = 'networking.istio.io/v1';
const TO = { route: [{ destination: { host: 'a' } }] };

/** Istio's mergeHTTPRoute, case by case (pilot/pkg/model/virtualservice.go, and its tests). */
describe('mergeHTTPRoute: a child rule inside its root rule', () => {
  const rows: { name: string; root: HTTPMatchRequest[] | undefined; child: HTTPMatchRequest[] | undefined; want: HTTPMatchRequest[] | undefined | 'dropped' }[] = [
    { name: 'no matches on either', root: undefined, child: undefined, want: undefined },
    { name: 'the root matches, the child does not: the root\'s matches', root: [{ uri: { prefix: '/api' } }], child: undefined, want: [{ uri: { prefix: '/api' } }] },
    { name: 'the child matches, the root does not: the child\'s', root: undefined, child: [{ uri: { exact: '/x' } }], want: [{ uri: { exact: '/x' } }] },
    { name: 'a child prefix inside the root prefix', root: [{ uri: { prefix: '/api' } }], child: [{ uri: { prefix: '/api/v1' } }], want: [{ uri: { prefix: '/api/v1' } }] },
    { name: 'a child exact inside the root prefix', root: [{ uri: { prefix: '/api' } }], child: [{ uri: { exact: '/api/x' } }], want: [{ uri: { exact: '/api/x' } }] },
    { name: 'a child prefix outside the root prefix: dropped', root: [{ uri: { prefix: '/api' } }], child: [{ uri: { prefix: '/web' } }], want: 'dropped' },
    { name: 'a child prefix under a root exact: dropped', root: [{ uri: { exact: '/api' } }], child: [{ uri: { prefix: '/api' } }], want: 'dropped' },
    { name: 'a regex on one side and a prefix on the other: dropped', root: [{ uri: { regex: '/a.*' } }], child: [{ uri: { prefix: '/a' } }], want: 'dropped' },
    {
      name: 'other conditions are combined, the child\'s winning',
      root: [{ name: 'r', uri: { prefix: '/api' }, headers: { a: { exact: '1' } }, sourceLabels: { app: 'web' } }],
      child: [{ name: 'c', method: { exact: 'GET' }, headers: { b: { exact: '2' } }, port: 9080 }],
      want: [{ name: 'r-c', uri: { prefix: '/api' }, method: { exact: 'GET' }, headers: { a: { exact: '1' }, b: { exact: '2' } }, sourceLabels: { app: 'web' }, port: 9080 }],
    },
    { name: 'a header value outside the root\'s: dropped', root: [{ headers: { a: { exact: '1' } } }], child: [{ headers: { a: { exact: '2' } } }], want: 'dropped' },
    { name: 'different ignoreUriCase: dropped', root: [{ uri: { prefix: '/a' }, ignoreUriCase: true }], child: [{ uri: { prefix: '/a/b' } }], want: 'dropped' },
    { name: 'different ports: dropped', root: [{ port: 80 }], child: [{ port: 81 }], want: 'dropped' },
    { name: 'a child without the root\'s sourceNamespace: dropped (Istio)', root: [{ sourceNamespace: 'a' }], child: [{ uri: { prefix: '/' } }], want: 'dropped' },
    {
      name: 'each child match is merged with every root match it fits',
      root: [{ uri: { prefix: '/a' } }, { uri: { prefix: '/b' } }],
      child: [{ headers: { x: { exact: '1' } } }],
      want: [{ uri: { prefix: '/a' }, headers: { x: { exact: '1' } } }, { uri: { prefix: '/b' }, headers: { x: { exact: '1' } } }],
    },
    { name: 'one child match fitting no root match drops the rule', root: [{ uri: { prefix: '/a' } }], child: [{ uri: { prefix: '/a/1' } }, { uri: { prefix: '/z' } }], want: 'dropped' },
  ];
  for (const r of rows) {
    it(r.name, () => {
      const root: HTTPRoute = r.root === undefined ? {} : { match: r.root };
      const merged = mergeHTTPRoute(root, { ...TO, ...(r.child === undefined ? {} : { match: r.child }) });
      if (r.want === 'dropped') assert.equal(merged, undefined);
      else assert.deepEqual(merged?.match, r.want);
    });
  }

  it('takes the root\'s rewrite, timeout, retries, fault, mirror, CORS and headers where the child has none', () => {
    const root: HTTPRoute = {
      name: 'root',
      rewrite: { uri: '/v2' },
      timeout: '3s',
      retries: { attempts: 5 },
      fault: { abort: { httpStatus: 503, percentage: { value: 1 } } },
      mirror: { host: 'm' },
      mirrorPercentage: { value: 10 },
      corsPolicy: { allowMethods: ['GET'] },
      headers: { request: { set: { x: '1' } } },
    };
    assert.deepEqual(mergeHTTPRoute(root, { ...TO, name: 'child', timeout: '1s' }), { ...root, ...TO, name: 'root-child', timeout: '1s' });
    assert.equal(mergeHTTPRoute(root, { ...TO, headers: { response: { add: { y: '2' } } } })?.headers?.request, undefined, 'headers are taken whole, not merged');
  });
});

function vss(yaml: string) {
  const { resources, errors } = validateYaml(yaml);
  assert.deepEqual(errors, []);
  return mergeDelegates(resources);
}

const root = (name: string, ns: string, rule: string) => doc(NET, 'VirtualService', name, `hosts: [reviews]\nhttp:\n- ${rule}`, ns);
const child = (name: string, ns: string, body: string) => doc(NET, 'VirtualService', name, body, ns);

describe('mergeDelegates', () => {
  it('replaces a root rule by the delegate\'s rules; delegates are not VirtualServices of their own', () => {
    const out = vss([
      root('reviews', 'default', 'match: [{uri: {prefix: /api}}]\n  delegate: {name: reviews-api, namespace: team}\n- route: [{destination: {host: reviews}}]'),
      child('reviews-api', 'team', 'http:\n- match: [{uri: {prefix: /api/v2}}]\n  route: [{destination: {host: reviews-v2}}]\n- route: [{destination: {host: reviews-v1.other.svc.cluster.local}}]'),
    ].join('---\n'));
    assert.deepEqual(out.problems, []);
    assert.deepEqual(out.virtualServices.map((v) => v.ref), ['VirtualService default/reviews']);
    const rules = out.virtualServices[0]?.spec.http ?? [];
    assert.deepEqual(rules.map((r) => [r.match, r.route?.[0]?.destination.host]), [
      [[{ uri: { prefix: '/api/v2' } }], 'reviews-v2.team.svc.cluster.local'], // short names resolve in the delegate's namespace
      [[{ uri: { prefix: '/api' } }], 'reviews-v1.other.svc.cluster.local'],
      [undefined, 'reviews'],
    ]);
  });

  it('a delegate without a namespace is looked up in the root\'s namespace', () => {
    const out = vss([root('reviews', 'default', 'delegate: {name: child}'), child('child', 'default', 'http:\n- route: [{destination: {host: reviews}}]')].join('---\n'));
    assert.equal(out.virtualServices[0]?.spec.http?.length, 1);
  });

  it('one delegate serves several roots', () => {
    const out = vss([
      root('a', 'default', 'match: [{uri: {prefix: /a}}]\n  delegate: {name: shared}'),
      doc(NET, 'VirtualService', 'b', 'hosts: [ratings]\nhttp:\n- match: [{uri: {prefix: /b}}]\n  delegate: {name: shared}'),
      child('shared', 'default', 'http:\n- route: [{destination: {host: reviews}}]'),
    ].join('---\n'));
    assert.deepEqual(out.virtualServices.map((v) => v.spec.http?.[0]?.match), [[{ uri: { prefix: '/a' } }], [{ uri: { prefix: '/b' } }]]);
  });

  const problems: { name: string; delegate: string; want: string }[] = [
    { name: 'a missing delegate', delegate: 'child', want: 'default/nope not-found' },
    { name: 'a delegate with hosts is not a delegate', delegate: 'with-hosts', want: 'default/with-hosts not-found' },
    { name: 'a delegate exported only to its own namespace, from another', delegate: 'private', want: 'team/private not-exported' },
  ];
  for (const p of problems) {
    it(`drops the rule of ${p.name}, and says so`, () => {
      const ref = p.delegate === 'child' ? '{name: nope}' : p.delegate === 'private' ? '{name: private, namespace: team}' : '{name: with-hosts}';
      const out = vss([
        root('reviews', 'default', `delegate: ${ref}\n- route: [{destination: {host: reviews}}]`),
        child('with-hosts', 'default', 'hosts: [ratings]\nhttp:\n- route: [{destination: {host: ratings}}]'),
        child('private', 'team', 'exportTo: ["."]\nhttp:\n- route: [{destination: {host: reviews}}]'),
      ].join('---\n'));
      assert.deepEqual(out.problems.map((x) => `${x.delegate} ${x.reason}`), [p.want]);
      const reviews = out.virtualServices.find((v) => v.metadata.name === 'reviews');
      assert.deepEqual(reviews?.spec.http?.map((r) => r.route?.[0]?.destination.host), ['reviews']);
    });
  }

  it('a delegate exported to the root\'s namespace by name is merged', () => {
    const out = vss([root('reviews', 'default', 'delegate: {name: c, namespace: team}'), child('c', 'team', 'exportTo: [default]\nhttp:\n- route: [{destination: {host: x}}]')].join('---\n'));
    assert.deepEqual(out.problems, []);
    assert.equal(out.virtualServices[0]?.spec.http?.[0]?.route?.[0]?.destination.host, 'x.team.svc.cluster.local');
  });
});
