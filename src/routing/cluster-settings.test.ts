import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../test/helpers/config.ts';
import type { Service } from '../config/registry.ts';
import type { TrafficPolicy } from '../config/types/networking.ts';
import { compileClusterSettings, DEFAULT_MAX_RETRIES, describeConnectionPool, UNLIMITED, type ClusterSettings } from './cluster-settings.ts';
import { compileSnapshot } from './compile.ts';
import type { Cluster } from './route-table.ts';

const svc = (resolution: Service['resolution'] = 'STATIC') => ({ hostname: 'r.default.svc.cluster.local', resolution, resource: { kind: 'ServiceEntry', metadata: { name: 'r', namespace: 'default' }, spec: {} } }) as unknown as Service;
const compile = (policy: TrafficPolicy, protocol = 'HTTP', resolution?: Service['resolution']): ClusterSettings => compileClusterSettings(policy, svc(resolution), protocol);

describe('compileClusterSettings', () => {
  it('keepalives: tcpKeepalive time and interval in whole seconds (unset or under 1 s: the platform\'s), http2KeepAlive when its interval is positive', () => {
    const pool = (tcp: object, http: object) => compile({ connectionPool: { tcp, http } } as TrafficPolicy).connectionPool;
    assert.deepEqual(pool({ tcpKeepalive: { time: '30.5s', interval: '5s', probes: 3 } }, {}).tcpKeepalive, { timeMs: 30_000, intervalMs: 5_000, probes: 3 });
    assert.deepEqual(pool({ tcpKeepalive: { time: '30.5s' } }, { http2KeepAlive: { interval: '10s', timeout: '2500ms' } }).http2KeepAlive, { intervalMs: 10_000, timeoutMs: 2500 });
    assert.deepEqual(pool({ tcpKeepalive: {} }, {}).tcpKeepalive, { timeMs: undefined, intervalMs: undefined, probes: undefined });
    assert.deepEqual(pool({ tcpKeepalive: { time: '500ms', interval: '0s', probes: 0 } }, {}).tcpKeepalive, { timeMs: undefined, intervalMs: undefined, probes: undefined });
    assert.equal(pool({}, { http2KeepAlive: { interval: '0s', timeout: '1s' } }).http2KeepAlive, undefined);
    assert.equal(pool({}, {}).tcpKeepalive, undefined);
  });

  it('a DNS cluster takes a traffic distribution as an endpoint cluster does (Istio 1.30, 225ab8ff1fc); a passthrough one does not', () => {
    const annotated = (resolution: Service['resolution']) => ({ ...svc(resolution), resource: { ...svc(resolution).resource, metadata: { ...svc(resolution).resource.metadata, annotations: { 'networking.istio.io/traffic-distribution': 'PreferClose' } } } }) as Service;
    for (const r of ['STATIC', 'DNS', 'DNS_ROUND_ROBIN'] as const) assert.equal(compileClusterSettings({}, annotated(r), 'HTTP').loadBalancer.trafficDistribution, 'PreferSameZone', r);
    for (const r of ['NONE', 'DYNAMIC_DNS'] as const) assert.equal(compileClusterSettings({}, annotated(r), 'HTTP').loadBalancer.trafficDistribution, undefined, r);
  });

  it('Istio defaults with no DestinationRule policy', () => {
    const s = compile({});
    assert.equal(s.loadBalancer.kind, 'LEAST_REQUEST');
    assert.equal(s.loadBalancer.hashKey, undefined);
    assert.deepEqual(s.connectionPool, {
      limits: { maxActive: UNLIMITED, maxRequests: UNLIMITED, maxPending: UNLIMITED, maxConnections: UNLIMITED, maxRetries: UNLIMITED },
      connectTimeoutMs: 10_000,
      connectTimeoutDeclared: false,
      idleTimeoutMs: undefined,
      maxRequestsPerConnection: undefined,
      maxConnectionDurationMs: undefined,
      maxConcurrentStreams: 100,
      tcpKeepalive: undefined,
      http2KeepAlive: undefined,
    });
    assert.equal(s.outlierDetection, undefined);
    assert.deepEqual(s.retryBudget, { percent: undefined, minRetryConcurrency: 3, maxRetries: DEFAULT_MAX_RETRIES });
    assert.equal(s.tls, undefined);
    assert.equal(s.h2, false);
    assert.equal(s.passthrough, false);
    assert.ok(Object.isFrozen(s) && Object.isFrozen(s.connectionPool) && Object.isFrozen(s.loadBalancer));
  });

  it('load balancer, table', () => {
    const rows: [string, TrafficPolicy['loadBalancer'], Partial<Record<'kind' | 'tableSize' | 'description', unknown>> & { hashKey?: unknown }][] = [
      ['simple ROUND_ROBIN', { simple: 'ROUND_ROBIN' }, { kind: 'ROUND_ROBIN', tableSize: undefined, hashKey: undefined, description: '' }],
      ['LEAST_CONN is LEAST_REQUEST', { simple: 'LEAST_CONN' }, { kind: 'LEAST_REQUEST' }],
      ['ring hash on a header, default ring', { consistentHash: { httpHeaderName: 'X-User' } }, { kind: 'RING_HASH', tableSize: 1024, hashKey: { from: 'header', name: 'x-user' }, description: 'hash on header X-User' }],
      ['ring size 0 means the default', { consistentHash: { useSourceIp: true, ringHash: { minimumRingSize: 0 } } }, { kind: 'RING_HASH', tableSize: 1024, hashKey: { from: 'source-ip' } }],
      ['deprecated minimumRingSize', { consistentHash: { httpQueryParameterName: 'u', minimumRingSize: 64 } }, { tableSize: 64, hashKey: { from: 'query', name: 'u' } }],
      ['maglev', { consistentHash: { useSourceIp: true, maglev: {} } }, { kind: 'MAGLEV', tableSize: 65537 }],
      ['cookie without ttl: no generation', { consistentHash: { httpCookie: { name: 'sid' } } }, { hashKey: { from: 'cookie', name: 'sid', generate: undefined } }],
      ['cookie with ttl', { consistentHash: { httpCookie: { name: 'sid', ttl: '90s', path: '/', attributes: [{ name: 'Secure' }, { name: 'SameSite', value: 'Lax' }] } } }, { hashKey: { from: 'cookie', name: 'sid', generate: { maxAgeS: 90, path: '/', attributes: ['Secure', 'SameSite=Lax'] } } }],
      ['cookie with ttl 0: a session cookie', { consistentHash: { httpCookie: { name: 'sid', ttl: '0s' } } }, { hashKey: { from: 'cookie', name: 'sid', generate: { maxAgeS: undefined, path: undefined, attributes: [] } } }],
      ['a hash block naming no key', { consistentHash: {} }, { kind: 'RING_HASH', hashKey: { from: 'none' } }],
      ['warmup on ROUND_ROBIN', { simple: 'ROUND_ROBIN', warmup: { duration: '30s' } }, { description: 'warmup 30s (min 10%, aggression 1)' }],
      ['warmup ignored on RANDOM', { simple: 'RANDOM', warmup: { duration: '30s' } }, { kind: 'RANDOM', description: '' }],
    ];
    for (const [name, lb, want] of rows) {
      const got = compile({ loadBalancer: lb }).loadBalancer;
      for (const [k, v] of Object.entries(want)) assert.deepEqual(got[k as keyof typeof got], v, `${name}: ${k}`);
    }
  });

  it('locality: as written, except PASSTHROUGH which has none', () => {
    const locality = { failover: [{ from: 'us-east', to: 'us-west' }] };
    assert.deepEqual(compile({ loadBalancer: { localityLbSetting: locality } }).loadBalancer.locality, locality);
    assert.deepEqual(compile({ loadBalancer: { simple: 'PASSTHROUGH', localityLbSetting: locality } }).loadBalancer.locality, { enabled: false });
    assert.equal(compile({}).loadBalancer.locality, undefined);
  });

  it('connection pool, table: HTTP/1.1 caps active by connections; HTTP/2 by http2MaxRequests; 0 is unset', () => {
    const pool = { tcp: { maxConnections: 4, connectTimeout: '250ms', idleTimeout: '7s' }, http: { http2MaxRequests: 10, http1MaxPendingRequests: 2, maxRetries: 0, maxRequestsPerConnection: 5, maxConcurrentStreams: 8 } };
    const rows: [string, TrafficPolicy, string, Record<string, unknown>][] = [
      ['h1', { connectionPool: pool }, 'HTTP', { maxActive: 4, maxRequests: 10, maxPending: 2, maxConnections: 4, maxRetries: UNLIMITED, h2: false }],
      ['h2 by port protocol', { connectionPool: pool }, 'GRPC', { maxActive: 10, h2: true }],
      ['h2 by UPGRADE', { connectionPool: { ...pool, http: { ...pool.http, h2UpgradePolicy: 'UPGRADE' } } }, 'HTTP', { maxActive: 10, h2: true }],
      ['zeros are unset', { connectionPool: { tcp: { maxConnections: 0 }, http: { http1MaxPendingRequests: 0 } } }, 'HTTP', { maxActive: UNLIMITED, maxPending: UNLIMITED }],
    ];
    for (const [name, policy, protocol, want] of rows) {
      const s = compile(policy, protocol);
      const got: Record<string, unknown> = { ...s.connectionPool.limits, h2: s.h2 };
      for (const [k, v] of Object.entries(want)) assert.equal(got[k], v, `${name}: ${k}`);
    }
    const s = compile({ connectionPool: pool });
    assert.equal(s.connectionPool.connectTimeoutMs, 250);
    assert.equal(s.connectionPool.idleTimeoutMs, 7000, 'tcp.idleTimeout when http has none');
    assert.equal(s.connectionPool.maxRequestsPerConnection, 5);
    assert.equal(s.connectionPool.maxConcurrentStreams, 8);
    const aged = compile({ connectionPool: { tcp: { maxConnectionDuration: '90s' } } }).connectionPool;
    assert.equal(aged.maxConnectionDurationMs, 90_000);
    assert.match(describeConnectionPool(aged, false), /connections retired after 90s/);
    assert.equal(compile({ connectionPool: { tcp: { maxConnectionDuration: '0s' } } }).connectionPool.maxConnectionDurationMs, undefined, '0 is unset');
    assert.equal(compile({ connectionPool: { tcp: { idleTimeout: '7s' }, http: { idleTimeout: '0s' } } }).connectionPool.idleTimeoutMs, undefined, 'http.idleTimeout 0 wins, and 0 is off');
    assert.equal(compile({ connectionPool: { http: { idleTimeout: '3s' }, tcp: { idleTimeout: '7s' } } }).connectionPool.idleTimeoutMs, 3000);
  });

  it('retry budget and maxRetries', () => {
    assert.deepEqual(compile({ connectionPool: { http: { maxRetries: 3 } } }).retryBudget, { percent: undefined, minRetryConcurrency: 3, maxRetries: 3 });
    assert.deepEqual(compile({ retryBudget: {} }).retryBudget, { percent: 20, minRetryConcurrency: 3, maxRetries: DEFAULT_MAX_RETRIES });
    assert.deepEqual(compile({ retryBudget: { percent: 0, minRetryConcurrency: 0 } }).retryBudget, { percent: 0, minRetryConcurrency: 3, maxRetries: DEFAULT_MAX_RETRIES });
    assert.deepEqual(compile({ retryBudget: { percent: 150, minRetryConcurrency: 2.7 } }).retryBudget, { percent: 100, minRetryConcurrency: 2, maxRetries: DEFAULT_MAX_RETRIES });
  });

  it('outlier detection resolved with Istio and Envoy defaults', () => {
    const od = compile({ outlierDetection: { consecutive5xxErrors: 0, consecutiveGatewayErrors: 2, interval: '1s', outlierDetectionHttpErrorCodes: [503] } }).outlierDetection;
    assert.ok(od !== undefined);
    assert.equal(od.consecutive5xx, 0);
    assert.equal(od.consecutiveGateway, 2);
    assert.equal(od.intervalMs, 1000);
    assert.equal(od.baseEjectionMs, 30_000);
    assert.equal(od.maxEjectionPercent, 10);
    assert.deepEqual([...(od.errorCodes ?? [])], [503]);
  });

  it('TLS is kept as declared (the transport applies it)', () => {
    const tls = compile({ tls: { mode: 'SIMPLE', sni: 'r.example', subjectAltNames: ['spiffe://a'], credentialName: 'c' } }).tls;
    assert.deepEqual(tls, { mode: 'SIMPLE', sni: 'r.example', subjectAltNames: ['spiffe://a'], credentialName: 'c', caCertificates: undefined, clientCertificate: undefined, privateKey: undefined, caCrl: undefined, insecureSkipVerify: undefined, applied: true });
  });

  it('passthrough: PASSTHROUGH, resolution NONE or DYNAMIC_DNS', () => {
    const rows: [TrafficPolicy, Service['resolution'], boolean][] = [
      [{ loadBalancer: { simple: 'PASSTHROUGH' } }, 'STATIC', true],
      [{}, 'NONE', true],
      [{}, 'DYNAMIC_DNS', true],
      [{}, 'DNS', false],
      [{ loadBalancer: { simple: 'RANDOM' } }, 'STATIC', false],
    ];
    for (const [policy, resolution, want] of rows) assert.equal(compile(policy, 'HTTP', resolution).passthrough, want, `${JSON.stringify(policy)} ${resolution}`);
  });
});

describe('snapshot clusters carry compiled settings', () => {
  const NET = 'networking.istio.io/v1';
  const yaml = [
    doc(NET, 'ServiceEntry', 'r', `hosts: [r.example]
location: MESH_EXTERNAL
resolution: STATIC
ports: [{number: 80, name: http, protocol: HTTP}, {number: 81, name: grpc, protocol: GRPC}]
endpoints: [{address: 10.0.0.1, labels: {v: '1'}}, {address: 10.0.0.2, labels: {v: '2'}}]`),
    doc(NET, 'VirtualService', 'r', `hosts: [r.example]
http:
- match: [{port: 80, uri: {prefix: /v1}}]
  route: [{destination: {host: r.example, port: {number: 80}, subset: v1}}]
- match: [{port: 80}]
  route: [{destination: {host: r.example, port: {number: 80}}}]
- match: [{port: 81}]
  route: [{destination: {host: r.example, port: {number: 81}}}]`),
    doc(NET, 'DestinationRule', 'r', `host: r.example
trafficPolicy:
  loadBalancer: {simple: ROUND_ROBIN}
  connectionPool: {http: {http1MaxPendingRequests: 7}}
  tls: {mode: SIMPLE, sni: r.example}
  portLevelSettings:
  - port: {number: 81}
    loadBalancer: {consistentHash: {httpHeaderName: x-user}}
subsets:
- name: v1
  labels: {v: '1'}
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 2}`),
  ];
  const { resources, errors } = validateYaml(yaml.join('---\n'));
  assert.deepEqual(errors, []);
  const snap = compileSnapshot(resources, { service: 'client' });
  const c = (name: string): Cluster => snap.clusters.get(name) ?? assert.fail(`no cluster ${name}: ${[...snap.clusters.keys()]}`);

  it('top level, port-level and subset overrides resolved per cluster', () => {
    const plain = c('outbound|80||r.example').settings;
    assert.equal(plain.loadBalancer.kind, 'ROUND_ROBIN');
    assert.equal(plain.connectionPool.limits.maxPending, 7);
    assert.equal(plain.tls?.sni, 'r.example');
    assert.equal(plain.outlierDetection, undefined);
    // A port-level setting replaces the four core blocks whole: no pool limit, no TLS inherited.
    const grpc = c('outbound|81||r.example').settings;
    assert.equal(grpc.loadBalancer.kind, 'RING_HASH');
    assert.deepEqual(grpc.loadBalancer.hashKey, { from: 'header', name: 'x-user' });
    assert.equal(grpc.connectionPool.limits.maxPending, UNLIMITED);
    assert.equal(grpc.tls, undefined);
    assert.equal(grpc.h2, true);
    // A subset's block replaces that block only.
    const v1 = c('outbound|80|v1|r.example').settings;
    assert.equal(v1.loadBalancer.kind, 'ROUND_ROBIN');
    assert.equal(v1.outlierDetection?.consecutive5xx, 2);
    assert.equal(v1.connectionPool.limits.maxPending, 7);
  });

  it('the snapshot has an inbound slot, not compiled, holding the server-side kinds only', () => {
    assert.equal(snap.inbound.compiled, false);
    assert.deepEqual(snap.inbound.resources, []);
    const withPolicy = validateYaml([...yaml, doc('security.istio.io/v1', 'AuthorizationPolicy', 'deny', 'action: DENY\nrules: [{}]')].join('---\n'));
    const s = compileSnapshot(withPolicy.resources, { service: 'client' });
    assert.deepEqual(s.inbound.resources.map((r) => r.kind), ['AuthorizationPolicy']);
  });
});
