/**
 * `meshlet validate` is the CI gate, like `istioctl analyze`: it exits non-zero on error-level
 * findings even though meshes apply such config (analysis is advisory there), and it analyses
 * the valid resources even when others fail the schema.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'meshlet-validate-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const SE = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1}]
`;
const MISSING_SUBSET = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v9}}]
`;
const SCHEMA_ERROR = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken}
spec:
  hosts: [ratings]
  http:
  - timeout: 3 seconds
    route: [{destination: {host: ratings}}]
`;

function validate(...files: string[]) {
  const r = spawnSync(process.execPath, [MAIN, 'validate', ...files], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout + r.stderr };
}

it('exits 1 on an error-level finding alone (IST0101), as istioctl analyze does', () => {
  writeFileSync(join(dir, 'se.yaml'), SE);
  writeFileSync(join(dir, 'vs.yaml'), MISSING_SUBSET);
  const r = validate(join(dir, 'se.yaml'), join(dir, 'vs.yaml'));
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /error +IST0101 .*VirtualService default\/reviews: spec\.http\[0\]\.route\[0\]\.destination\.subset: referenced subset "v9"/);
  assert.match(r.out, /1 error\(s\)/);
});

it('reports the analysis of the valid resources even when another resource fails the schema', () => {
  writeFileSync(join(dir, 'broken.yaml'), SCHEMA_ERROR);
  const r = validate(join(dir, 'se.yaml'), join(dir, 'vs.yaml'), join(dir, 'broken.yaml'));
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /VirtualService default\/broken: spec\.http\[0\]\.timeout: invalid duration "3 seconds"/);
  assert.match(r.out, /IST0101 .*subset "v9"/);
  assert.match(r.out, /2 error\(s\)/);
});
