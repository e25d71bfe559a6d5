import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { BOOKINFO, DEMO_MESH, meshlet, meshletAsync } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-cli-explain-'));
const servers: Server[] = [];
let connections = 0;
let requests = 0;
let config = '';

/** A service on two real local servers (v1, v2), with every policy a rule and a cluster can have. */
function apiConfig(v1: number, v2: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 127.0.0.1, ports: {http: ${v1}}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: ${v2}}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api}
spec:
  host: api.internal
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool: {http: {http1MaxPendingRequests: 10}}
    outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 15s}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api}
spec:
  hosts: [api.internal]
  http:
  - name: only-admins
    match: [{uri: {prefix: /admin}, headers: {x-admin: {exact: "yes"}}}]
    directResponse: {status: 403}
  - name: writes
    match: [{method: {exact: POST}}]
    timeout: 2s
    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: 5xx}
    mirror: {host: api.internal, subset: v2}
    mirrorPercentage: {value: 25}
    route: [{destination: {host: api.internal, subset: v1}}]
  - name: reads
    match: [{uri: {prefix: /items}}]
    route:
    - {destination: {host: api.internal, subset: v1}, weight: 90}
    - {destination: {host: api.internal, subset: v2}, weight: 10}
`;
}

before(async () => {
  const ports: number[] = [];
  for (let i = 0; i < 2; i++) {
    const s = createServer((_req, res) => {
      requests++;
      res.end('sent!');
    });
    s.on('connection', () => {
      connections++;
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    servers.push(s);
    ports.push((s.address() as AddressInfo).port);
  }
  config = join(dir, 'api.yaml');
  writeFileSync(config, apiConfig(ports[0]!, ports[1]!));
});
after(async () => {
  for (const s of servers) await new Promise((r) => s.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const bookinfo = (...extra: string[]) => ['explain', BOOKINFO, '--service', 'productpage', '-l', 'version=v1', ...extra];

describe('meshlet explain', () => {
  it('a header route (Bookinfo): jason matches the first rule and goes to v2', () => {
    const r = meshlet(bookinfo('-H', 'end-user: jason', 'http://reviews:9080/reviews/1'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Request: +GET http:\/\/reviews:9080\/reviews\/1\n +end-user: jason\n/);
    assert.match(r.stdout, /^Outcome: +routed$/m);
    assert.match(r.stdout, /^Virtual host: +reviews\.default\.svc\.cluster\.local:9080 \(VirtualService default\/reviews\)$/m);
    assert.doesNotMatch(r.stdout, /Not matched/);
    assert.match(r.stdout, /^Matched rule: +reviews\.0 \(VirtualService default\/reviews, spec\.http\[0\]\): header end-user exact "jason"$/m);
    assert.match(r.stdout, /^ {2}reviews\.default\.svc\.cluster\.local:9080 subset v2 {2}100% {2}outbound\|9080\|v2\|reviews\.default\.svc\.cluster\.local$/m);
    assert.match(r.stdout, /^ {6}127\.0\.0\.1:19082 {2}app=reviews,version=v2,topology.istio.io\/cluster=Kubernetes$/m);
    assert.doesNotMatch(r.stdout, /19081|19083/);
    // The TLS a call would use and why (auto-mTLS: the endpoint carries no tlsMode label).
    assert.match(r.stdout, /^ {8}tls: plaintext — no DestinationRule tls; endpoint 127\.0\.0\.1:19082 has no security\.istio\.io\/tlsMode label/m);
  });

  it('the tls line reads naturally: a DestinationRule named once; auto-mTLS with no PeerAuthentication says the default applies', () => {
    const file = join(dir, 'tls-wording.yaml');
    writeFileSync(
      file,
      `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.internal, mtls.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 127.0.0.1, ports: {http: 19090}, labels: {security.istio.io/tlsMode: istio}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api.internal
  trafficPolicy: {tls: {mode: SIMPLE}}
`,
    );
    const simple = meshlet(['explain', file, '--service', 'web', 'http://api.internal:8080/']);
    assert.equal(simple.code, 0, simple.stderr);
    assert.match(simple.stdout, /^ {8}tls: SIMPLE \[sni the request's Host \(auto_sni\)\] — DestinationRule default\/api sets tls mode SIMPLE$/m);
    const auto = meshlet(['explain', file, '--service', 'web', 'http://mtls.internal:8080/']);
    assert.equal(auto.code, 0, auto.stderr);
    assert.match(auto.stdout, /^ {8}tls: .* — auto-mTLS: endpoint 127\.0\.0\.1:19090 is labelled security\.istio\.io\/tlsMode: istio and no PeerAuthentication applies to port 19090 \(the default: PERMISSIVE\)/m);
  });

  it('anyone else: the header rule is named as not matched, the catch-all splits 80/20', () => {
    const r = meshlet(bookinfo('-H', 'end-user: bob', 'http://reviews:9080/reviews/1'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Not matched: +reviews\.0: header end-user exact "jason" \(the request meets no match block of this rule\)$/m);
    assert.match(r.stdout, /^Matched rule: +reviews\.1 \(VirtualService default\/reviews, spec\.http\[1\]\): any request$/m);
    assert.match(r.stdout, /subset v1 {2}80% .*\n[\s\S]*subset v3 {2}20% /);
    assert.match(r.stdout, /^Retries: +retries 2× on connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes \(Istio default\)$/m);
    assert.match(r.stdout, /^Timeout: +none \(Istio default\)$/m);
  });

  it('-o json: the explanation as data, field by field; -o yaml is the same document', () => {
    const r = meshlet(bookinfo('-H', 'End-User: bob', '-o', 'json', 'http://reviews:9080/reviews/1'));
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.deepEqual(doc.request, { method: 'GET', url: 'http://reviews:9080/reviews/1', headers: { 'end-user': 'bob' } });
    assert.deepEqual(doc.workload, { service: 'productpage', namespace: 'default', labels: { version: 'v1' }, locality: '' });
    assert.match(doc.configVersion, /^[0-9a-f]{12}$/);
    assert.equal(doc.outcome, 'routed');
    assert.equal(doc.virtualHost.name, 'reviews.default.svc.cluster.local:9080');
    assert.equal(doc.virtualHost.virtualService, 'VirtualService default/reviews');
    assert.deepEqual(
      doc.skipped.map((s: { name: string; index: number; match: string[] }) => [s.name, s.index, s.match]),
      [['reviews.0', 0, ['header end-user exact "jason"']]],
    );
    assert.equal(doc.route.name, 'reviews.1');
    assert.equal(doc.route.index, 1);
    assert.deepEqual(doc.route.match, []);
    assert.equal(doc.route.retries.attempts, 2);
    assert.equal(doc.destinations.length, 2);
    const [v1, v3] = doc.destinations;
    assert.equal(v1.subset, 'v1');
    assert.equal(v1.weight, 80);
    assert.equal(v1.percent, 80);
    assert.equal(v1.cluster, 'outbound|9080|v1|reviews.default.svc.cluster.local');
    assert.equal(v1.missing, null);
    assert.deepEqual(v1.destinationRules, ['DestinationRule default/reviews']);
    assert.deepEqual(v1.endpoints, [{ endpoint: '127.0.0.1:19081', labels: { app: 'reviews', version: 'v1', 'topology.istio.io/cluster': 'Kubernetes' }, locality: '', tls: 'plaintext — no DestinationRule tls; endpoint 127.0.0.1:19081 has no security.istio.io/tlsMode label (no sidecar / mTLS not accepted)', gateway: null }]);
    assert.equal(v1.network, null);
    assert.match(v1.loadBalancer, /LEAST_REQUEST/);
    assert.equal(v1.outlierDetection, null);
    assert.equal(v3.subset, 'v3');
    assert.equal(v3.percent, 20);
    const yaml = meshlet(bookinfo('-H', 'End-User: bob', '-o', 'yaml', 'http://reviews:9080/reviews/1'));
    assert.deepEqual(parse(yaml.stdout), doc);
  });

  it("Bookinfo's ratings-test-abort: the Fault line names the abort only (no delay the rule does not set)", () => {
    const args = ['explain', BOOKINFO, '--service', 'reviews', '-l', 'version=v2', '-H', 'end-user: jason', 'http://ratings:9080/ratings/0'];
    const text = meshlet(args);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^Matched rule: +ratings\.0 /m);
    assert.match(text.stdout, /^Fault: +abort 500 @100%$/m);
    const json = JSON.parse(meshlet([...args.slice(0, -1), '-o', 'json', args[args.length - 1] as string]).stdout);
    assert.deepEqual(json.route.fault, { delay: null, abort: { httpStatus: 500, grpcStatus: null, percent: 100 } });
  });

  it('the demo mesh: fault injection on ratings, retries and outlier detection on reviews v3', () => {
    const services = [join(BOOKINFO, 'bookinfo.yaml'), join(BOOKINFO, 'workloads.yaml')];
    const ratings = meshlet(['explain', DEMO_MESH, ...services, '--service', 'productpage', 'http://ratings:9080/ratings/1']);
    assert.equal(ratings.code, 0, ratings.stderr);
    assert.match(ratings.stdout, /^Matched rule: +ratings\.ratings-chaos /m);
    assert.match(ratings.stdout, /^Fault: +delay 100ms @50%, abort 503 @20%$/m);
    const json = JSON.parse(meshlet(['explain', DEMO_MESH, ...services, '--service', 'productpage', '-o', 'json', 'http://ratings:9080/ratings/1']).stdout);
    assert.deepEqual(json.route.fault, { delay: { fixedDelayMs: 100, percent: 50 }, abort: { httpStatus: 503, grpcStatus: null, percent: 20 } });
    const v3 = meshlet(['explain', DEMO_MESH, ...services, '--service', 'productpage', '-X', 'POST', 'http://reviews:9080/v3/with-retries/1']);
    assert.equal(v3.code, 0, v3.stderr);
    assert.match(v3.stdout, /^Not matched: +reviews\.jason-to-v2: header end-user exact "jason"/m);
    assert.match(v3.stdout, /^Not matched: +reviews\.v3-no-retries: uri prefix "\/v3\/no-retries\/"/m);
    assert.match(v3.stdout, /^Matched rule: +reviews\.v3-with-retries \(VirtualService default\/reviews, spec\.http\[2\]\): uri prefix "\/v3\/"$/m);
    assert.match(v3.stdout, /^Retries: +retries 2× on 5xx$/m);
    assert.match(v3.stdout, /^ {4}outlier detection: +consecutive5xxErrors=5, .*interval=10s/m);
  });

  it('every policy of a rule and its cluster, from a config on standard input; nothing is sent', async () => {
    // Not spawnSync: this process must keep accepting, so a connection the CLI made would be seen.
    const r = await meshletAsync(['explain', config, '--service', 'web', '-X', 'POST', '-o', 'json', 'http://api.internal:8080/items/7']);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.deepEqual(
      doc.skipped.map((s: { name: string }) => s.name),
      ['api.only-admins'],
    );
    assert.equal(doc.route.name, 'api.writes');
    assert.deepEqual(doc.route.match, ['method exact "POST"']);
    assert.equal(doc.route.timeoutMs, 2000);
    assert.deepEqual(
      { attempts: doc.route.retries.attempts, perTry: doc.route.retries.perTryTimeoutMs, on: doc.route.retries.retryOn, istioDefault: doc.route.retries.istioDefault },
      { attempts: 3, perTry: 500, on: ['5xx'], istioDefault: false },
    );
    assert.deepEqual(doc.route.mirrors, [{ host: 'api.internal', port: 8080, subset: 'v2', percent: 25, cluster: 'outbound|8080|v2|api.internal' }]);
    assert.equal(doc.destinations.length, 1);
    const d = doc.destinations[0];
    assert.equal(d.subset, 'v1');
    assert.equal(d.percent, 100);
    assert.match(d.loadBalancer, /ROUND_ROBIN/);
    assert.match(d.connectionPool, /pending 0\/10/);
    assert.match(d.outlierDetection, /consecutive5xxErrors=3/);
    assert.deepEqual(d.trafficPolicy.outlierDetection, { consecutive5xxErrors: 3, interval: '5s', baseEjectionTime: '15s' });
    assert.equal(d.endpoints.length, 1);
    assert.equal(d.endpoints[0].labels.version, 'v1');
    // The human form names every policy too.
    const human = await meshletAsync(['explain', config, '--service', 'web', '-X', 'POST', 'http://api.internal:8080/items/7']);
    assert.match(human.stdout, /^Timeout: +2000ms$/m);
    assert.match(human.stdout, /^Retries: +retries 3× on 5xx, perTry 500ms$/m);
    assert.match(human.stdout, /^Mirrors: +api\.internal:8080 subset v2 @25%$/m);
    assert.match(human.stdout, /^ {4}load balancing: +ROUND_ROBIN/m);
    assert.match(human.stdout, /^ {4}outlier detection: +consecutive5xxErrors=3/m);
    // Let any connection the CLI might have opened reach this process's servers.
    await new Promise((res) => setTimeout(res, 50));
    assert.equal(connections, 0, 'explain opened a connection');
    assert.equal(requests, 0, 'explain sent a request');
  });

  it('outcomes: weighted reads, a direct response, no rule (404 NR), a host outside the mesh; all exit 0', () => {
    const reads = JSON.parse(meshlet(['explain', config, '--service', 'web', '-o', 'json', 'http://api.internal:8080/items']).stdout);
    assert.equal(reads.route.name, 'api.reads');
    assert.deepEqual(
      reads.destinations.map((d: { subset: string; percent: number }) => [d.subset, d.percent]),
      [
        ['v1', 90],
        ['v2', 10],
      ],
    );
    const admin = meshlet(['explain', config, '--service', 'web', '-H', 'x-admin: yes', 'http://api.internal:8080/admin/x']);
    assert.equal(admin.code, 0, admin.stderr);
    assert.match(admin.stdout, /^Outcome: +answered by the mesh \(direct response\)$/m);
    assert.match(admin.stdout, /^Response: +403$/m);
    const none = meshlet(['explain', config, '--service', 'web', '-o', 'json', 'http://api.internal:8080/other']);
    assert.equal(none.code, 0);
    const n = JSON.parse(none.stdout);
    assert.equal(n.outcome, 'no-route');
    assert.equal(n.route, null);
    assert.deepEqual(n.destinations, []);
    assert.deepEqual(
      n.skipped.map((s: { name: string }) => s.name),
      ['api.only-admins', 'api.writes', 'api.reads'],
    );
    const noneText = meshlet(['explain', config, '--service', 'web', 'http://api.internal:8080/other']);
    assert.match(noneText.stdout, /^Outcome: +no rule matches: the caller gets 404 \(NR\)$/m);
    const out = JSON.parse(meshlet(['explain', config, '--service', 'web', '-o', 'json', 'https://example.org/']).stdout);
    assert.equal(out.outcome, 'passthrough');
    assert.equal(out.virtualHost, null);
    assert.equal(out.route, null);
    assert.equal(out.notInMesh, 'example.org is not in the registry (no visible ServiceEntry or Service)');
  });

  it('a host in the mesh on another port, and a misspelt one, say so (passthrough is what they get)', () => {
    const config = join(dir, 'api.yaml');
    writeFileSync(config, apiConfig(1, 2));
    const port = meshlet(['explain', config, '--service', 'web', 'http://api.internal:9090/items']);
    assert.equal(port.code, 0, port.stderr);
    assert.match(port.stdout, /^Outcome: +the host is not in the mesh/m);
    assert.match(port.stdout, /^Not in mesh: +api\.internal is in the mesh on port 8080 \(HTTP\), not 9090$/m);
    const typo = JSON.parse(meshlet(['explain', config, '--service', 'web', '-o', 'json', 'http://api.intrnal:8080/items']).stdout);
    assert.equal(typo.notInMesh, 'api.intrnal is not in the registry (no visible ServiceEntry or Service); did you mean api.internal?');
    const routed = JSON.parse(meshlet(['explain', config, '--service', 'web', '-o', 'json', 'http://api.internal:8080/items']).stdout);
    assert.equal(routed.notInMesh, null);
  });

  it('"-" reads the config from standard input', () => {
    const r = meshlet(['explain', '-', '--service', 'web', 'http://api.internal:8080/items'], { input: apiConfig(1, 2) });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Matched rule: +api\.reads /m);
  });

  it('exit codes: config errors 1; a missing URL, --service, a bad header, URL or method 2', () => {
    const bad = meshlet(['explain', '-', '--service', 'web', 'http://api.internal:8080/'], { input: 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {hosts: [x], http: [{timeout: soon, route: [{destination: {host: x}}]}]}\n' });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /<stdin>: VirtualService default\/x: spec\.http\[0\]\.timeout: invalid duration "soon"/);
    const usage: string[][] = [
      ['explain', config, '--service', 'web'],
      ['explain', config, 'http://api.internal:8080/'],
      ['explain', config, '--service', 'web', 'api.internal:8080/'],
      ['explain', config, '--service', 'web', '-H', 'no-colon', 'http://api.internal:8080/'],
      ['explain', config, '--service', 'web', '-X', 'GE T', 'http://api.internal:8080/'],
    ];
    for (const args of usage) {
      const r = meshlet(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /^meshlet[: ]/);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    }
  });
});

describe('meshlet explain: outbound local rate limits', () => {
  it('names the filter that looks at the call and the bucket it takes from (text and JSON)', () => {
    const file = join(dir, 'outbound-rl.yaml');
    writeFileSync(
      file,
      `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: calls-to-reviews, namespace: istio-system}
spec:
  workloadSelector: {labels: {app: productpage}}
  configPatches:
  - applyTo: HTTP_FILTER
    match: {context: SIDECAR_OUTBOUND, listener: {portNumber: 9080, filterChain: {filter: {name: envoy.filters.network.http_connection_manager}}}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: calls
          token_bucket: {max_tokens: 10, tokens_per_fill: 10, fill_interval: 60s}
          filter_enabled: {runtime_key: e, default_value: {numerator: 100, denominator: HUNDRED}}
          filter_enforced: {runtime_key: f, default_value: {numerator: 100, denominator: HUNDRED}}
`,
    );
    const args = ['explain', BOOKINFO, file, '--service', 'productpage', '-l', 'app=productpage,version=v1'];
    const r = meshlet([...args, 'http://reviews:9080/reviews/1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Rate limit: +envoy\.filters\.http\.local_ratelimit from EnvoyFilter istio-system\/calls-to-reviews configPatches\[0\]: 100% of calls looked at; takes a token from default: 10 per 60000ms, max 10, else 429 local_rate_limited$/m);
    const json = meshlet([...args, '-o', 'json', 'http://reviews:9080/reviews/1']);
    assert.equal((JSON.parse(json.stdout) as { rateLimits: string[] }).rateLimits.length, 1);
    const outside = meshlet([...args, 'http://example.com:8080/']);
    assert.equal(outside.code, 0, outside.stderr);
    assert.doesNotMatch(outside.stdout, /Rate limit/, 'another port: another outbound listener, which the patch does not match');
  });
});
