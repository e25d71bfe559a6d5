import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MeshletError } from '../core/errors.ts';
import type { CallEndMessage, CallStartMessage, InboundEndMessage, WorkloadIdentity } from '../core/observe.ts';
import { AttributeView, clientRecord, flagBits, serverRecord } from './attributes.ts';
import { compileCel } from './cel.ts';

const productpage: WorkloadIdentity = { service: 'productpage', namespace: 'bookinfo', labels: { app: 'productpage', version: 'v1' }, serviceAccount: 'bookinfo-productpage' };
const reviews: WorkloadIdentity = { service: 'reviews', namespace: 'bookinfo', labels: { app: 'reviews', version: 'v2' }, serviceAccount: 'bookinfo-reviews' };
const call = {};

const start: CallStartMessage = {
  workload: productpage,
  call,
  protocol: 'http1',
  method: 'GET',
  authority: 'reviews:9080',
  path: '/reviews/0?x=1',
  headers: { 'user-agent': 'Go-http-client/1.1', 'x-request-id': 'r-1', referer: 'http://productpage/' },
};

const end: CallEndMessage = {
  workload: productpage,
  call,
  protocol: 'http1',
  method: 'GET',
  authority: 'reviews:9080',
  path: '/reviews/0?x=1',
  route: 'reviews.0',
  cluster: 'outbound|9080|v2|reviews.bookinfo.svc.cluster.local',
  destinationService: 'reviews.bookinfo.svc.cluster.local',
  endpoint: '10.0.0.7:9080',
  destination: { serviceAccount: 'bookinfo-reviews', labels: { app: 'reviews', version: 'v2' }, namespace: 'bookinfo' },
  status: 503,
  grpcStatus: -1,
  flags: 'URX',
  attempts: 3,
  requestBytes: 0,
  responseBytes: 19,
  durationMs: 42,
  error: undefined,
};

const inbound: InboundEndMessage = {
  workload: reviews,
  request: {},
  protocol: 'http2',
  method: 'POST',
  scheme: 'https',
  authority: 'reviews.bookinfo:9080',
  path: '/reviews/0',
  headers: { 'user-agent': 'curl/8', 'X-Mixed': undefined, 'x-multi': ['a', 'b'] },
  status: 403,
  grpcStatus: -1,
  flags: '',
  details: 'rbac_access_denied_matched_policy[ns[bookinfo]-policy[deny-all]-rule[0]]',
  deniedBy: 'authorization',
  requestBytes: 10,
  responseBytes: 19,
  durationMs: 1,
  mtls: true,
  peer: { principal: 'spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage', trustDomain: 'cluster.local', namespace: 'bookinfo', serviceAccount: 'bookinfo-productpage', address: '10.0.0.5' },
  requestPrincipal: undefined,
  authzPolicy: 'bookinfo/deny-all',
  remoteAddress: '10.0.0.5',
  remotePort: 51234,
  localAddress: '10.0.0.7',
  localPort: 9080,
  sni: 'outbound_.9080_._.reviews.bookinfo.svc.cluster.local',
  responseHeaders: { 'content-type': 'text/plain' },
  error: undefined,
};

const client = new AttributeView(clientRecord(end, { start, startTimeMs: Date.UTC(2026, 0, 2, 3, 4, 5, 678), peer: { app: 'reviews', version: 'v2', namespace: 'bookinfo', labels: { 'custom-label': 'blue' } } }));
const server = new AttributeView(serverRecord(inbound, { startTimeMs: 0, peer: { workload: 'productpage-v1', labels: { 'custom-label': 'green' } } }));

describe('attributes of a client-side call (reporter=source)', () => {
  const cases: [string, unknown][] = [
    ['request.host', 'reviews:9080'],
    ['request.method', 'GET'],
    ['request.path', '/reviews/0?x=1'],
    ['request.url_path', '/reviews/0'],
    ['request.query', 'x=1'],
    ['request.scheme', 'http'],
    ['request.protocol', 'HTTP/1.1'],
    ['request.id', 'r-1'],
    ['request.useragent', 'Go-http-client/1.1'],
    ['request.referer', 'http://productpage/'],
    ["request.headers['User-Agent']", 'Go-http-client/1.1'],
    ['string(request.time)', '2026-01-02T03:04:05.678Z'],
    ['request.duration == duration("42ms")', true],
    ['request.size', 0n],
    ['response.code', 503n],
    ['response.code_details', 'via_upstream'],
    ['response.flags', 1n << 15n],
    ['response.size', 19n],
    ['has(response.grpc_status)', false],
    ['destination.port', 9080n],
    ['has(destination.address)', false],
    ['has(source.address)', false],
    ['connection.mtls', false],
    // Envoy's CEL addresses are `ip:port` (expr/context.cc: `address()->asStringView()`).
    ['upstream.address', '10.0.0.7:9080'],
    ['upstream.port', 9080n],
    ['upstream.request_attempt_count', 3n],
    ['xds.cluster_name', 'outbound|9080|v2|reviews.bookinfo.svc.cluster.local'],
    ['xds.route_name', 'reviews.0'],
    ['xds.listener_direction', 2n],
    ['xds.node.metadata.NAMESPACE', 'bookinfo'],
    ["xds.node.metadata.LABELS['app']", 'productpage'],
    ["filter_state.upstream_peer.labels['custom-label']", 'blue'],
    ['filter_state.upstream_peer.app', 'reviews'],
    ['has(filter_state.downstream_peer)', false],
  ];
  for (const [expr, want] of cases) it(expr, () => assert.deepEqual(compileCel(expr).evaluate(client), want));
});

describe('IPv6 addresses in CEL are [ip]:port, as Envoy writes them', () => {
  const v6 = new AttributeView(serverRecord({ ...inbound, status: 200, deniedBy: undefined, remoteAddress: '::1', remotePort: 40000, localAddress: 'fd00::7', localPort: 9080 }, { startTimeMs: 0 }));
  it('source.address, destination.address, upstream.address', () => {
    assert.deepEqual(['source.address', 'destination.address', 'upstream.address', 'source.port'].map((e) => compileCel(e).evaluate(v6)), ['[::1]:40000', '[fd00::7]:9080', '[fd00::7]:9080', 40000n]);
  });
});

describe('attributes of a request the server side saw (reporter=destination)', () => {
  const cases: [string, unknown][] = [
    ['request.host', 'reviews.bookinfo:9080'],
    ['request.scheme', 'https'],
    ['request.protocol', 'HTTP/2'],
    ['request.query', ''],
    ["request.headers['x-multi']", 'a,b'],
    ['has(request.id)', false],
    ['response.code', 403n],
    ['response.code_details', 'rbac_access_denied_matched_policy[ns[bookinfo]-policy[deny-all]-rule[0]]'],
    ["response.headers['content-type']", 'text/plain'],
    ['source.address', '10.0.0.5:51234'],
    ['source.port', 51234n],
    ['source.principal', 'spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage'],
    ['destination.address', '10.0.0.7:9080'],
    ['destination.port', 9080n],
    ['connection.mtls', true],
    ['connection.requested_server_name', 'outbound_.9080_._.reviews.bookinfo.svc.cluster.local'],
    ['connection.uri_san_peer_certificate', 'spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage'],
    ['has(upstream.address)', false],
    ['xds.cluster_name', 'inbound|9080||'],
    ['xds.route_name', 'default'],
    ['xds.listener_direction', 1n],
    ["filter_state.downstream_peer.labels['custom-label']", 'green'],
    ['filter_state.downstream_peer.workload', 'productpage-v1'],
    ['has(filter_state.upstream_peer)', false],
  ];
  for (const [expr, want] of cases) it(expr, () => assert.deepEqual(compileCel(expr).evaluate(server), want));
});

describe('attributes that are absent make the expression an error', () => {
  const absent: [AttributeView, string][] = [
    [client, 'source.address'],
    [client, 'response.grpc_status'],
    [client, 'response.headers'],
    [client, 'filter_state.downstream_peer'],
    [server, 'upstream.address'],
    [server, 'request.id'],
    [server, 'nosuch.thing'],
    [new AttributeView(clientRecord({ ...end, status: 0, error: new Error('x') }, {})), 'response.code'],
    [new AttributeView(clientRecord(end, {})), 'request.headers'],
  ];
  for (const [view, expr] of absent) {
    it(`${view.record.side}: ${expr}`, () => {
      assert.equal(compileCel(expr).text(view), undefined);
      assert.equal(compileCel(`${expr} == "x"`).test(view), false);
    });
  }
});

describe('client-side response details and flags', () => {
  const rows: [string, Partial<CallEndMessage>, string | undefined, string, number][] = [
    ['upstream answered', { flags: '', status: 200 }, 'via_upstream', '', 200],
    ['no healthy upstream', { flags: '', status: 0, endpoint: undefined, error: new MeshletError('MESHLET_ERR_NO_HEALTHY_UPSTREAM', 'no healthy upstream') }, 'no_healthy_upstream', 'UH', 503],
    ['fault abort', { flags: 'FI', status: 418, endpoint: undefined }, 'fault_filter_abort', 'FI', 418],
    ['connect failure, retries exhausted', { flags: 'UF,URX', status: 0, error: new MeshletError('MESHLET_ERR_UPSTREAM_CONNECT', 'refused', { flags: 'UF,URX' }) }, 'upstream_reset_before_response_started{remote_connection_failure}', 'UF,URX', 503],
    ['timeout', { flags: 'UT', status: 0, error: new MeshletError('MESHLET_ERR_TIMEOUT', 'timeout') }, 'response_timeout', 'UT', 504],
    ['direct response', { flags: '', status: 200, endpoint: undefined, cluster: undefined }, 'direct_response', '', 200],
    ['no route', { flags: '', status: 0, route: undefined, error: new MeshletError('MESHLET_ERR_NO_ROUTE', 'no route') }, 'route_not_found', 'NR', 404],
    // errors: 'respond' — the caller got the sidecar's answer rendered from the failure: the failure's details, not via_upstream.
    ['route timeout, rendered', { flags: 'UT', status: 504, rendered: new MeshletError('MESHLET_ERR_TIMEOUT', 'upstream request timeout') }, 'response_timeout', 'UT', 504],
    ['connection closed, rendered', { flags: 'UC', status: 503, rendered: new MeshletError('MESHLET_ERR_UPSTREAM_RESET', 'upstream connect error or disconnect/reset before headers. reset reason: connection termination', { flags: 'UC' }) }, 'upstream_reset_before_response_started{connection_termination}', 'UC', 503],
    [
      'TLS failure, retried: the reset reason and the transport failure reason, blanks as _',
      { flags: 'UF,URX', status: 503, rendered: new MeshletError('MESHLET_ERR_UPSTREAM_TLS', "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: remote connection failure, transport failure reason: TLS error: the server's certificate has expired", { flags: 'UF,URX' }) },
      "upstream_reset_before_response_started{remote_connection_failure|TLS_error:_the_server's_certificate_has_expired}",
      'UF,URX',
      503,
    ],
    ['pool overflow, rendered', { flags: 'UO', status: 503, rendered: new MeshletError('MESHLET_ERR_OVERLOADED', 'upstream overflow: connection pool limits reached') }, 'upstream_reset_before_response_started{overflow}', 'UO', 503],
    ['the upstream answered 503 after the retry budget ran out', { flags: 'UO', status: 503 }, 'via_upstream', 'UO', 503],
  ];
  for (const [name, patch, details, flags, status] of rows) {
    it(name, () => {
      const r = clientRecord({ ...end, ...patch }, {});
      assert.equal(r.details, details);
      assert.equal(r.flags, flags);
      assert.equal(r.status, status);
    });
  }
  it('response.flags is Envoy bit set', () => {
    assert.equal(flagBits(''), 0n);
    assert.equal(flagBits('UH'), 2n);
    assert.equal(flagBits('UF,URX'), (1n << 5n) | (1n << 15n));
    assert.equal(flagBits('NOPE'), 0n);
  });
});

describe('laziness', () => {
  it('a group is made once and only when read', () => {
    let reads = 0;
    const headers = new Proxy({ 'user-agent': 'x' } as Record<string, string>, {
      get(t, k) {
        reads++;
        return Reflect.get(t, k);
      },
    });
    const v = new AttributeView(serverRecord({ ...inbound, headers }, {}));
    compileCel('response.code >= 400').test(v);
    assert.equal(reads, 0, 'headers are not read by an expression that does not use them');
    assert.equal(v.resolve('request'), v.resolve('request'));
  });
});
