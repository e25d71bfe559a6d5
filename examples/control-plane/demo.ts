/**
 * The control-plane demo: `meshlet control-plane` as its own process, workloads that register
 * with it, and route changes pushed to every mesh.
 *
 *   npm run demo:control-plane        (node examples/control-plane/demo.ts)
 *
 * 1. Starts `meshlet control-plane` (the CLI) on a temp directory holding a ServiceEntry that
 *    selects `app: reviews` workloads and a DestinationRule with v1/v2 subsets; applies a route to v1.
 * 2. Starts two `reviews` instances (v1, v2): each is a node:http server plus a mesh that
 *    `register()`s it. `productpage`'s mesh finds them through the registry.
 * 3. `meshlet apply -f` a 50/50 split: the push reaches productpage, and its traffic follows.
 * 4. A bad apply (a route to a subset v3 that no DestinationRule defines) is refused with its
 *    reason; nothing changes. (This control plane runs with `--analysis blocking`, a gate; by
 *    default analysis is advisory, as in Istio, and the route would apply and answer 503 NC.)
 * 5. v1 shuts down gracefully (deregister, drain): traffic moves to v2 without a failed request.
 * 6. `meshlet status`: every workload, the version it ACKed.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createMesh, type Mesh } from '../../src/index.ts';

const CLI = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const run = promisify(execFile);

function meshlet(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  return run(process.execPath, [CLI, ...args]).then(
    (r) => ({ ...r, code: 0 }),
    (e: { stdout: string; stderr: string; code: number }) => ({ stdout: e.stdout, stderr: e.stderr, code: e.code }),
  );
}

const se = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'ServiceEntry',
  metadata: { name: 'reviews', namespace: 'default' },
  spec: { hosts: ['reviews'], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }], workloadSelector: { labels: { app: 'reviews' } } },
};
const dr = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'DestinationRule',
  metadata: { name: 'reviews', namespace: 'default' },
  spec: { host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] },
};
function route(weights: Record<string, number> | undefined): object {
  const http = weights === undefined ? [{ route: [{ destination: { host: 'reviews' } }] }] : [{ route: Object.entries(weights).map(([subset, weight]) => ({ destination: { host: 'reviews', subset }, weight })) }];
  return { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'reviews', namespace: 'default' }, spec: { hosts: ['reviews'], http } };
}

async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function startControlPlane(configDir: string, dataDir: string): Promise<{ url: string; proc: ChildProcess }> {
  const port = await freePort();
  const proc = spawn(process.execPath, [CLI, 'control-plane', '--config', configDir, '--data-dir', dataDir, '--host', '127.0.0.1', '--port', String(port), '--analysis', 'blocking'], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stderr?.on('data', (d: Buffer) => {
    for (const l of d.toString().trimEnd().split('\n')) console.log(`    [control plane] ${l.replace(/^meshlet control-plane: /, '')}`);
  });
  const line = await new Promise<string>((resolve, reject) => {
    proc.stdout?.once('data', (d: Buffer) => resolve(d.toString().trim()));
    proc.once('exit', (code) => reject(new Error(`control plane exited with ${code}`)));
  });
  console.log(`  ${line}`);
  return { url: `http://127.0.0.1:${port}`, proc };
}

interface Instance {
  readonly mesh: Mesh;
  readonly server: Server;
}

async function startReviews(version: string, controlPlane: string, token: string): Promise<Instance> {
  const mesh = await createMesh({ service: 'reviews', labels: { version }, controlPlane, token, drainMs: 300 });
  // The mesh's own server: it takes mTLS (and plaintext, under PERMISSIVE), as its registration says.
  const server = mesh.createServer((_req, res) => res.end(version));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const reg = await mesh.register({ ports: { http: port }, address: '127.0.0.1' });
  console.log(`  reviews ${version} listening on 127.0.0.1:${port}, registered as WorkloadEntry ${reg.namespace}/${reg.name}`);
  return { mesh, server };
}

async function traffic(mesh: Mesh, n: number): Promise<string> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const res = await mesh.fetch('http://reviews:9080/reviews/1');
    const body = await res.text();
    const key = res.status === 200 ? body : `${res.status} ${res.headers.get('x-meshlet-response-flags') ?? ''}`.trim();
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].sort().map(([k, v]) => `${k}: ${v}`).join(', ');
}

async function applied(mesh: Mesh, change: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  const got = new Promise((r) => mesh.once('config', r));
  await change();
  await got;
  return performance.now() - t0;
}

const dir = mkdtempSync(join(tmpdir(), 'meshlet-cp-demo-'));
const configDir = join(dir, 'config');
const dataDir = join(dir, 'data');
let cp: { url: string; proc: ChildProcess } | undefined;
const instances: Instance[] = [];
let productpage: Mesh | undefined;
try {
  console.log('1. meshlet control-plane on a directory of Istio YAML');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(configDir);
  writeFileSync(join(configDir, 'reviews.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [se, dr] }));
  cp = await startControlPlane(configDir, dataDir);
  const token = async (...who: string[]): Promise<string> => (await meshlet('token', '--data-dir', dataDir, ...who)).stdout.trim();
  // Each reviews version's token proves its version label: the control plane filters policies by what tokens prove.
  const [reviewsV1Token, reviewsV2Token, productpageToken, adminToken] = await Promise.all([
    token('--service', 'reviews', '--namespace', 'default', '--label', 'version=v1'),
    token('--service', 'reviews', '--namespace', 'default', '--label', 'version=v2'),
    token('--service', 'productpage', '--namespace', 'default'),
    token('--admin'),
  ]);
  const admin = ['--control-plane', cp.url, '--token', adminToken];
  // Routes are changed through the API below (resources in the --config files can only be edited there).
  writeFileSync(join(dir, 'v1.json'), JSON.stringify(route({ v1: 100 })));
  console.log(`  meshlet apply -f v1.json: ${(await meshlet('apply', '-f', join(dir, 'v1.json'), ...admin)).stdout.trim()}`);

  console.log('\n2. two reviews instances register; productpage finds them through the registry');
  instances.push(await startReviews('v1', cp.url, reviewsV1Token), await startReviews('v2', cp.url, reviewsV2Token));
  productpage = await createMesh({ service: 'productpage', controlPlane: cp.url, token: productpageToken });
  console.log(`  route v1=100 → 20 calls: ${await traffic(productpage, 20)}`);

  console.log('\n3. meshlet apply -f: a 50/50 split');
  writeFileSync(join(dir, 'split.json'), JSON.stringify(route({ v1: 50, v2: 50 })));
  let out = '';
  const ms = await applied(productpage, async () => {
    const r = await meshlet('apply', '-f', join(dir, 'split.json'), ...admin);
    out = r.stdout.trim();
    if (r.code !== 0) throw new Error(`meshlet apply failed: ${r.stderr}`);
  });
  console.log(`  ${out} — applied by productpage ${ms.toFixed(0)} ms after the CLI was started (most of it the CLI's own start-up) (config version ${productpage.configVersion})`);
  console.log(`  40 calls: ${await traffic(productpage, 40)}`);

  console.log('\n4. a bad change (a route to subset v3, which no DestinationRule defines) is refused as a whole (--analysis blocking)');
  writeFileSync(join(dir, 'bad.json'), JSON.stringify(route({ v1: 50, v3: 50 })));
  const bad = await meshlet('apply', '-f', join(dir, 'bad.json'), ...admin);
  console.log(`  exit ${bad.code}: ${bad.stderr.trim().split('\n').join('\n  ')}`);
  console.log(`  still serving ${productpage.configVersion}; 10 calls: ${await traffic(productpage, 10)}`);

  console.log('\n5. route to the service (no subset), then v1 shuts down gracefully');
  writeFileSync(join(dir, 'any.json'), JSON.stringify(route(undefined)));
  await applied(productpage, () => meshlet('apply', '-f', join(dir, 'any.json'), ...admin));
  console.log(`  both instances, 40 calls: ${await traffic(productpage, 40)}`);
  const v1 = instances.shift() as Instance;
  const moved = applied(productpage, () => Promise.resolve());
  const closing = v1.mesh.close(); // deregisters first, then drains for drainMs before closing
  await moved;
  console.log(`  v1 deregistered; during its drain, 40 calls: ${await traffic(productpage, 40)}`);
  await closing;
  v1.server.close();

  console.log('\n6. meshlet status');
  console.log(`  ${(await meshlet('status', ...admin)).stdout.trim().split('\n').join('\n  ')}`);
} finally {
  await productpage?.close();
  for (const i of instances) {
    await i.mesh.close();
    i.server.close();
  }
  if (cp !== undefined) {
    const exited = new Promise((r) => cp?.proc.once('exit', r));
    cp.proc.kill('SIGTERM');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
}
