/**
 * meshlet in the shapes production images take (docs/deploying.md): the packed tarball installed
 * into an app with grpc-js and esbuild, the app (fixtures/bundle-app.mjs) bundled to one file —
 * CommonJS and ES module output, grpc-js marked external as the docs say, and bundled in by
 * mistake — and the same app run unbundled under a locked-down Node: the permission model with
 * read grants only (meshlet writes nothing), no code generation from strings, frozen intrinsics,
 * HOME unset. Every run makes an HTTP call and a gRPC call through the mesh.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { oldNodePath, skipWithout } from '../helpers/tools.ts';
import { packInto } from '../helpers/pack.ts';
import { startUpstream, type Upstream } from '../helpers/upstreams.ts';

const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const PATH24 = `${dirname(process.execPath)}${delimiter}${process.env['PATH'] ?? ''}`;
const dir = mkdtempSync(join(tmpdir(), 'meshlet-deployed-'));
const app = join(dir, 'app');
const meshDir = join(dir, 'mesh');
/** What esbuild needs so an ES module bundle can load the CommonJS packages inside it (undici) and outside it. */
const ESM_BANNER = "import { createRequire as __meshletCreateRequire } from 'node:module'; const require = __meshletCreateRequire(import.meta.url);";
let upstream: Upstream;

function esbuild(out: string, args: string[]): void {
  const r = spawnSync(join(app, 'node_modules', '.bin', 'esbuild'), ['bundle-app.mjs', '--bundle', '--platform=node', '--log-level=error', `--outfile=${out}`, ...args], { cwd: app, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

/** Runs `file` (spawned, not spawnSync: the upstream it calls lives in this process) and returns its JSON line. */
async function run(node: string, file: string, flags: string[] = [], env: NodeJS.ProcessEnv = { ...process.env }): Promise<Record<string, string>> {
  const r = await runAsync(node, [...flags, file], app, { ...env, MESH_DIR: meshDir });
  const last = r.out.trim().split('\n').filter((l) => l.startsWith('{')).at(-1);
  assert.ok(last !== undefined, `no result from ${file} (exit ${r.code}):\n${r.out}`);
  return JSON.parse(last) as Record<string, string>;
}

function runAsync(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => (out += String(c)));
    child.stderr.on('data', (c) => (out += String(c)));
    child.on('close', (code) => resolve({ code, out }));
  });
}

before(async () => {
  const tarball = await packInto(dir);
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
  const install = await runAsync(NPM, ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', tarball, '@grpc/grpc-js@^1.14.7', 'esbuild@^0.28.0'], app, { ...process.env, PATH: PATH24 });
  assert.equal(install.code, 0, install.out);
  copyFileSync(new URL('fixtures/bundle-app.mjs', import.meta.url), join(app, 'bundle-app.mjs'));
  upstream = await startUpstream('reviews', (req, res) => {
    res.end(`reviews ${req.url}`);
  });
  mkdirSync(meshDir);
  writeFileSync(
    join(meshDir, 'reviews.yaml'),
    `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: ${upstream.port}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews}}]
    headers: {response: {set: {x-via-mesh: "yes"}}}
`,
  );
});

after(async () => {
  await upstream?.close();
  rmSync(dir, { recursive: true, force: true });
});

const WORKS = {
  http: '200 yes reviews /r/1',
  grpc: 'OK hi',
  telemetry:
    'MESHLET_ERR_INVALID_ARG startTelemetry needs @opentelemetry/sdk-node, @opentelemetry/sdk-metrics and @opentelemetry/resources, which are not installed (optional peer dependencies of meshlet); install them next to meshlet: npm install @opentelemetry/sdk-node @opentelemetry/sdk-metrics @opentelemetry/resources',
};
/** What docs/deploying.md says to leave out of a bundle. */
const EXTERNAL = ['--external:@grpc/grpc-js', '--external:@opentelemetry/*'];

describe('an app bundled by esbuild', () => {
  it('CommonJS output, grpc-js and OpenTelemetry external: HTTP and gRPC go through the mesh (meshlet finds grpc-js without import.meta.url), startTelemetry() names the missing SDK', async () => {
    esbuild('out/app.cjs', ['--format=cjs', ...EXTERNAL]);
    const { node: _, ...out } = await run(process.execPath, 'out/app.cjs');
    assert.deepEqual(out, WORKS);
  });

  it('ES module output, grpc-js and OpenTelemetry external: HTTP and gRPC go through the mesh, startTelemetry() names the missing SDK', async () => {
    esbuild('out/app.mjs', ['--format=esm', ...EXTERNAL, `--banner:js=${ESM_BANNER}`]);
    const { node: _, ...out } = await run(process.execPath, 'out/app.mjs');
    assert.deepEqual(out, WORKS);
  });

  it('grpc-js bundled in, a second copy in node_modules: mesh.grpc.bind says to mark it external', async () => {
    esbuild('out/grpc-inside.mjs', ['--format=esm', '--external:@opentelemetry/*', `--banner:js=${ESM_BANNER}`]);
    const out = await run(process.execPath, 'out/grpc-inside.mjs');
    assert.equal(out['http'], WORKS.http);
    assert.match(out['grpc'] ?? '', /^MESHLET_ERR_INVALID_ARG mesh\.grpc\.bind\(server, "127\.0\.0\.1:0"\): server is a grpc-js Server of another copy of @grpc\/grpc-js than the one meshlet loads; in a bundled app, mark @grpc\/grpc-js external \(esbuild --external:@grpc\/grpc-js\)/);
  });
});

describe('the app under a locked-down Node: --permission with read grants only, no code from strings, frozen intrinsics, HOME unset', () => {
  const env = { ...process.env };
  delete env['HOME'];
  const flags = ['--permission', `--allow-fs-read=${app}`, `--allow-fs-read=${meshDir}`, '--disallow-code-generation-from-strings', '--frozen-intrinsics'];
  for (const [label, node] of [
    ['Node 24', process.execPath],
    ['Node 22.19', oldNodePath()],
  ] as const) {
    it(`on ${label}: HTTP and gRPC go through the mesh, and meshlet writes nothing`, { skip: label === 'Node 24' ? false : skipWithout('node22') }, async () => {
      const { node: _, ...out } = await run(node, 'bundle-app.mjs', flags, env);
      assert.deepEqual(out, WORKS);
    });
  }
});
