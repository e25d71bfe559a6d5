/**
 * `meshlet routes` prints every cluster's compiled settings — load balancer, connection pool,
 * retries, outlier detection, TLS as declared — from the snapshot alone (the module-graph test
 * in test/package/imports.test.ts holds it clear of the data plane's state).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { meshlet } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-cli-routes-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const CONFIG = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}, {number: 9090, name: grpc, protocol: GRPC}]
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}, locality: us-east/a/1}
  - {address: 10.0.0.2, labels: {version: v2}, locality: us-west/b/1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api}
spec:
  hosts: [api.internal]
  http:
  - match: [{port: 8080}]
    route: [{destination: {host: api.internal, port: {number: 8080}, subset: v1}}]
  - match: [{port: 9090}]
    route: [{destination: {host: api.internal, port: {number: 9090}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api}
spec:
  host: api.internal
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpCookie: {name: sid, ttl: 60s, path: /}}
      localityLbSetting: {failover: [{from: us-east, to: us-west}]}
    connectionPool:
      tcp: {maxConnections: 4, connectTimeout: 250ms}
      http: {http1MaxPendingRequests: 2, maxRetries: 3, idleTimeout: 30s}
    outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 15s}
    tls: {mode: SIMPLE, sni: api.example.com, subjectAltNames: [api.example.com]}
    portLevelSettings:
    - port: {number: 9090}
      loadBalancer: {simple: ROUND_ROBIN}
      connectionPool:
        tcp: {tcpKeepalive: {time: 30s, probes: 3}}
        http: {http2KeepAlive: {interval: 20s, timeout: 5s}}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      retryBudget: {percent: 25}
`;
const file = join(dir, 'api.yaml');
writeFileSync(file, CONFIG);

describe('meshlet routes: clusters with their compiled settings', () => {
  it('text: one line per concern, port-level overrides resolved, TLS as applied (the rule, or auto-mTLS)', () => {
    const r = meshlet(['routes', file, '--service', 'client', '--locality', 'us-east/a/1']);
    assert.equal(r.code, 0, r.stderr);
    const clusters = r.stdout.slice(r.stdout.indexOf('Clusters:'));
    const block = (name: string) => {
      const start = clusters.indexOf(`  ${name}: `);
      assert.notEqual(start, -1, `${name} in\n${clusters}`);
      const rest = clusters.slice(start + 1);
      const end = rest.search(/\n {2}\S/);
      return end === -1 ? rest : rest.slice(0, end);
    };
    const v1 = block('outbound|8080|v1|api.internal');
    assert.match(v1, /: 10\.0\.0\.1:8080\n/);
    assert.match(v1, /\n {6}lb: RING_HASH \(min ring 1024, hash on cookie sid \(generated, max-age 60s, path \/\), locality failover us-east→us-west\); locality failover from us-east\/a\/1 \(us-east→us-west\): P0 1\n/);
    assert.match(v1, /\n {6}pool: active 4, pending 2, connections 4, connect timeout 250ms, idle timeout 30s, HTTP\/1\.1; retries: retry budget 25% of active requests, min 3\n/);
    assert.match(v1, /\n {6}outlier detection: consecutive 5xx 3, gateway off, interval 5s, base ejection 15s, max ejection 10%\n/);
    assert.match(v1, /\n {6}tls: SIMPLE, sni api\.example\.com, SANs api\.example\.com$/);
    // Port 9090: the port-level block replaces loadBalancer, connectionPool, outlierDetection and tls whole.
    const grpc = block('outbound|9090||api.internal');
    assert.match(grpc, /\n {6}lb: ROUND_ROBIN\n/);
    assert.match(grpc, /\n {6}pool: active ∞, pending ∞, connections ∞, connect timeout 10s, HTTP\/2, 100 streams per connection, TCP keepalive \(idle 30s, 3 probes\), PING every 20s, timeout 5s; retries: maxRetries ∞/);
    assert.doesNotMatch(grpc, /outlier detection/);
    assert.match(grpc, /\n {6}tls: auto-mTLS: mTLS to endpoints labelled security\.istio\.io\/tlsMode=istio whose PeerAuthentication is not DISABLE/);
  });

  it('-o json: the settings as data, field by field', () => {
    const r = meshlet(['routes', file, '--service', 'client', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    const byName = (n: string) => doc.clusters.find((c: { name: string }) => c.name === n) ?? assert.fail(`no ${n}`);
    const v1 = byName('outbound|8080|v1|api.internal');
    assert.deepEqual(v1.settings, {
      loadBalancer: {
        kind: 'RING_HASH',
        tableSize: 1024,
        hashKey: { from: 'cookie', name: 'sid', generate: { maxAgeS: 60, path: '/', attributes: [] } },
        slowStart: null,
        locality: { failover: [{ from: 'us-east', to: 'us-west' }] },
      },
      connectionPool: { maxActive: 4, maxRequests: 4294967295, maxPending: 2, maxConnections: 4, maxRetries: 3, connectTimeoutMs: 250, idleTimeoutMs: 30000, maxRequestsPerConnection: null, maxConnectionDurationMs: null, maxConcurrentStreams: 100, tcpKeepalive: null, http2KeepAlive: null },
      outlierDetection: { consecutive5xx: 3, consecutiveGateway: 0, consecutiveLocalOrigin: 5, splitLocalOrigin: false, intervalMs: 5000, baseEjectionMs: 15000, maxEjectionMs: 300000, maxEjectionPercent: 10, errorCodes: null },
      retryBudget: { percent: 25, minRetryConcurrency: 3, maxRetries: 3 },
      tls: { mode: 'SIMPLE', sni: 'api.example.com', subjectAltNames: ['api.example.com'], credentialName: null, caCertificates: null, clientCertificate: null, privateKey: null, caCrl: null, insecureSkipVerify: null, applied: true },
      h2: false,
      passthrough: false,
    });
    assert.match(v1.loadBalancer, /^RING_HASH \(/);
    assert.equal(v1.localityPlan, null, 'no --locality: locality plays no part');
    assert.equal(v1.tls, 'SIMPLE, sni api.example.com, SANs api.example.com');
    assert.equal(v1.retryBudget, 'retry budget 25% of active requests, min 3');
    const grpc = byName('outbound|9090||api.internal');
    assert.equal(grpc.settings.loadBalancer.kind, 'ROUND_ROBIN');
    assert.equal(grpc.settings.h2, true);
    assert.equal(grpc.settings.tls, null);
    assert.equal(grpc.settings.outlierDetection, null);
    assert.equal(grpc.outlierDetection, null);
    assert.equal(grpc.settings.connectionPool.maxActive, 4294967295);
    assert.deepEqual(grpc.settings.connectionPool.tcpKeepalive, { timeMs: 30000, intervalMs: null, probes: 3 });
    assert.deepEqual(grpc.settings.connectionPool.http2KeepAlive, { intervalMs: 20000, timeoutMs: 5000 });
    const local = JSON.parse(meshlet(['routes', file, '--service', 'client', '--locality', 'us-east/a/1', '-o', 'json']).stdout);
    assert.equal(local.clusters.find((c: { name: string }) => c.name === 'outbound|9090||api.internal').localityPlan, null, 'the port block has no locality setting');
    assert.match(local.clusters.find((c: { name: string }) => c.name === 'outbound|8080|v1|api.internal').localityPlan, /^locality failover from us-east\/a\/1 \(us-east→us-west\): P0 1$/);
  });

  it('an external host (no short names) is listed as reachable by its own names (and their absolute, trailing-dot forms, as istiod adds them), not by nothing', () => {
    const ext = join(dir, 'ext.yaml');
    writeFileSync(ext, 'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: g}\nspec:\n  hosts: [www.googleapis.com]\n  resolution: DNS\n  ports: [{number: 80, name: http, protocol: HTTP}]\n');
    const r = meshlet(['routes', ext, '--service', 'client']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^www\.googleapis\.com:80 {2}\(no VirtualService: default route\)\n {2}reachable as: www\.googleapis\.com:80, www\.googleapis\.com, www\.googleapis\.com\.:80, www\.googleapis\.com\.$/m);
  });
});
