import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const BOOKINFO = new URL('../../examples/bookinfo', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'meshlet-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function meshlet(...args: string[]) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

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

  it('validate: says once per kind that PeerAuthentication, RequestAuthentication, AuthorizationPolicy and Telemetry are not applied yet', () => {
    const file = join(dir, 'security.yaml');
    const policy = (name: string) => `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ${name}}\nspec: {rules: [{}]}\n`;
    writeFileSync(file, [policy('a'), policy('b'), 'apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: t}\nspec: {}\n'].join('---\n'));
    const r = meshlet('validate', file);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stdout.match(/validated but not applied/g)?.length, 2, r.stdout);
    assert.match(r.stdout, /info\s+\S*security\.yaml: AuthorizationPolicy default\/a: 2 AuthorizationPolicy resources validated but not applied: meshlet does not enforce authorization/);
    assert.match(r.stdout, /Telemetry default\/t: 1 Telemetry validated but not applied/);
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

  it('usage errors exit 2 without a stack trace', () => {
    const r = meshlet('routes', BOOKINFO);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--service is required/);
    const u = meshlet('frobnicate');
    assert.equal(u.code, 2);
    assert.match(u.stderr, /unknown command "frobnicate"/);
  });
});
