/**
 * meshlet as users get it: `npm pack`, the tarball installed into fresh apps, the installed
 * `meshlet` command run through node_modules/.bin (a symlink), `npx` and an npm script, and
 * the library imported by an app on Node 24 and on Node 22.19 (the oldest meshlet supports),
 * with the app's own undici 7 or 8; and the server side as an app runs it (Express 5, Fastify 5,
 * node:http and grpc-js through the mesh, `meshlet/telemetry`'s Prometheus endpoint), from an app
 * that installs them (fixtures/server-app.mjs). Nothing here imports src/: it all goes through the tarball.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { IN_CI, oldNodePath, OLD_NODE_VERSION, skipWithout } from '../helpers/tools.ts';
import { packInto } from '../helpers/pack.ts';
import { deadPort, startUpstream, type Upstream } from '../helpers/upstreams.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const dir = mkdtempSync(join(tmpdir(), 'meshlet-pkg-'));
/** Node 24 (this process) first on PATH, as for any user whose `node` is new enough. */
const PATH24 = `${dirname(process.execPath)}${delimiter}${process.env['PATH'] ?? ''}`;

let tarball = '';
/** An app whose own undici is 7 (meshlet gets its own undici 8 next to it). */
let app7 = '';
/** An app whose own undici is 8 (one copy, shared with meshlet). */
let app8 = '';
/** An app with meshlet and only `@opentelemetry/sdk-metrics`, its own SDK: meshletMetricProducer() on its own reader. */
let appMetrics = '';
/** An app serving Express 5, Fastify 5, node:http and grpc-js through the mesh, with the OTel peers for meshlet/telemetry. */
let appServer = '';
let upstream: Upstream;

function sh(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, PATH: PATH24, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, out: r.stdout + r.stderr };
}

async function makeApp(name: string, undici: string, more: string[] = []): Promise<string> {
  const app = join(dir, name);
  mkdirSync(app);
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name, version: '1.0.0', private: true, type: 'module', scripts: { 'check-mesh': 'meshlet validate mesh', 'check-bad': 'meshlet validate bad' } }),
  );
  const r = await runAsync(NPM, ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', tarball, `undici@${undici}`, ...more], app);
  assert.equal(r.code, 0, `npm install in ${name} failed:\n${r.stdout}${r.stderr}`);
  mkdirSync(join(app, 'mesh'));
  mkdirSync(join(app, 'bad'));
  writeFileSync(
    join(app, 'bad', 'reviews.yaml'),
    'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http:\n  - timeout: 3 seconds\n    route: [{destination: {host: reviews}}]\n',
  );
  return app;
}

function meshConfig(app: string, port: number): void {
  writeFileSync(
    join(app, 'mesh', 'reviews.yaml'),
    `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: ${port}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /nowhere}}]
    directResponse: {status: 418}
  - route: [{destination: {host: reviews}}]
    headers: {response: {set: {x-via-mesh: "yes"}}}
`,
  );
}

function runAsync(cmd: string, args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, PATH: PATH24 }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += String(c)));
    child.stderr.on('data', (c) => (stderr += String(c)));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * What the server app installs next to meshlet: the frameworks, grpc-js, and the OTel peers
 * meshlet/telemetry needs for a Prometheus endpoint — no OTLP exporter package (the app turns OTLP
 * off), so startTelemetry() is shown to load those only for the protocol in use.
 */
const SERVER_PACKAGES = [
  'express',
  'fastify',
  '@grpc/grpc-js',
  '@opentelemetry/sdk-node',
  '@opentelemetry/sdk-metrics',
  '@opentelemetry/resources',
  '@opentelemetry/exporter-prometheus',
];

/** The app script: every way an app can send a request through the mesh; prints one JSON line. */
const APP_SCRIPT = `import { readFileSync } from 'node:fs';
import { createMesh } from 'meshlet';
import * as undici from 'undici';
const mesh = await createMesh({ service: 'productpage', config: './mesh', watch: false });
const out = { undici: JSON.parse(readFileSync('node_modules/undici/package.json', 'utf8')).version };
const via = async (name, p) => { try { const r = await p; out[name] = r; } catch (e) { out[name] = 'error: ' + e.message; } };
const asText = async (res) => res.status + ' ' + res.headers.get('x-via-mesh') + ' ' + (await res.text());
await via('globalFetch', globalThis.fetch('http://reviews:9080/a', { dispatcher: mesh.dispatcher }).then(asText));
await via('globalFetch418', globalThis.fetch('http://reviews:9080/nowhere', { dispatcher: mesh.dispatcher }).then((r) => r.status));
await via('meshFetch', mesh.fetch('http://reviews:9080/b').then(asText));
await via('appUndiciRequest', undici.request('http://reviews:9080/c', { dispatcher: mesh.dispatcher }).then(async (r) => r.statusCode + ' ' + r.headers['x-via-mesh'] + ' ' + (await r.body.text())));
await via('appUndiciFetch', undici.fetch('http://reviews:9080/d', { dispatcher: mesh.dispatcher }).then(asText));
undici.setGlobalDispatcher(mesh.dispatcher);
await via('globalFetchAfterSetGlobal', globalThis.fetch('http://reviews:9080/e').then(asText));
await via('appUndiciAfterSetGlobal', undici.request('http://reviews:9080/f').then(async (r) => r.statusCode + ' ' + (await r.body.text())));
out.internals = typeof (await import('meshlet/internals')).Exchange;
await mesh.close();
console.log(JSON.stringify(out));
`;

/** A CommonJS app (`require`, no top-level await): Node 22.12+ loads meshlet's ES modules with require(). */
const CJS_APP_SCRIPT = `const { createMesh, MeshletError } = require('meshlet');
(async () => {
  const mesh = await createMesh({ service: 'productpage', config: './mesh', watch: false });
  const res = await mesh.fetch('http://reviews:9080/cjs');
  const out = { meshFetch: res.status + ' ' + res.headers.get('x-via-mesh') + ' ' + (await res.text()), errorClass: typeof MeshletError, express: typeof mesh.express };
  await mesh.close();
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
`;

before(async () => {
  // npm pack runs `prepack` (the build); one test file packs at a time.
  tarball = await packInto(dir);
  // The server app's frameworks and peers at the versions meshlet is developed against (in the
  // npm cache). The three installs run side by side: most of an install is waiting on the disk.
  const dev = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies;
  [app7, app8, appServer, appMetrics] = await Promise.all([
    makeApp('app7', '^7.30.2'),
    makeApp('app8', '^8.12.4'),
    makeApp(
      'app-server',
      '^8.12.4',
      SERVER_PACKAGES.map((p) => `${p}@${dev[p]}`),
    ),
    makeApp('app-metrics', '^8.12.4', [`@opentelemetry/sdk-metrics@${dev['@opentelemetry/sdk-metrics']}`]),
  ]);
  copyFileSync(new URL('fixtures/server-app.mjs', import.meta.url), join(appServer, 'server-app.mjs'));
  upstream = await startUpstream('reviews', (req, res) => {
    res.end(`reviews ${req.url}`);
  });
  meshConfig(appMetrics, upstream.port);
  for (const app of [app7, app8]) {
    meshConfig(app, upstream.port);
    writeFileSync(join(app, 'app.mjs'), APP_SCRIPT);
    writeFileSync(join(app, 'app.cjs'), CJS_APP_SCRIPT);
  }
});

after(async () => {
  await upstream?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the packed tarball', () => {
  it('holds the built library, the bin, LICENSE, the docs the README and the CLI link to, and no source map that points at a missing file', () => {
    const files = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' }).split('\n').filter((f) => f !== '');
    for (const f of ['package/dist/index.js', 'package/dist/index.d.ts', 'package/dist/cli/bin.js', 'package/LICENSE', 'package/README.md', 'package/package.json', 'package/docs/cli.md', 'package/docs/outbound.md']) {
      assert.ok(files.includes(f), `${f} missing from the tarball`);
    }
    assert.equal(files.filter((f) => /\.test\.(ts|js)$/.test(f)).length, 0, 'test files are not shipped');
    const unpacked = join(dir, 'unpacked');
    mkdirSync(unpacked);
    execFileSync('tar', ['xzf', tarball, '-C', unpacked]);
    const maps = files.filter((f) => f.endsWith('.map'));
    assert.ok(maps.length > 0);
    for (const m of maps) {
      const map = JSON.parse(readFileSync(join(unpacked, m), 'utf8')) as { sources: string[] };
      for (const s of map.sources) assert.ok(existsSync(join(unpacked, dirname(m), s)), `${m} points at ${s}, which is not in the tarball`);
    }
    const pkg = JSON.parse(readFileSync(join(unpacked, 'package', 'package.json'), 'utf8')) as Record<string, unknown>;
    for (const k of ['repository', 'homepage', 'bugs', 'license', 'engines']) assert.ok(pkg[k] !== undefined, `package.json has no ${k}`);
    for (const [name, range] of Object.entries(pkg['dependencies'] as Record<string, string>)) assert.match(range, /^\^\d/, `${name}: a library takes caret ranges, got ${range}`);
  });

  it('is bundled: `import "meshlet"` loads a few of its files (not one per module), and `meshlet/internals` shares its classes', () => {
    // One file per module made Node's loader resolve, read, compile and link ~370 files at
    // every start (scripts/bundle.ts; bench/startup/import.ts measures the difference).
    const script = `import { registerHooks } from 'node:module';
const files = new Set();
registerHooks({ load(url, ctx, next) { if (url.includes('/node_modules/meshlet/')) files.add(url); return next(url, ctx); } });
const main = await import('meshlet');
const internals = await import('meshlet/internals');
const snapshot = main.compileSnapshot([], { service: 'a' });
console.log(JSON.stringify({ files: files.size, same: snapshot.routes instanceof internals.RouteTable && snapshot.registry instanceof internals.ServiceRegistry }));`;
    const r = sh(process.execPath, ['--input-type=module', '-e', script], app8);
    assert.equal(r.code, 0, r.out);
    const out = JSON.parse(r.stdout.trim()) as { files: number; same: boolean };
    assert.ok(out.files > 1 && out.files < 60, `meshlet and meshlet/internals loaded ${out.files} of meshlet's files`);
    assert.ok(out.same, "a snapshot made through 'meshlet' holds instances of the classes 'meshlet/internals' exports (one copy of each module)");
  });

  it('installs an app on undici 8 with one undici, and an app on undici 7 keeps its own', () => {
    const own = (app: string) => (JSON.parse(readFileSync(join(app, 'node_modules', 'undici', 'package.json'), 'utf8')) as { version: string }).version;
    assert.match(own(app7), /^7\./);
    assert.match(own(app8), /^8\./);
    assert.ok(!existsSync(join(app8, 'node_modules', 'meshlet', 'node_modules', 'undici')), 'app8: meshlet shares the app\'s undici 8');
    assert.ok(existsSync(join(app7, 'node_modules', 'meshlet', 'node_modules', 'undici')), 'app7: meshlet has its own undici 8');
  });
});

describe('the installed meshlet command', () => {
  it('node_modules/.bin/meshlet (a symlink) validates: exit 1 with the errors for bad config, 0 for good', () => {
    const bin = join(app8, 'node_modules', '.bin', 'meshlet');
    const bad = sh(bin, ['validate', 'bad'], app8);
    assert.equal(bad.code, 1, bad.out);
    assert.match(bad.stdout, /bad\/reviews\.yaml: VirtualService default\/reviews: spec\.http\[0\]\.timeout: invalid duration "3 seconds"/);
    const good = sh(bin, ['validate', 'mesh'], app8);
    assert.equal(good.code, 0, good.out);
    assert.match(good.stdout, /0 error\(s\)/);
    assert.match(sh(bin, ['--version'], app8).stdout, /^\d+\.\d+\.\d+/);
  });

  it('npx meshlet and an npm script run it too', () => {
    const npx = sh(process.platform === 'win32' ? 'npx.cmd' : 'npx', ['--no-install', 'meshlet', 'validate', 'bad'], app8);
    assert.equal(npx.code, 1, npx.out);
    assert.match(npx.stdout, /invalid duration "3 seconds"/);
    const good = sh(NPM, ['run', '--silent', 'check-mesh'], app8);
    assert.equal(good.code, 0, good.out);
    const bad = sh(NPM, ['run', '--silent', 'check-bad'], app8);
    assert.notEqual(bad.code, 0, 'an npm script running meshlet validate on bad config fails the script');
    assert.match(bad.stdout, /invalid duration "3 seconds"/);
  });

  it('meshlet control-plane starts and answers /healthz', async () => {
    const port = await deadPort();
    const child = spawn(join(app8, 'node_modules', '.bin', 'meshlet'), ['control-plane', '--config', 'mesh', '--port', String(port), '--data-dir', join(dir, 'cp-data'), '--insecure'], {
      cwd: app8,
      env: { ...process.env, PATH: PATH24 },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    // Its end, whenever it comes: a child that exits early fails the test with its output (never
    // a wait for a 'close' that already happened).
    const ended = new Promise<string>((resolve) => child.once('close', (code, signal) => resolve(`exited (code ${code}, signal ${signal})`)));
    try {
      await new Promise<void>((resolve, reject) => {
        const onData = (c: Buffer) => {
          output += String(c);
          if (output.includes('listening on')) resolve();
        };
        child.stdout.on('data', onData);
        child.stderr.on('data', onData);
        void ended.then((how) => reject(new Error(`control-plane ${how} before listening:\n${output}`)));
      });
      assert.match(output, new RegExp(`listening on http://127\\.0\\.0\\.1:${port}`));
      const res = await fetch(`http://127.0.0.1:${port}/healthz`).catch(async (e: Error) => {
        throw new Error(`GET /healthz failed (${e.message}; ${e.cause ?? ''}); the control plane ${await Promise.race([ended, Promise.resolve('was still running')])}:\n${output}`);
      });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    } finally {
      child.kill('SIGTERM');
      await ended;
    }
  });

  it('meshlet tap and top read a running app\'s mesh (the installed package) from its admin endpoint', async () => {
    // The app: a mesh from the installed package with an admin endpoint, calling /nowhere (the config's direct 418) until its stdin closes.
    writeFileSync(
      join(app8, 'tap-app.mjs'),
      `import { createMesh } from 'meshlet';
const mesh = await createMesh({ service: 'web', logger: { warn() {} }, admin: { port: 0 }, config: './mesh' });
console.log(mesh.adminUrl);
const timer = setInterval(() => void mesh.fetch('http://reviews:9080/nowhere?token=x').then((r) => r.arrayBuffer()), 10);
process.stdin.on('end', () => { clearInterval(timer); void mesh.close(); });
process.stdin.resume();
`,
    );
    const app = spawn(process.execPath, ['tap-app.mjs'], { cwd: app8, stdio: ['pipe', 'pipe', 'inherit'] });
    const exited = new Promise((resolve) => app.once('close', resolve));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        app.stdout.on('data', (c: Buffer) => {
          out += String(c);
          if (out.includes('\n')) resolve(out.trim());
        });
        void exited.then(() => reject(new Error(`the app exited: ${out}`)));
      });
      const bin = join(app8, 'node_modules', '.bin', 'meshlet');
      const tap = await runAsync(bin, ['tap', new URL(url).port, '--count', '2', '--duration', '60s'], app8);
      assert.equal(tap.code, 0, tap.stdout + tap.stderr);
      assert.match(tap.stdout, /^req id=1 proxy=out src=- dst=- tls=false :method=GET :authority=reviews:9080 :path=\/nowhere$/m);
      assert.match(tap.stdout, /^end id=1 proxy=out src=- dst=- tls=false :status=418 latency=\d+µs response-length=0B flags=-$/m);
      const top = await runAsync(bin, ['top', url, '--once', '--duration', '1s', '-o', 'json'], app8);
      assert.equal(top.code, 0, top.stdout + top.stderr);
      const rows = (JSON.parse(top.stdout) as { rows: { path: string; count: number; successRate: number }[] }).rows;
      assert.equal(rows[0]?.path, '/nowhere');
      assert.ok((rows[0]?.count ?? 0) > 0 && rows[0]?.successRate === 100, top.stdout);
    } finally {
      app.stdin.end();
      await exited;
    }
  });

  it('on a Node.js older than 22.19 it says so instead of crashing inside undici', (t) => {
    // The machine's own Node (20 on these machines) when it is older; the packed library's
    // check is the same module, so one old Node is enough to prove both entry points.
    const old = ['/usr/bin/node', '/usr/local/bin/node'].find((p) => existsSync(p) && Number(execFileSync(p, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' }).trim()) < 22);
    if (old === undefined) {
      if (IN_CI) assert.fail('no Node.js older than 22 on this machine to run the check with');
      t.skip('no Node.js older than 22 on this machine');
      return;
    }
    const env = { PATH: `${dirname(old)}${delimiter}${process.env['PATH'] ?? ''}` };
    const cli = sh(join(app8, 'node_modules', '.bin', 'meshlet'), ['validate', 'mesh'], app8, env);
    assert.equal(cli.code, 1, cli.out);
    assert.match(cli.stderr, /meshlet needs Node\.js >= 22\.19; this is Node\.js 2\d\./);
    assert.doesNotMatch(cli.stderr, /bind|undici/);
    const lib = sh(old, ['-e', "import('meshlet').then(() => console.log('loaded'), (e) => { console.log(e.message); process.exit(1); })"], app8, env);
    assert.equal(lib.code, 1, lib.out);
    assert.match(lib.stdout, /meshlet needs Node\.js >= 22\.19/);
  });
});

for (const [label, node] of [
  ['Node 24', () => process.execPath],
  [`Node ${OLD_NODE_VERSION}`, oldNodePath],
] as const) {
  describe(`an app on ${label}`, { skip: label === 'Node 24' ? false : skipWithout('node22') }, () => {
    for (const [appName, app] of [
      ['undici 7', () => app7],
      ['undici 8', () => app8],
    ] as const) {
      it(`with its own ${appName}: the built-in fetch, mesh.fetch, undici.request/fetch and setGlobalDispatcher all go through the mesh`, async () => {
        // Asynchronously: the upstream answering the app lives in this process.
        const r = await runAsync(node(), ['app.mjs'], app());
        assert.equal(r.code, 0, r.stdout + r.stderr);
        const out = JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as Record<string, unknown>;
        assert.match(String(out['undici']), appName === 'undici 7' ? /^7\./ : /^8\./);
        assert.equal(out['globalFetch'], '200 yes reviews /a');
        assert.equal(out['globalFetch418'], 418);
        assert.equal(out['meshFetch'], '200 yes reviews /b');
        assert.equal(out['appUndiciRequest'], '200 yes reviews /c');
        assert.equal(out['appUndiciFetch'], '200 yes reviews /d');
        assert.equal(out['globalFetchAfterSetGlobal'], '200 yes reviews /e');
        assert.equal(out['appUndiciAfterSetGlobal'], '200 reviews /f');
        assert.equal(out['internals'], 'function', 'meshlet/internals resolves from the installed package');
      });
    }
    it('a CommonJS app require()s meshlet and meshlet/telemetry, and its calls go through the mesh', async () => {
      const r = await runAsync(node(), ['app.cjs'], app8);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const out = JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as Record<string, unknown>;
      assert.deepEqual(out, { meshFetch: '200 yes reviews /cjs', errorClass: 'function', express: 'function' });
      // meshlet/telemetry from CommonJS, in the app that has its OpenTelemetry peers.
      const t = await runAsync(node(), ['-e', "console.log(typeof require('meshlet/telemetry').startTelemetry)"], appServer);
      assert.equal(t.stdout.trim(), 'function', t.stdout + t.stderr);
    });
  });
}

describe('the server side from the installed package', () => {
  for (const [label, node] of [
    ['Node 24', () => process.execPath],
    [`Node ${OLD_NODE_VERSION}`, oldNodePath],
  ] as const) {
    it(`on ${label}: Express 5, Fastify 5 and node:http judge JWT and AuthorizationPolicy, grpc-js serves and calls through the mesh, startTelemetry() is scraped`, { skip: label === 'Node 24' ? false : skipWithout('node22') }, async () => {
      const r = await runAsync(node(), ['server-app.mjs'], appServer);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const out = JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as Record<string, unknown>;
      assert.equal(String(out['node']).split('.')[0], (label === 'Node 24' ? process.versions.node : OLD_NODE_VERSION).split('.')[0]);
      for (const server of ['express', 'fastify', 'http']) {
        const s = out[server] as Record<string, unknown>;
        assert.equal(s['public'], '200 hello', server);
        assert.equal(s['noToken'], '403 RBAC: access denied', server);
        assert.equal(s['badToken'], '401 Jwt is expired', server);
        assert.equal(s['badTokenWwwAuthenticate'], `Bearer realm="http://127.0.0.1:${s['port']}/admin", error="invalid_token"`, server);
        assert.equal(s['forgedToken'], '401 Jwt verification fails', server);
        assert.equal(s['goodToken'], '200 {"principal":"issuer.test/alice"}', `${server}: the app sees req.meshlet's requestPrincipal`);
        assert.equal(s['dotsToAdmin'], 403, `${server}: /public/../admin is judged as /admin`);
        assert.equal(s['dotsReachedAdmin'], false, `${server}: /public/../admin never reaches the admin handler`);
        assert.equal(s['adminHits'], 1, `${server}: only the valid token reached /admin`);
      }
      assert.equal(out['grpcOk'], 'OK hi');
      assert.equal(out['grpcDenied'], 'PERMISSION_DENIED RBAC: access denied');
      // Per server: public + good token are 200, no token + /public/../admin are 403, expired + forged are 401.
      assert.deepEqual(out['metrics'], { http200: 6, http401: 6, http403: 6, grpcOk: 1, grpcDenied: 1 }, 'istio_requests_total{reporter="destination"} on the scrape endpoint');
    });
  }

  it('without @grpc/grpc-js installed: mesh.grpc says it is missing', () => {
    // app7 has only meshlet and undici.
    const grpcMissing = sh(
      process.execPath,
      ['--input-type=module', '-e', "import { createMesh } from 'meshlet'; const m = await createMesh({ service: 'a', config: [] }); try { m.grpc.serverInterceptors(); } catch (e) { console.log(e.code, e.message); } await m.close();"],
      app7,
    );
    assert.equal(grpcMissing.code, 0, grpcMissing.out);
    assert.equal(grpcMissing.stdout.trim(), 'MESHLET_ERR_INVALID_ARG mesh.grpc: @grpc/grpc-js is not installed; install it next to meshlet (npm install @grpc/grpc-js); in a bundled app, mark @grpc/grpc-js external (esbuild --external:@grpc/grpc-js) and ship it in node_modules, so the app and meshlet load the same copy');
  });

  it('without the OpenTelemetry SDK installed: meshlet/telemetry imports, meshletMetricProducer works, startTelemetry() rejects naming every missing package', () => {
    // app7 has only meshlet and undici: importing the subpath loads no SDK package (ESM and CommonJS).
    const script = `import { startTelemetry, meshletMetricProducer, EvictingPrometheusReader } from 'meshlet/telemetry';
const out = { producer: typeof meshletMetricProducer().release };
try { await startTelemetry({ prometheus: { port: 0 } }); out.started = true; } catch (e) { out.code = e.code; out.name = e.name; out.message = e.message; }
try { await new EvictingPrometheusReader({ port: 0 }).listen(); out.listened = true; } catch (e) { out.reader = e.message; }
try { await startTelemetry({ prometheus: false, otlp: { protocol: 'grpc' } }); } catch (e) { out.otlp = e.message; }
console.log(JSON.stringify(out));`;
    const r = sh(process.execPath, ['--input-type=module', '-e', script], app7);
    assert.equal(r.code, 0, r.out);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as Record<string, string>;
    assert.equal(out['producer'], 'function');
    assert.equal(out['code'], 'MESHLET_ERR_INVALID_ARG');
    assert.equal(out['name'], 'InvalidArgumentError');
    assert.equal(
      out['message'],
      'startTelemetry needs @opentelemetry/sdk-node, @opentelemetry/sdk-metrics, @opentelemetry/resources and @opentelemetry/exporter-prometheus, which are not installed (optional peer dependencies of meshlet); install them next to meshlet: npm install @opentelemetry/sdk-node @opentelemetry/sdk-metrics @opentelemetry/resources @opentelemetry/exporter-prometheus',
    );
    assert.match(String(out['reader']), /^EvictingPrometheusReader needs @opentelemetry\/exporter-prometheus, which is not installed .*npm install @opentelemetry\/exporter-prometheus$/);
    assert.match(String(out['otlp']), /npm install @opentelemetry\/sdk-node @opentelemetry\/sdk-metrics @opentelemetry\/resources @opentelemetry\/exporter-metrics-otlp-grpc @opentelemetry\/exporter-trace-otlp-grpc; or, for OTLP, choose another protocol \('http\/protobuf' or 'http\/json'\)/);
    const cjs = sh(process.execPath, ['-e', "console.log(typeof require('meshlet/telemetry').meshletMetricProducer)"], app7);
    assert.equal(cjs.stdout.trim(), 'function', cjs.out);
  });

  it('with only @opentelemetry/sdk-metrics (the app\'s own SDK): meshletMetricProducer() on its reader gets the mesh\'s istio_requests_total', () => {
    const script = `import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { createMesh } from 'meshlet';
import { meshletMetricProducer } from 'meshlet/telemetry';
class Reader extends MetricReader { async onForceFlush() {} async onShutdown() {} }
const reader = new Reader({ metricProducers: [meshletMetricProducer()] });
const provider = new MeterProvider({ readers: [reader] });
const mesh = await createMesh({ service: 'productpage', config: './mesh', watch: false });
const res = await mesh.fetch('http://reviews:9080/metrics-app');
await res.text();
const { resourceMetrics } = await reader.collect();
const names = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics.map((m) => m.descriptor.name));
await mesh.close();
await provider.shutdown();
console.log(JSON.stringify({ status: res.status, requests: names.includes('istio_requests_total') }));`;
    assert.ok(!existsSync(join(appMetrics, 'node_modules', '@opentelemetry', 'exporter-prometheus')), 'the app has no Prometheus exporter');
    assert.ok(!existsSync(join(appMetrics, 'node_modules', '@opentelemetry', 'sdk-node')), 'the app has no Node SDK');
    return runAsync(process.execPath, ['--input-type=module', '-e', script], appMetrics).then((r) => {
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').at(-1) as string), { status: 200, requests: true });
    });
  });
});
