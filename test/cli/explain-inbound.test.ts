/**
 * `meshlet explain --inbound` run as the real CLI (text, -o json, usage mistakes with exit 2),
 * and `mesh.explainInbound` on a mesh: the same verdicts as the explainer, with the mesh's own
 * options (extension providers, path normalization) applied.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createMesh } from '../../src/index.ts';
import { meshlet } from './helpers.ts';

const ISSUER = 'testing@secure.istio.io';
const dir = mkdtempSync(join(tmpdir(), 'meshlet-cli-explain-inbound-'));
const file = join(dir, 'mesh.yaml');
let token = '';
let yaml = '';

before(async () => {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  token = await new SignJWT({ iss: ISSUER, sub: 'alice', groups: ['users'], exp: Math.floor(Date.now() / 1000) + 3600 }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(privateKey);
  yaml = `apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: foo}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 8000, targetPort: 8080}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  jwtRules: [{issuer: ${ISSUER}, jwks: '${JSON.stringify({ keys: [jwk] })}'}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: foo}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: [/admin]}}], when: [{key: "request.auth.claims[groups]", notValues: [admins]}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: foo}
spec:
  action: ALLOW
  rules:
  - from: [{source: {requestPrincipals: ["*"]}}]
  - from: [{source: {principals: [cluster.local/ns/foo/sa/sleep]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: my-authz}
  rules: [{to: [{operation: {paths: [/ext/*]}}]}]
`;
  writeFileSync(file, yaml);
});

after(() => rmSync(dir, { recursive: true, force: true }));

const WORKLOAD = ['--service', 'httpbin', '-n', 'foo', '-l', 'app=httpbin', '--inbound'];

describe('meshlet explain --inbound', () => {
  it('prints which policy and rule decide, after normalizing the path', () => {
    const r = meshlet(['explain', file, ...WORKLOAD, '--principal', 'cluster.local/ns/bar/sa/x', '--source-ip', '10.0.0.1', '/public/../admin']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Path: +\/public\/\.\.\/admin → \/admin/);
    assert.match(r.stdout, /From: +mTLS peer spiffe:\/\/cluster\.local\/ns\/bar\/sa\/x at 10\.0\.0\.1/);
    assert.match(r.stdout, /denied 403 "RBAC: access denied": denied by DENY policy foo\/deny-admin rule 0/);
    assert.match(r.stdout, /Verdict: +403, refused by the authorization step/);
  });

  it('--token: decoded without verification, labelled so, and checked against the inline keys', () => {
    const r = meshlet(['explain', file, ...WORKLOAD, '--token', token, 'http://httpbin.foo:8000/headers']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /token 1 \(UNVERIFIED, decoded for explain only\)/);
    assert.match(r.stdout, /"sub":"alice"/);
    assert.match(r.stdout, /signature checked here/);
    assert.match(r.stdout, /local port 8080 \(service port 8000 targets it\)/);
    assert.match(r.stdout, /Verdict: +reaches the app — allowed by ALLOW policy foo\/allow rule 0/);
  });

  it('-o json: the documented shape; a CUSTOM provider it cannot call is named and assumed', () => {
    const r = meshlet(['explain', file, ...WORKLOAD, '-X', 'POST', '--principal', 'cluster.local/ns/foo/sa/sleep', '-H', 'x-a: 1', '/ext/x', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.mode, 'inbound');
    assert.deepEqual(j.request.headers, { 'x-a': '1' });
    assert.equal(j.request.method, 'POST');
    assert.equal(j.status, 200);
    assert.equal(j.refusedBy, null);
    assert.deepEqual([j.authz.decision, j.authz.policy, j.authz.rule], ['allow', 'foo/allow', 1]);
    assert.deepEqual(j.authz.custom, { provider: 'my-authz', policy: 'foo/ext', rule: 0, assumedConfigured: true });
    assert.ok(j.assumes.some((a: string) => a.includes('"my-authz" allows')));
    assert.equal(j.jwt.given, false);
    assert.deepEqual(j.jwt.tokens, []);
    assert.equal(j.rateLimits.length, 0);
    // The inbound pool the text prints as 'Inbound pool:' (unlimited here: nulls).
    assert.deepEqual(j.connectionPool, { cluster: 'inbound|8080||', source: null, service: j.connectionPool.service, maxActive: { http1: null, grpc: null }, maxPending: null });
  });

  it('--extension-provider lists the configured ones: a CUSTOM policy naming another denies, as Istio', () => {
    const r = meshlet(['explain', file, ...WORKLOAD, '--extension-provider', 'other', '--principal', 'cluster.local/ns/foo/sa/sleep', '/ext/x', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.deepEqual([j.status, j.authz.action, j.authz.policy], [403, 'CUSTOM', 'foo/ext']);
  });

  it('a malformed token in a header is an answer (401), not a usage mistake', () => {
    const r = meshlet(['explain', file, ...WORKLOAD, '-H', 'authorization: Bearer abc', '/headers']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Verdict: +401, refused by the jwt step/);
    assert.match(r.stdout, /WWW-Authenticate: Bearer realm="http:\/\/httpbin\.foo\.svc\.cluster\.local:8000\/headers", error="invalid_token"/);
  });

  it('--help documents the inbound options', () => {
    const r = meshlet(['explain', '--help']);
    assert.equal(r.code, 0);
    for (const flag of ['--inbound', '--principal', '--source-ip', '--token', '--claim', '--extension-provider', '--path-normalization']) assert.ok(r.stdout.includes(flag), flag);
  });

  const mistakes: { args: () => string[]; error: RegExp }[] = [
    { args: () => ['-X', 'GE T', '/'], error: /--request: not an HTTP method: "GE T"/ },
    { args: () => ['-H', 'no colon here', '/'], error: /--header: expected 'name: value', got "no colon here"/ },
    { args: () => ['--token', 'not-a-jwt', '/'], error: /--token: not a JWT: Jwt is not in the form of Header\.Payload\.Signature/ },
    { args: () => ['--source-ip', '10.0.0', '/'], error: /source\.ip: not an IP address: "10\.0\.0"/ },
    { args: () => ['--port', '0', '/'], error: /--port: expected a port number 1-65535, got "0"/ },
    { args: () => ['--claim', 'groups', '/'], error: /--claim: expected name=value, got "groups"/ },
    { args: () => ['--claim', 'groups=[admins', '/'], error: /--claim groups: the value starts like JSON but is not/ },
    { args: () => ['--path-normalization', 'FULL', '/'], error: /--path-normalization: expected NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES, got "FULL"/ },
    { args: () => ['--principal', 'cluster.local/ns/a/sa/b', '--source-namespace', 'a', '/'], error: /--principal or as --source-namespace/ },
    { args: () => ['--token', token, '--request-principal', 'a/b', '/'], error: /either --token or --request-principal/ },
    { args: () => ['admin'], error: /the last argument must be the request target/ },
  ];
  for (const m of mistakes) {
    it(`usage mistake, exit 2: ${m.error.source}`, () => {
      const r = meshlet(['explain', file, ...WORKLOAD, ...m.args()]);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, m.error);
      assert.equal(r.stdout, '');
    });
  }

  it('inbound options without --inbound are a usage mistake', () => {
    const r = meshlet(['explain', file, '--service', 'sleep', '--principal', 'cluster.local/ns/a/sa/b', 'http://httpbin.foo:8000/']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--principal is for --inbound/);
  });

  it('a config with errors: exit 1', () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: x, namespace: foo}\nspec: {action: MAYBE}\n');
    const r = meshlet(['explain', bad, ...WORKLOAD, '/']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /config has errors/);
  });
});

describe('mesh.explainInbound', () => {
  it("uses the mesh's extension providers and path normalization", async () => {
    const mesh = await createMesh({
      service: 'httpbin',
      namespace: 'foo',
      labels: { app: 'httpbin' },
      config: file,
      pathNormalization: 'NONE',
      logger: { warn: () => undefined },
      watch: false,
    });
    try {
      // No extensionProviders: the CUSTOM policy's provider is not configured, so its rules deny (as the mesh enforces).
      const ext = await mesh.explainInbound({ url: '/ext/x', source: { principal: 'cluster.local/ns/foo/sa/sleep' } });
      assert.deepEqual([ext.status, ext.authz?.result.action, ext.authz?.custom], [403, 'CUSTOM', undefined]);
      // NONE: the path is judged as received, so /admin's DENY does not see /public/../admin.
      const trick = await mesh.explainInbound({ url: '/public/../admin', source: { principal: 'cluster.local/ns/foo/sa/sleep' } });
      assert.deepEqual([trick.path.normalized, trick.status, trick.authz?.result.policy], ['/public/../admin', 200, 'foo/allow']);
      assert.match(String(trick), /unchanged by NONE normalization/);
    } finally {
      await mesh.close();
    }
  });
});
