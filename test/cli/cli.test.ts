import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parse } from 'yaml';
import { BOOKINFO, meshlet as run } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const meshlet = (...args: string[]) => run(args);

describe('meshlet CLI', () => {
  it('validate: clean Bookinfo config exits 0', () => {
    const r = meshlet('validate', BOOKINFO);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /0 error\(s\), 0 warning\(s\)/);
  });

  it('validate: prints every error with file, resource, path and line; exits 1; no stack trace', () => {
    const file = join(dir, 'reviews.yaml');
    writeFileSync(
      file,
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - timeout: 3 seconds
    route:
    - destination: {host: reviews}
      weight: -1
    - destination: {host: reviews}
      weight: 1
---
apiVersion: networking.istio.io/v1
kind: DestinationRul
metadata: {name: x}
`,
    );
    const r = meshlet('validate', file);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /reviews\.yaml: VirtualService default\/reviews: spec\.http\[0\]\.timeout: invalid duration "3 seconds"/);
    assert.match(r.stdout, /spec\.http\[0\]\.route\[0\]\.weight: must be >= 0, got -1 \(line 10\)/);
    assert.match(r.stdout, /unknown kind "DestinationRul".*did you mean "DestinationRule"/);
    assert.doesNotMatch(r.stdout + r.stderr, /\n\s+at /);
  });

  it('validate: malformed YAML names the line', () => {
    const file = join(dir, 'broken.yaml');
    writeFileSync(file, 'apiVersion: v1\nkind: VirtualService\nmetadata:\n  name: [unclosed\n');
    const r = meshlet('validate', file);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /broken\.yaml: invalid YAML: .*\(line \d+\)/);
  });

  it('validate: AuthorizationPolicy, PeerAuthentication and Telemetry are applied: no not-applied notice for them', () => {
    const file = join(dir, 'security.yaml');
    const policy = (name: string) => `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ${name}}\nspec: {rules: [{}]}\n`;
    const peer = (name: string) => `apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: ${name}}\nspec: {mtls: {mode: STRICT}}\n`;
    writeFileSync(file, [policy('a'), policy('b'), peer('p1'), peer('p2'), 'apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: t}\nspec: {}\n'].join('---\n'));
    const r = meshlet('validate', file);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.doesNotMatch(r.stdout, /not applied/, r.stdout);
    assert.match(r.stdout, /5 valid resource\(s\)/);
  });

  it('validate: a missing path is a clear error', () => {
    const r = meshlet('validate', join(dir, 'nope.yaml'));
    assert.equal(r.code, 1);
    assert.match(r.stdout, /nope\.yaml: no such file or directory/);
  });

  it('routes: prints the compiled route table of a workload', () => {
    const r = meshlet('routes', BOOKINFO, '--service', 'productpage', '--labels', 'version=v1', '--host', 'reviews');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /reviews\.default\.svc\.cluster\.local:9080 {2}\(VirtualService default\/reviews\)/);
    assert.match(r.stdout, /reviews\.0: header end-user exact "jason" → reviews\.default\.svc\.cluster\.local:9080\|v2 100%/);
    assert.match(r.stdout, /reviews\.1: any request → .*\|v1 80% .*\|v3 20%/);
    assert.match(r.stdout, /outbound\|9080\|v2\|reviews\.default\.svc\.cluster\.local: 127\.0\.0\.1:19082/);
  });

  it('routes -o json: the route table as data, field by field; -o yaml is the same document', () => {
    const r = meshlet('routes', BOOKINFO, '--service', 'productpage', '-l', 'version=v1', '--host', 'reviews', '-o', 'json');
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.deepEqual(doc.workload, { service: 'productpage', namespace: 'default', labels: { version: 'v1' }, locality: '' });
    assert.match(doc.configVersion, /^[0-9a-f]{12}$/);
    assert.deepEqual(
      doc.virtualHosts.map((v: { name: string }) => v.name),
      ['reviews.default.svc.cluster.local:9080'],
    );
    const vh = doc.virtualHosts[0];
    assert.equal(vh.host, 'reviews.default.svc.cluster.local');
    assert.equal(vh.port, 9080);
    assert.equal(vh.virtualService, 'VirtualService default/reviews');
    assert.ok(vh.domains.includes('reviews:9080'));
    assert.equal(vh.routes.length, 2);
    const [jason, rest] = vh.routes;
    assert.equal(jason.name, 'reviews.0');
    assert.equal(jason.index, 0);
    assert.deepEqual(jason.match, ['header end-user exact "jason"']);
    assert.equal(jason.action, 'forward');
    assert.deepEqual(jason.destinations, [
      { host: 'reviews.default.svc.cluster.local', port: 9080, subset: 'v2', weight: 100, percent: 100, cluster: 'outbound|9080|v2|reviews.default.svc.cluster.local', missing: null },
    ]);
    assert.equal(jason.timeoutMs, null);
    assert.equal(jason.retries.attempts, 2);
    assert.equal(jason.retries.istioDefault, true);
    assert.equal(jason.fault, null);
    assert.deepEqual(jason.mirrors, []);
    assert.deepEqual(rest.match, []);
    assert.deepEqual(
      rest.destinations.map((d: { subset: string; percent: number }) => [d.subset, d.percent]),
      [
        ['v1', 80],
        ['v3', 20],
      ],
    );
    const v2 = doc.clusters.find((c: { name: string }) => c.name === 'outbound|9080|v2|reviews.default.svc.cluster.local');
    assert.equal(v2.subset, 'v2');
    assert.deepEqual(v2.destinationRules, ['DestinationRule default/reviews']);
    assert.deepEqual(
      v2.endpoints.map((e: { endpoint: string; labels: Record<string, string> }) => [e.endpoint, e.labels.version]),
      [['127.0.0.1:19082', 'v2']],
    );
    assert.match(v2.loadBalancer, /LEAST_REQUEST/);
    assert.equal(v2.outlierDetection, null);
    const yaml = meshlet('routes', BOOKINFO, '--service', 'productpage', '-l', 'version=v1', '--host', 'reviews', '-o', 'yaml');
    assert.equal(yaml.code, 0, yaml.stderr);
    assert.deepEqual(parse(yaml.stdout), doc);
  });

  it('routes and explain print what meshlet does not apply on stderr (a gateway-only VirtualService, a TCP route, a Gateway), not only the findings', () => {
    const extra = join(dir, 'not-applied.yaml');
    writeFileSync(
      extra,
      `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo}
spec:
  hosts: ["*"]
  gateways: [bookinfo-gateway]
  http: [{route: [{destination: {host: productpage, port: {number: 9080}}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details-tcp}
spec:
  hosts: [details]
  tcp: [{route: [{destination: {host: details}}]}]
  http: [{route: [{destination: {host: details}}]}]
`,
    );
    const expected = [
      /^warning .*not-applied\.yaml: VirtualService default\/bookinfo: spec\.gateways: not supported by meshlet: this VirtualService is bound only to gateways .*\(line 13\)$/m,
      /^warning .*not-applied\.yaml: VirtualService default\/details-tcp: spec\.tcp: not supported by meshlet: .*TCP routes are ignored \(line 21\)$/m,
      /^warning .*not-applied\.yaml: skipped 1 Gateway \(networking\.istio\.io\/v1\): default\/bookinfo-gateway; .*\(line 1\)$/m,
    ];
    for (const args of [
      ['routes', BOOKINFO, extra, '--service', 'productpage', '-o', 'json'],
      ['explain', BOOKINFO, extra, '--service', 'productpage', 'http://details:9080/details/0'],
      ['explain', BOOKINFO, extra, '--service', 'details', '--inbound', '/details/0'],
    ]) {
      const r = meshlet(...args);
      assert.equal(r.code, 0, r.stderr);
      for (const re of expected) assert.match(r.stderr, re, `${args[0]}: ${r.stderr}`);
      // Validation infos (the skipped Deployments, ServiceAccounts) are left to validate; stdout is the answer alone.
      assert.doesNotMatch(r.stderr, /^info /m);
      assert.doesNotMatch(r.stdout, /not supported by meshlet/);
    }
  });

  it('routes: config with errors exits 1; usage errors exit 2 without a stack trace', () => {
    const bad = meshlet('routes', join(dir, 'nope.yaml'), '--service', 'productpage');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /nope\.yaml: no such file or directory/);
    const r = meshlet('routes', BOOKINFO);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--service is required/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    const o = meshlet('routes', BOOKINFO, '--service', 'productpage', '-o', 'xml');
    assert.equal(o.code, 2);
    assert.match(o.stderr, /--output: expected json or yaml, got "xml"/);
    const u = meshlet('frobnicate');
    assert.equal(u.code, 2);
    assert.match(u.stderr, /unknown command "frobnicate"/);
  });

  it('-n must be a namespace name (a DNS-1123 label), as metadata.namespace must: else a usage mistake, exit 2', () => {
    for (const args of [
      ['validate', BOOKINFO, '-n', 'Prod'],
      ['routes', BOOKINFO, '--service', 'productpage', '-n', 'Prod'],
      ['explain', BOOKINFO, '--service', 'productpage', '-n', 'Prod', 'http://reviews:9080/'],
      ['explain', BOOKINFO, '--service', 'reviews', '-n', 'Prod', '--inbound', '/'],
      ['apply', '-f', BOOKINFO, '-n', 'my_ns', '--control-plane', 'http://127.0.0.1:1'],
    ]) {
      const r = meshlet(...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /^meshlet: --namespace: "(Prod|my_ns)" is not a valid DNS-1123 label/, args.join(' '));
    }
    assert.equal(meshlet('validate', BOOKINFO, '-n', 'prod-1').code, 0);
  });

  it('-l must be labels Kubernetes takes (a pod\'s metadata.labels): a bad key or value is a usage mistake, exit 2', () => {
    for (const [label, bad] of [
      ['bad key=v', /invalid label key "bad key"/],
      ['a=b=c', /invalid label value "b=c"/],
      ['version=v 1', /invalid label value "v 1"/],
    ] as const) {
      for (const args of [
        ['routes', BOOKINFO, '--service', 'productpage', '-l', label],
        ['explain', BOOKINFO, '--service', 'productpage', '-l', label, 'http://reviews:9080/'],
      ]) {
        const r = meshlet(...args);
        assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, /^meshlet: --labels: /, args.join(' '));
        assert.match(r.stderr, bad, args.join(' '));
      }
    }
    assert.equal(meshlet('routes', BOOKINFO, '--service', 'productpage', '-l', 'version=v1,app.kubernetes.io/name=productpage', '--host', 'reviews').code, 0);
  });

  it('get / delete of a kind the control plane does not serve (a Gateway): exit 2, naming the kinds it serves', () => {
    for (const args of [
      ['get', 'gateway'],
      ['delete', 'gw', 'bookinfo-gateway'],
    ]) {
      const r = meshlet(...args, '--control-plane', 'http://127.0.0.1:1');
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`^meshlet ${args[0]}: unknown kind "${args[1]}"; the control plane serves VirtualService \\(vs\\), DestinationRule \\(dr\\), .*Sidecar, HTTPRoute, GRPCRoute\\n$`));
    }
  });

  it('help and --version exit 0; help of an unknown command exits 2', () => {
    const h = meshlet('help');
    assert.equal(h.code, 0);
    assert.match(h.stdout, /explain <config> --service <name> <url>/);
    assert.match(meshlet('explain', '--help').stdout, /^Usage: meshlet explain/);
    assert.match(meshlet('--version').stdout, /^\d+\.\d+\.\d+\n$/);
    assert.equal(meshlet('help', 'frobnicate').code, 2);
    // Help about help is the general help (it was 'unknown command "help"', exit 2).
    for (const args of [['help', 'help'], ['help', '--help'], ['--help', 'help']]) {
      const r = meshlet(...args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, h.stdout, args.join(' '));
    }
  });

  it('an unknown option: did you mean, the command\'s usage line, exit 2 (every command alike)', () => {
    const cases = [
      { args: ['get', '--namepsace', 'default', 'vs'], error: 'unknown option --namepsace (did you mean --namespace?)', usage: 'Usage: meshlet get <kind> [name] [options]' },
      { args: ['status', '--contol-plane', 'http://x:1'], error: 'unknown option --contol-plane (did you mean --control-plane?)', usage: 'Usage: meshlet status [options]' },
      { args: ['routes', BOOKINFO, '--servise', 'productpage'], error: 'unknown option --servise (did you mean --service?)', usage: 'Usage: meshlet routes ' },
      { args: ['validate', BOOKINFO, '--frobnicate'], error: 'unknown option --frobnicate\n', usage: 'Usage: meshlet validate ' },
    ];
    for (const c of cases) {
      const r = meshlet(...c.args);
      assert.equal(r.code, 2, c.args.join(' '));
      assert.ok(r.stderr.startsWith(`meshlet: ${c.error}`), r.stderr);
      assert.ok(r.stderr.includes(`\n${c.usage}`), r.stderr);
      assert.match(r.stderr, new RegExp(`Run 'meshlet ${c.args[0]} --help' for its options\\.\\n$`));
      assert.doesNotMatch(r.stderr, /as in '--|Unknown option/);
    }
  });

  it('token -o json: the token with its decoded header and claims; -o yaml; usage errors exit 2, an unusable --data-dir 1', () => {
    const dataDir = join(dir, 'data');
    const r = meshlet('token', '--service', 'reviews', '-n', 'shop', '--ttl', '2h', '--data-dir', dataDir, '-o', 'json');
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.token.split('.').length, 3);
    assert.deepEqual(doc.subject, { role: 'workload', admin: false, service: 'reviews', namespace: 'shop', serviceAccount: 'default', labels: {} });
    assert.equal(doc.claims.sa, 'default');
    const sa = JSON.parse(meshlet('token', '--service', 'reviews', '--service-account', 'bookinfo-reviews', '--data-dir', dataDir, '-o', 'json').stdout);
    assert.equal(sa.claims.sa, 'bookinfo-reviews');
    assert.equal(sa.subject.serviceAccount, 'bookinfo-reviews');
    assert.equal(meshlet('token', '--service', 'reviews', '--service-account', 'Bad_SA', '--data-dir', dataDir).code, 2);
    assert.equal(meshlet('token', '--admin', '--service-account', 'x', '--data-dir', dataDir).code, 2);
    assert.equal(doc.claims.labels, undefined, 'no labels claim without --label');
    const labelled = JSON.parse(meshlet('token', '--service', 'reviews', '--label', 'version=v2', '--label', 'track=canary', '--data-dir', dataDir, '-o', 'json').stdout);
    assert.deepEqual(labelled.subject.labels, { version: 'v2', track: 'canary' });
    assert.deepEqual(labelled.claims.labels, { version: 'v2', track: 'canary' });
    for (const bad of [['--label', 'novalue'], ['--label', 'app=ratings'], ['--label', 'bad key=x']]) {
      const refused = meshlet('token', '--service', 'reviews', ...bad, '--data-dir', dataDir);
      assert.equal(refused.code, 2, bad.join(' '));
    }
    assert.equal(meshlet('token', '--admin', '--label', 'a=b', '--data-dir', dataDir).code, 2);
    assert.equal(doc.claims.role, 'workload');
    assert.equal(doc.claims.svc, 'reviews');
    assert.equal(doc.claims.ns, 'shop');
    assert.equal(doc.claims.sub, 'shop/reviews');
    assert.equal(doc.claims.exp - doc.claims.iat, 7200);
    assert.equal(Date.parse(doc.expiresAt) - Date.parse(doc.issuedAt), 7_200_000);
    assert.equal(doc.header.alg, 'EdDSA');
    assert.equal(doc.header.kid, doc.keyId);
    const plain = meshlet('token', '--admin', '--data-dir', dataDir);
    assert.match(plain.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const y = parse(meshlet('token', '--admin', '--data-dir', dataDir, '-o', 'yaml').stdout);
    assert.deepEqual(y.subject, { role: 'admin', admin: true, service: null, namespace: null, serviceAccount: null, labels: null });
    assert.equal(y.claims.role, 'admin');
    assert.equal(y.keyId, doc.keyId);
    assert.equal(meshlet('token', '--admin', '--data-dir', dataDir, '-o', 'table').code, 2);
    // A data directory the system refuses is a failure (1) naming the path, not an internal error.
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    const refused = meshlet('token', '--admin', '--data-dir', join(file, 'data'));
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^meshlet: token: ENOTDIR: not a directory, mkdir '.*a-file\/data'\n$/);
  });
});
