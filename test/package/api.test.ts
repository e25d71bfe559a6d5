/**
 * The public API's shape: the main entry exports what applications use (fewer than 40 values),
 * engine internals live in the unstable `meshlet/internals` entry, and the API reference builds
 * without warnings (TypeDoc with excludeInternal, grouped by topic).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import * as internals from '../../src/internals.ts';
import * as main from '../../src/index.ts';

const ROOT = new URL('../../', import.meta.url).pathname;

test('the main entry exports the public API only: fewer than 40 values, no engine internals', () => {
  const values = Object.keys(main);
  assert.ok(values.length < 40, `${values.length} values: ${values.join(', ')}`);
  for (const name of ['createMesh', 'Mesh', 'MeshletError', 'isMeshletError', 'loadConfig', 'compileSnapshot', 'withDeadline', 'ManualClock', 'FLAGS_HEADER']) {
    assert.ok(values.includes(name), `${name} is public`);
  }
  for (const name of ['Exchange', 'HostSet', 'DeadlineQueue', 'Outbound', 'ClusterState', 'OutlierDetector', 'RequestLimiter', 'createPicker', 'stack']) {
    assert.ok(!values.includes(name), `${name} is an engine internal, not in the main entry`);
    assert.ok(name in internals, `${name} is in meshlet/internals`);
  }
});

test('package.json maps meshlet/internals to its built entry', () => {
  const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { exports: Record<string, { default?: string }> };
  assert.equal(pkg.exports['./internals']?.default, './dist/internals.js');
  assert.equal(pkg.exports['.']?.default, './dist/index.js');
});

test('the API reference builds with no warning (TypeDoc, warnings as errors, categories by topic)', () => {
  // --skipErrorChecking: TypeDoc's own type check of src took most of this test's time (80 of 95 s
  // on a loaded machine), and the suite type-checks src already: `npm run typecheck`, and tsc on
  // tsconfig.build.json emitting the declarations (npm pack in the package tests, types.test.ts).
  const r = spawnSync(process.execPath, [`${ROOT}node_modules/typedoc/bin/typedoc`, '--treatWarningsAsErrors', '--skipErrorChecking', '--out', `${ROOT}node_modules/.cache/meshlet-test/api`], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const modules = readFileSync(`${ROOT}node_modules/.cache/meshlet-test/api/modules.html`, 'utf8');
  for (const category of ['Mesh', 'Server', 'Errors', 'Context and time', 'Config', 'Snapshot', 'Istio resources']) assert.ok(modules.includes(`data-key="section-${category}"`), `category ${category} in the reference`);
});
