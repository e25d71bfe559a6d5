/**
 * `meshlet control-plane --mesh-config <file>` as a process: the file (the istio ConfigMap) is
 * checked at start naming file and field, pushed to a fed mesh (a 503-then-200 upstream shows
 * its defaultHttpRetryPolicy retried), shown in `/status`, and watched: a valid change is pushed
 * at once, an invalid one is logged naming the file and field while the previous one stays.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { childReady } from '../helpers/child-ready.ts';
import { call, serviceEntry, startUpstream, type Upstream } from '../helpers/upstreams.ts';
import { quietLogger, until } from './client-helpers.ts';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'meshlet-cp-meshconfig-'));
let proc: ChildProcess | undefined;
let mesh: Mesh | undefined;
let up: Upstream | undefined;
after(async () => {
  await mesh?.close();
  if (proc !== undefined && proc.exitCode === null) {
    const exited = new Promise((r) => proc?.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
  }
  await up?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The istio ConfigMap, as `kubectl get configmap istio -n istio-system -o yaml` prints it, with `mesh` as its data.mesh. */
const configMap = (mesh: string): string =>
  `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio\n  namespace: istio-system\ndata:\n  mesh: |-\n${mesh
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n')}\n`;

/** The istio ConfigMap with `data.meshNetworks` too. */
const withNetworks = (mesh: string, networks: string): string =>
  `${configMap(mesh)}  meshNetworks: |-\n${networks
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n')}\n`;

test('meshlet control-plane --mesh-config: checked at start, pushed to a fed mesh, shown in /status, and a change to the file is pushed live', async () => {
  let n = 0;
  up = await startUpstream('flaky', (_req, res) => {
    n++;
    res.statusCode = n % 2 === 1 ? 503 : 200;
    res.end();
  });
  const configDir = join(dir, 'config');
  const dataDir = join(dir, 'data');
  mkdirSync(configDir, { recursive: true });
  writeFileSync(join(configDir, 'reviews.json'), JSON.stringify(serviceEntry('reviews', 'reviews.default.svc.cluster.local', 9080, [{ port: up.port }])));
  const file = join(dir, 'mesh.yaml');
  const args = ['control-plane', '--config', configDir, '--port', '0', '--host', '127.0.0.1', '--insecure', '--data-dir', dataDir, '--mesh-config', file];

  // A bad setting refuses to start, naming the file and the field.
  writeFileSync(file, configMap('connectTimeout: 2h'));
  const bad = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /meshlet control-plane: --mesh-config .*mesh\.yaml: `meshConfig\.connectTimeout` must be a duration of whole milliseconds from 1ms to 1h/);

  // So does a bad data.meshNetworks.
  writeFileSync(file, withNetworks('connectTimeout: 2s', 'networks:\n  west:\n    gateways:\n    - address: 192.0.2.9'));
  const badNetworks = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
  assert.equal(badNetworks.status, 2, badNetworks.stderr);
  assert.match(badNetworks.stderr, /meshlet control-plane: --mesh-config .*mesh\.yaml: `data\.meshNetworks` is invalid: .*port/);

  writeFileSync(file, configMap('defaultHttpRetryPolicy:\n  attempts: 2\n  retryOn: "503"\nenablePrometheusMerge: true'));
  proc = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const url = await childReady(proc, () => /listening on (http:\/\/\S+)/.exec(stdout)?.[1], () => `server start: ${stderr}`);
  const status = (await (await fetch(`${url}/status`)).json()) as { meshConfig?: { source?: string; settings: string[]; version: string } };
  assert.equal(status.meshConfig?.source, file);
  assert.deepEqual(status.meshConfig?.settings, ['defaultHttpRetryPolicy', 'enablePrometheusMerge']);

  const st = spawnSync(process.execPath, [MAIN, 'status', '--control-plane', url], { encoding: 'utf8', env: { ...process.env, MESHLET_TOKEN: '', MESHLET_TOKEN_FILE: '', MESHLET_CONTROL_PLANE: '' } });
  assert.match(st.stdout, /MeshConfig pushed to meshes: .*mesh\.yaml \(version \w+\): defaultHttpRetryPolicy, enablePrometheusMerge/, `${st.stdout}${st.stderr}`);

  const infos: string[] = [];
  mesh = await createMesh({ service: 'productpage', controlPlane: url, logger: { warn: quietLogger.warn, info: (m: string) => infos.push(m) } });
  const r = await call(mesh, 'http://reviews:9080/');
  assert.equal(r.status, 200, 'retried under the pushed defaultHttpRetryPolicy');
  assert.equal(n, 2);
  assert.ok(
    infos.some((m) => /the control plane's MeshConfig .*mesh\.yaml .*meshConfig settings meshlet has no option for \(not applied\): enablePrometheusMerge/.test(m)),
    infos.join('\n'),
  );

  // An invalid change: logged by the control plane naming the file and field; the mesh keeps the policy.
  writeFileSync(file, configMap('defaultHttpRetryPolicy:\n  attempts: 2\n  retryOn: "503"\nconnectTimeout: soon'));
  await until(() => /mesh\.yaml: `meshConfig\.connectTimeout` must be a duration.*; the MeshConfig pushed before stays/.test(stderr), 'the control plane logs the invalid file', 20_000);
  // A valid change without the policy: pushed, and the mesh compiles its config again under Istio's default.
  const before = mesh.snapshot;
  writeFileSync(file, configMap('connectTimeout: 4s'));
  await until(() => mesh?.snapshot !== before, 'the mesh compiled again for the changed file', 20_000);
  assert.equal(mesh.snapshot.meshSettings?.connectTimeoutMs, 4000);
  n = 0;
  const r2 = await call(mesh, 'http://reviews:9080/');
  assert.equal(r2.status, 503, 'no longer retried');
  assert.equal(n, 1);

  // The ConfigMap's data.meshNetworks is pushed with it (and shown in /status).
  const before2 = mesh.snapshot;
  writeFileSync(file, withNetworks('connectTimeout: 4s', 'networks:\n  west:\n    gateways:\n    - address: 192.0.2.9\n      port: 15443'));
  await until(() => mesh?.snapshot !== before2, 'the mesh compiled again for the pushed MeshNetworks', 20_000);
  const status2 = (await (await fetch(`${url}/status`)).json()) as { meshConfig?: { settings: string[] } };
  assert.deepEqual(status2.meshConfig?.settings, ['connectTimeout', 'meshNetworks']);
});
