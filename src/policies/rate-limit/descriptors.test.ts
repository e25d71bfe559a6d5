import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HeaderMatcherSettings, RateLimitAction, RateLimitPolicySettings } from '../../config/types/local-rate-limit.ts';
import { compileHeaderMatcher, DescriptorBuilder, maskedAddress, type RateLimitRequest, trustedAddress } from './descriptors.ts';

const site = { sourceCluster: 'productpage.default', destinationCluster: 'inbound|9080||' };

function request(init: Partial<RateLimitRequest> = {}): RateLimitRequest {
  return {
    protocol: 'http1',
    method: 'GET',
    scheme: 'http',
    authority: 'productpage:9080',
    path: '/productpage?u=normal&flag=on',
    headers: { 'x-user': 'jason', 'x-multi': ['a', 'b'] },
    remoteAddress: '10.1.2.3',
    remotePort: 41234,
    localPort: 9080,
    peer: undefined,
    ...init,
  };
}

/** The descriptors of one policy entry with these actions, printed `k=v,k=v` (or `none`). */
function descriptorsOf(actions: RateLimitAction[], req = request(), extra: Partial<RateLimitPolicySettings> = {}): string {
  const b = new DescriptorBuilder([{ stage: 0, disableKey: '', actions, ...extra }], 0);
  const out = b.build(req, site);
  return out.length === 0 ? 'none' : out.map((d) => d.map((e) => `${e.key}=${e.value}`).join(',')).join(' | ');
}

const hm = (name: string, match: HeaderMatcherSettings['match'], more: Partial<HeaderMatcherSettings> = {}): HeaderMatcherSettings => ({ name, match, invert: false, treatMissingAsEmpty: false, ...more });
const exact = (value: string, ignoreCase = false) => ({ kind: 'string' as const, op: 'exact' as const, value, ignoreCase });

describe('rate-limit actions: the descriptors a request produces', () => {
  const rows: { name: string; actions: RateLimitAction[]; req?: Partial<RateLimitRequest>; want: string }[] = [
    { name: 'generic_key', actions: [{ type: 'generic_key', descriptorKey: 'generic_key', descriptorValue: 'all' }], want: 'generic_key=all' },
    { name: 'source_cluster and destination_cluster', actions: [{ type: 'source_cluster' }, { type: 'destination_cluster' }], want: 'source_cluster=productpage.default,destination_cluster=inbound|9080||' },
    { name: 'request_headers: the header\'s first value', actions: [{ type: 'request_headers', headerName: 'x-multi', descriptorKey: 'm', skipIfAbsent: false }], want: 'm=a' },
    { name: 'request_headers: a pseudo-header', actions: [{ type: 'request_headers', headerName: ':path', descriptorKey: 'PATH', skipIfAbsent: false }], want: 'PATH=/productpage?u=normal&flag=on' },
    { name: 'request_headers: absent drops the descriptor', actions: [{ type: 'generic_key', descriptorKey: 'g', descriptorValue: 'v' }, { type: 'request_headers', headerName: 'x-absent', descriptorKey: 'a', skipIfAbsent: false }], want: 'none' },
    { name: 'request_headers: absent with skip_if_absent drops only the entry', actions: [{ type: 'generic_key', descriptorKey: 'g', descriptorValue: 'v' }, { type: 'request_headers', headerName: 'x-absent', descriptorKey: 'a', skipIfAbsent: true }], want: 'g=v' },
    { name: 'request_headers: a header named like an object property is absent from a plain headers object', actions: [{ type: 'request_headers', headerName: 'constructor', descriptorKey: 'c', skipIfAbsent: false }], want: 'none' },
    {
      name: 'header_value_match: presence of a header named like an object property',
      actions: [{ type: 'header_value_match', descriptorKey: 'k', descriptorValue: 'v', expectMatch: true, headers: [hm('__proto__', { kind: 'present', present: true })] }],
      want: 'none',
    },
    { name: 'remote_address: the peer', actions: [{ type: 'remote_address' }], want: 'remote_address=10.1.2.3' },
    { name: 'remote_address: the last x-forwarded-for address (sidecar inbound: use_remote_address false)', actions: [{ type: 'remote_address' }], req: { headers: { 'x-forwarded-for': '1.1.1.1, 203.0.113.9' } }, want: 'remote_address=203.0.113.9' },
    { name: 'remote_address: a malformed x-forwarded-for falls back to the peer', actions: [{ type: 'remote_address' }], req: { headers: { 'x-forwarded-for': 'unknown' } }, want: 'remote_address=10.1.2.3' },
    { name: 'remote_address: a dual-stack socket\'s IPv4 peer', actions: [{ type: 'remote_address' }], req: { remoteAddress: '::ffff:10.9.8.7' }, want: 'remote_address=10.9.8.7' },
    { name: 'masked_remote_address /24', actions: [{ type: 'masked_remote_address', v4PrefixLen: 24, v6PrefixLen: 128 }], want: 'masked_remote_address=10.1.2.0/24' },
    { name: 'masked_remote_address IPv6 /64', actions: [{ type: 'masked_remote_address', v4PrefixLen: 32, v6PrefixLen: 64 }], req: { remoteAddress: '2001:abcd:ef01:2345:6789:abcd:ef01:234' }, want: 'masked_remote_address=2001:abcd:ef01:2345::/64' },
    {
      name: 'header_value_match (the Istio sample: /productpage, ignoring case)',
      actions: [{ type: 'header_value_match', descriptorKey: 'header_match', descriptorValue: 'productpage', expectMatch: true, headers: [hm(':path', { kind: 'string', op: 'prefix', value: '/productpage', ignoreCase: true })] }],
      req: { path: '/ProductPage' },
      want: 'header_match=productpage',
    },
    {
      name: 'header_value_match that does not match drops the descriptor',
      actions: [{ type: 'header_value_match', descriptorKey: 'header_match', descriptorValue: 'productpage', expectMatch: true, headers: [hm(':path', { kind: 'string', op: 'prefix', value: '/productpage', ignoreCase: false })] }],
      req: { path: '/reviews' },
      want: 'none',
    },
    {
      name: 'header_value_match with expect_match false: the entry when the headers do not match',
      actions: [{ type: 'header_value_match', descriptorKey: 'not_jason', descriptorValue: 'yes', expectMatch: false, headers: [hm('x-user', exact('jason'))] }],
      req: { headers: { 'x-user': 'alice' } },
      want: 'not_jason=yes',
    },
    {
      name: 'header_value_match: every header must match',
      actions: [{ type: 'header_value_match', descriptorKey: 'k', descriptorValue: 'v', expectMatch: true, headers: [hm('x-user', exact('jason')), hm(':method', exact('POST'))] }],
      want: 'none',
    },
    {
      name: 'query_parameter_value_match',
      actions: [{ type: 'query_parameter_value_match', descriptorKey: 'query_match', descriptorValue: 'flagged', expectMatch: true, queryParameters: [{ name: 'flag', match: { kind: 'string', op: 'exact', value: 'on', ignoreCase: false } }] }],
      want: 'query_match=flagged',
    },
    { name: 'query_parameters: the decoded value', actions: [{ type: 'query_parameters', queryParameterName: 'u', descriptorKey: 'user', skipIfAbsent: false }], req: { path: '/?u=a%20b' }, want: 'user=a b' },
    {
      name: 'CEL connection.uri_san_peer_certificate (Istio\'s service-account test)',
      actions: [{ type: 'expression', descriptorKey: 'client_id', attribute: { kind: 'connection', field: 'uri_san_peer_certificate' }, skipIfError: false, text: 'connection.uri_san_peer_certificate' }],
      req: { peer: { principal: 'spiffe://cluster.local/ns/echo/sa/clt' } },
      want: 'client_id=spiffe://cluster.local/ns/echo/sa/clt',
    },
    {
      name: 'CEL on a plaintext connection: no certificate, no descriptor',
      actions: [{ type: 'expression', descriptorKey: 'client_id', attribute: { kind: 'connection', field: 'uri_san_peer_certificate' }, skipIfError: false, text: 'connection.uri_san_peer_certificate' }],
      want: 'none',
    },
    {
      name: 'CEL with skip_if_error: the entry is left out, the descriptor kept',
      actions: [
        { type: 'generic_key', descriptorKey: 'g', descriptorValue: 'v' },
        { type: 'expression', descriptorKey: 'client_id', attribute: { kind: 'connection', field: 'uri_san_peer_certificate' }, skipIfError: true, text: 'connection.uri_san_peer_certificate' },
      ],
      want: 'g=v',
    },
    {
      name: 'CEL request attributes',
      actions: [
        { type: 'expression', descriptorKey: 'p', attribute: { kind: 'request', field: 'url_path' }, skipIfError: false, text: 'request.url_path' },
        { type: 'expression', descriptorKey: 'h', attribute: { kind: 'request-header', name: 'x-user' }, skipIfError: false, text: "request.headers['x-user']" },
        { type: 'expression', descriptorKey: 's', attribute: { kind: 'source', field: 'address' }, skipIfError: false, text: 'source.address' },
        { type: 'expression', descriptorKey: 'd', attribute: { kind: 'destination', field: 'port' }, skipIfError: false, text: 'destination.port' },
        { type: 'expression', descriptorKey: 'm', attribute: { kind: 'connection', field: 'mtls' }, skipIfError: false, text: 'connection.mtls' },
      ],
      want: 'p=/productpage,h=jason,s=10.1.2.3:41234,d=9080,m=false',
    },
  ];
  for (const r of rows) {
    it(r.name, () => assert.equal(descriptorsOf(r.actions, request(r.req)), r.want));
  }

  it('keeps one descriptor per policy entry, in order, and leaves out other stages and disabled entries', () => {
    const policies: RateLimitPolicySettings[] = [
      { stage: 0, disableKey: '', actions: [{ type: 'remote_address' }] },
      { stage: 1, disableKey: '', actions: [{ type: 'generic_key', descriptorKey: 'stage', descriptorValue: '1' }] },
      { stage: 0, disableKey: 'off', actions: [{ type: 'generic_key', descriptorKey: 'disabled', descriptorValue: 'yes' }] },
      { stage: 0, disableKey: '', actions: [{ type: 'generic_key', descriptorKey: 'generic_key', descriptorValue: 'all' }] },
    ];
    const out = new DescriptorBuilder(policies, 0).build(request(), site);
    assert.deepEqual(out, [[{ key: 'remote_address', value: '10.1.2.3' }], [{ key: 'generic_key', value: 'all' }]]);
    assert.deepEqual(new DescriptorBuilder(policies, 1).build(request(), site), [[{ key: 'stage', value: '1' }]]);
  });
});

describe('Envoy HeaderMatcher', () => {
  const rows: { name: string; m: HeaderMatcherSettings; headers: Record<string, string>; want: boolean }[] = [
    { name: 'present', m: hm('x-a', { kind: 'present', present: true }), headers: { 'x-a': '' }, want: true },
    { name: 'present, absent', m: hm('x-a', { kind: 'present', present: true }), headers: {}, want: false },
    { name: 'present_match false: absent', m: hm('x-a', { kind: 'present', present: false }), headers: {}, want: true },
    { name: 'exact', m: hm('x-a', exact('v')), headers: { 'x-a': 'v' }, want: true },
    { name: 'exact, other case', m: hm('x-a', exact('v')), headers: { 'x-a': 'V' }, want: false },
    { name: 'exact, ignore_case', m: hm('x-a', exact('v', true)), headers: { 'x-a': 'V' }, want: true },
    { name: 'suffix', m: hm('x-a', { kind: 'string', op: 'suffix', value: '.com', ignoreCase: false }), headers: { 'x-a': 'a.com' }, want: true },
    { name: 'contains', m: hm('x-a', { kind: 'string', op: 'contains', value: 'mid', ignoreCase: false }), headers: { 'x-a': 'amidb' }, want: true },
    { name: 'regex (full match)', m: hm('x-a', { kind: 'string', op: 'regex', value: 'v[0-9]', ignoreCase: false }), headers: { 'x-a': 'v1x' }, want: false },
    { name: 'range [start, end)', m: hm('x-a', { kind: 'range', start: 10, end: 20 }), headers: { 'x-a': '20' }, want: false },
    { name: 'range, in', m: hm('x-a', { kind: 'range', start: 10, end: 20 }), headers: { 'x-a': '15' }, want: true },
    { name: 'range, not a number', m: hm('x-a', { kind: 'range', start: 10, end: 20 }), headers: { 'x-a': '15a' }, want: false },
    { name: 'inverted', m: hm('x-a', exact('v'), { invert: true }), headers: { 'x-a': 'w' }, want: true },
    { name: 'inverted, absent: no match (Envoy)', m: hm('x-a', exact('v'), { invert: true }), headers: {}, want: false },
    { name: 'absent treated as empty', m: hm('x-a', exact(''), { treatMissingAsEmpty: true }), headers: {}, want: true },
  ];
  for (const r of rows) {
    it(`${r.name} → ${r.want}`, () => assert.equal(compileHeaderMatcher(r.m)(request({ headers: r.headers })), r.want));
  }
});

describe('client addresses', () => {
  it('trusts the last x-forwarded-for entry when it is an IP, else the peer', () => {
    assert.equal(trustedAddress(request({ headers: { 'x-forwarded-for': '2001:db8::1' } })), '2001:db8::1');
    assert.equal(trustedAddress(request({ headers: { 'x-forwarded-for': '10.0.0.1, not-an-ip' } })), '10.1.2.3');
  });

  const masks: [string, number, number, string][] = [
    ['192.168.1.1', 32, 128, '192.168.1.1/32'],
    ['192.168.1.1', 24, 128, '192.168.1.0/24'],
    ['192.168.1.1', 0, 128, '0.0.0.0/0'],
    ['2001:abcd:ef01:2345:6789:abcd:ef01:234', 32, 128, '2001:abcd:ef01:2345:6789:abcd:ef01:234/128'],
    ['2001:abcd:ef01:2345:6789:abcd:ef01:234', 32, 64, '2001:abcd:ef01:2345::/64'],
    ['2001:db8:0:0:1:0:0:1', 32, 128, '2001:db8::1:0:0:1/128'],
    ['fe80::1', 32, 10, 'fe80::/10'],
  ];
  for (const [addr, v4, v6, want] of masks) it(`masks ${addr} (/${v4}, /${v6}) to ${want}`, () => assert.equal(maskedAddress(addr, v4, v6), want));
});
