/**
 * `meshlet explain … grpc://host:port/pkg.Service/Method` run as the real CLI: a gRPC call's
 * route, cluster, retry policy as gRPC statuses, timeout next to the caller's deadline, faults
 * and mesh-made failures as the statuses a gRPC caller gets; `--inbound` with a grpc:// target
 * judges the call as the server receives it (path /pkg.Service/Method, POST); usage mistakes
 * exit 2 with what is wrong.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { meshlet } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-cli-explain-grpc-'));
const file = join(dir, 'mesh.yaml');
writeFileSync(
  file,
  `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9090, name: grpc, protocol: GRPC}]
  endpoints:
  - {address: 127.0.0.1, ports: {grpc: 50051}, labels: {version: v1}}
  - {address: 127.0.0.2, ports: {grpc: 50051}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy:
    connectionPool: {http: {http2MaxRequests: 100}}
    outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 15s}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: beta
    match: [{headers: {x-group: {exact: beta}}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 10}}}
    route: [{destination: {host: reviews, subset: v2}}]
  - name: get-review
    match: [{uri: {exact: /reviews.Reviews/GetReview}}]
    timeout: 2s
    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: "unavailable,resource-exhausted,5xx,connect-failure"}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: delete
    match: [{uri: {prefix: /reviews.Reviews/Delete}}]
    fault: {abort: {grpcStatus: PERMISSION_DENIED, percentage: {value: 100}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: only-get
    match: [{method: {exact: GET}}]
    route: [{destination: {host: nowhere, subset: v1}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules:
  - to: [{operation: {paths: [/reviews.Reviews/GetReview], methods: [POST]}}]
`,
);
after(() => rmSync(dir, { recursive: true, force: true }));

const explain = (...args: string[]) => meshlet(['explain', file, '--service', 'productpage', ...args]);
/** The text after `label:` on its line. */
function line(stdout: string, label: string): string {
  const l = stdout.split('\n').find((x) => x.startsWith(`${label}:`));
  assert.ok(l !== undefined, `no "${label}:" line in:\n${stdout}`);
  return l.slice(label.length + 1).trim();
}

describe('meshlet explain grpc://', () => {
  it('a routed call: the rule, the cluster, the retry policy as gRPC statuses, the timeout against the deadline', () => {
    const r = explain('grpc://reviews:9090/reviews.Reviews/GetReview');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(line(r.stdout, 'gRPC call'), 'reviews.Reviews/GetReview on reviews:9090 (POST /reviews.Reviews/GetReview)');
    assert.match(line(r.stdout, 'Matched rule'), /^reviews\.get-review \(VirtualService default\/reviews, spec\.http\[1\]\): uri exact "\/reviews\.Reviews\/GetReview"$/);
    assert.match(line(r.stdout, 'Not matched'), /^reviews\.beta: header x-group exact "beta"/);
    assert.match(line(r.stdout, 'Timeout'), /^2000ms, or the caller's deadline if sooner \(grpc-timeout carries what remains\); when it passes, DEADLINE_EXCEEDED \(UT\)$/);
    const retries = line(r.stdout, 'Retries');
    assert.match(retries, /^3× on UNAVAILABLE, RESOURCE_EXHAUSTED, connect-failure, perTry 500ms; /);
    // 5xx looks at :status, which is 200 for a gRPC answer.
    assert.match(retries, /5xx looks at the HTTP status, which is 200 for every gRPC answer/);
    assert.equal(line(r.stdout, 'Fault'), 'none');
    assert.match(r.stdout, /\n {2}reviews\.default\.svc\.cluster\.local:9090 subset v1 {2}100% {2}outbound\|9090\|v1\|reviews\.default\.svc\.cluster\.local\n/);
    assert.match(r.stdout, /connection pool: {4}active 0\/100, .*\(overflow: UNAVAILABLE, UO\)/);
    assert.match(r.stdout, /outlier detection: {2}consecutive5xxErrors=3.*\(5xx as Envoy maps a gRPC status: UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS\)/);
    assert.match(r.stdout, /\n {6}127\.0\.0\.1:50051 {2}version=v1/);
  });

  it("metadata routes (-H), Istio's default retry policy, a fault abort httpStatus as the gRPC status it becomes", () => {
    const r = explain('-H', 'x-group: beta', 'grpc://reviews:9090/reviews.Reviews/ListReviews');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\n {15}x-group: beta\n/);
    assert.match(line(r.stdout, 'Matched rule'), /^reviews\.beta /);
    assert.match(line(r.stdout, 'Timeout'), /^none \(Istio default\): the caller's deadline applies/);
    assert.match(line(r.stdout, 'Retries'), /^2× on UNAVAILABLE, CANCELLED, connect-failure, refused-stream, Istio's default policy; /);
    assert.equal(line(r.stdout, 'Fault'), 'abort 10% of calls with UNAVAILABLE (httpStatus 503 as gRPC maps it), flag FI, nothing sent');
    assert.match(r.stdout, /subset v2 {2}100%/);
  });

  it('a grpcStatus fault abort is that status', () => {
    const r = explain('grpc://reviews:9090/reviews.Reviews/DeleteReview');
    assert.equal(line(r.stdout, 'Fault'), 'abort 100% of calls with PERMISSION_DENIED, flag FI, nothing sent');
  });

  it('no rule matches (the GET-only rule never matches a gRPC call): UNIMPLEMENTED, NR', () => {
    const r = explain('grpc://reviews:9090/reviews.Reviews/ListReviews');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(line(r.stdout, 'Outcome'), 'no rule matches: the caller gets UNIMPLEMENTED (404, NR)');
    assert.equal(r.stdout.split('\n').filter((l) => l.startsWith('Not matched:')).length, 4);
  });

  it('-o json: the request as a gRPC method, the route, and the gRPC view of its policies', () => {
    const r = explain('-o', 'json', '-H', 'x-user: 7', 'grpc://reviews:9090/reviews.Reviews/GetReview');
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as { request: unknown; outcome: string; route: { name: string; timeoutMs: number }; grpc: unknown; destinations: { subset: string }[] };
    assert.deepEqual(doc.request, { grpc: 'reviews.Reviews/GetReview', target: 'reviews:9090', method: 'POST', path: '/reviews.Reviews/GetReview', metadata: { 'x-user': '7' } });
    assert.equal(doc.outcome, 'routed');
    assert.equal(doc.route.name, 'reviews.get-review');
    assert.equal(doc.route.timeoutMs, 2000);
    assert.deepEqual(doc.grpc, {
      service: 'reviews.Reviews',
      method: 'GetReview',
      retries: { attempts: 3, retriedStatuses: ['UNAVAILABLE', 'RESOURCE_EXHAUSTED'], connectionFailures: ['connect-failure'], httpOnly: ['5xx'] },
      faultAbortStatus: null,
    });
    assert.equal(doc.destinations[0]?.subset, 'v1');
  });

  it('--inbound: the call judged as the server receives it (POST /pkg.Service/Method), the verdict as a gRPC status', () => {
    const denied = meshlet(['explain', file, '--service', 'reviews', '-l', 'app=reviews', '--inbound', 'grpc://reviews:9090/reviews.Reviews/DeleteReview']);
    assert.equal(denied.code, 0, denied.stderr);
    assert.equal(line(denied.stdout, 'Request'), 'POST /reviews.Reviews/DeleteReview (Host reviews:9090)');
    assert.match(line(denied.stdout, 'Verdict'), /^403, refused by the authorization step/);
    assert.equal(line(denied.stdout, 'gRPC caller'), 'PERMISSION_DENIED (403 as gRPC maps it)');
    const allowed = meshlet(['explain', file, '--service', 'reviews', '-l', 'app=reviews', '--inbound', 'grpc://reviews:9090/reviews.Reviews/GetReview']);
    assert.match(line(allowed.stdout, 'Verdict'), /^reaches the app/);
    assert.equal(line(allowed.stdout, 'gRPC caller'), "the app runs the method (its status is the call's)");
    const json = meshlet(['explain', file, '--service', 'reviews', '-l', 'app=reviews', '--inbound', '-o', 'json', 'grpc://reviews:9090/reviews.Reviews/DeleteReview']);
    const doc = JSON.parse(json.stdout) as Record<string, unknown>;
    assert.equal(doc.grpcVerdict, 'PERMISSION_DENIED (403 as gRPC maps it)');
  });

  it('--inbound --probe-path: a plaintext call of the gRPC probe method is a probe (served outside the policies), another method is judged', () => {
    const args = ['explain', file, '--service', 'reviews', '-l', 'app=reviews', '--inbound', '--probe-path', '/reviews.Reviews/DeleteReview'];
    const probe = meshlet([...args, 'grpc://reviews:9090/reviews.Reviews/DeleteReview']);
    assert.equal(probe.code, 0, probe.stderr);
    assert.match(line(probe.stdout, 'Verdict'), /^reaches the app — a health probe \(probePaths\)/);
    const other = meshlet([...args, 'grpc://reviews:9090/reviews.Reviews/ListReviews']);
    assert.doesNotMatch(line(other.stdout, 'Verdict'), /health probe/);
  });

  const mistakes: [name: string, args: string[], stderr: RegExp][] = [
    ['no port', ['grpc://reviews/reviews.Reviews/Get'], /the port is missing .* in "grpc:\/\/reviews\/reviews\.Reviews\/Get"/],
    ['no method in the path', ['grpc://reviews:9090/reviews.Reviews'], /the path must be \/package\.Service\/Method/],
    ['a query', ['grpc://reviews:9090/a.B/C?x=1'], /a gRPC method has no query or fragment/],
    ['-X GET', ['-X', 'GET', 'grpc://reviews:9090/a.B/C'], /--request GET: a gRPC call is always POST/],
    ['-H content-type', ['-H', 'content-type: application/json', 'grpc://reviews:9090/a.B/C'], /--header content-type: gRPC sets it itself/],
  ];
  it('port 80 written out is a port (the URL parser drops it as http:// default)', () => {
    const r = explain('grpc://reviews:80/reviews.Reviews/Get');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^gRPC call: +reviews\.Reviews\/Get on reviews /m);
  });

  for (const [name, args, stderr] of mistakes) {
    it(`usage mistake (${name}): exit 2 and what is wrong`, () => {
      const r = explain(...args);
      assert.equal(r.code, 2);
      assert.match(r.stderr, stderr);
      assert.equal(r.stdout, '');
    });
  }
});
