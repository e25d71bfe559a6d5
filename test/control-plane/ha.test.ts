/**
 * High availability: two `meshlet control-plane` processes (from the CLI) share one real etcd.
 * Meshes list both; one replica is killed (SIGKILL) while traffic flows. No request may fail,
 * a registration's lease must outlive the dead replica (renewed through the survivor), and a
 * config change applied through the survivor must reach every mesh and move its traffic.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { type EtcdServer, startEtcd } from '../helpers/etcd.ts';
import { nextConfig } from '../helpers/mesh-events.ts';
import { skipWithout } from '../helpers/tools.ts';
import { until } from './client-helpers.ts';
import { destinationRule, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

const NODE = process.execPath;
const CLI = new URL('../../src/cli/main.ts', import.meta.url).pathname;

interface Replica {
  url: string;
  readonly proc: ChildProcess;
  stderr: string;
  stdout: string;
}

/**
 * Starts `meshlet control-plane` on port 0 and resolves when it says where it listens (its
 * "listening on <url>" line). No port is picked here and handed over, which a socket of another
 * test could take before the replica binds it, and no fixed number of health polls: loading the
 * CLI's TypeScript sources takes as long as the machine's load makes it. A replica that exits
 * first fails the start at once, with its stderr.
 */
async function startReplica(etcd: EtcdServer, dataDir: string, configDir?: string): Promise<Replica> {
  const argv = [CLI, 'control-plane', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir, '--etcd', etcd.endpoints.join(',')];
  if (configDir !== undefined) argv.push('--config', configDir);
  const proc = spawn(NODE, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  const r: Replica = { url: '', proc, stderr: '', stdout: '' };
  proc.stderr?.on('data', (d: Buffer) => {
    r.stderr += d.toString();
  });
  proc.stdout?.on('data', (d: Buffer) => {
    r.stdout += d.toString();
  });
  r.url = await new Promise<string>((resolve, reject) => {
    let stdout = '';
    const onData = (d: Buffer) => {
      stdout += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(stdout);
      if (m === null) return;
      proc.off('exit', onExit);
      resolve(m[1] as string);
    };
    const onExit = (code: number | null, signal: string | null) => {
      proc.stdout?.off('data', onData);
      reject(new Error(`replica exited (code ${code}, signal ${signal}) before listening: ${r.stderr}`));
    };
    proc.stdout?.on('data', onData);
    proc.once('exit', onExit);
  });
  const healthz = await fetch(`${r.url}/healthz`);
  assert.equal(healthz.status, 200, `${r.url}/healthz: ${await healthz.text()}`);
  return r;
}

function token(dataDir: string, ...who: string[]): string {
  const res = spawnSync(NODE, [CLI, 'token', '--data-dir', dataDir, ...who], { encoding: 'utf8' });
  assert.equal(res.status, 0, res.stderr);
  return res.stdout.trim();
}

const route = (subset: string): object =>
  virtualService('reviews', ['reviews'], [{ route: [{ destination: { host: 'reviews', subset } }], retries: { attempts: 0 } }]);

let etcd: EtcdServer;
let dir: string;
let v1: Upstream;
let v2: Upstream;
let a: Replica;
let b: Replica;
const meshes: Mesh[] = [];

describe('control-plane replicas on one etcd', { skip: skipWithout('etcd') }, () => {
before(async () => {
  etcd = await startEtcd();
  dir = mkdtempSync(join(tmpdir(), 'meshlet-ha-'));
  v1 = await startUpstream('v1');
  v2 = await startUpstream('v2');
  const configDir = join(dir, 'config');
  mkdirSync(configDir);
  const resources = [
    serviceEntry('reviews', 'reviews', 9080, [
      { port: v1.port, labels: { version: 'v1' } },
      { port: v2.port, labels: { version: 'v2' } },
    ]),
    destinationRule('reviews', 'reviews', { subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] }),
  ];
  writeFileSync(join(configDir, 'reviews.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: resources }));
  a = await startReplica(etcd, join(dir, 'a'), configDir);
  b = await startReplica(etcd, join(dir, 'b'));
  // The route is the API's (the files' resources cannot be changed through it): the test changes it below.
  const res = await fetch(`${a.url}/v1/resources`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token(join(dir, 'a'), '--admin')}`, 'content-type': 'application/json' },
    body: JSON.stringify(route('v1')),
  });
  assert.equal(res.status, 200, await res.text());
});

after(async () => {
  await Promise.all(meshes.map((m) => m.close()));
  for (const r of [a, b]) if (r !== undefined && r.proc.exitCode === null && r.proc.signalCode === null) r.proc.kill('SIGKILL');
  await Promise.all([v1?.close(), v2?.close()]);
  await etcd?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

test('a replica with --config prints one line on stdout, the listening line (what the files changed in etcd is logged on stderr)', () => {
  assert.match(a.stdout, /^meshlet control-plane listening on http:\/\/127\.0\.0\.1:\d+ \(config version [0-9a-f]{12}, source etcd:/);
  assert.equal(a.stdout.trim().split('\n').length, 1, a.stdout);
  assert.match(a.stderr, /applied 2 resource\(s\) from \S+ into etcd \(2 changed\)/);
});

test('a replica dies during traffic: no request fails, leases survive, config still updates through the survivor', async () => {
  const workloadToken = token(join(dir, 'a'), '--service', 'productpage', '--namespace', 'default');
  const adminToken = token(join(dir, 'b'), '--admin');
  for (let i = 0; i < 3; i++) {
    // Starting at the first replica (a mesh starts at a random one of the list): the one killed below.
    meshes.push(await createMesh({ service: 'productpage', controlPlane: [a.url, b.url], token: workloadToken, drainMs: 0, logger: { warn: () => undefined }, random: { next: () => 0 } }));
  }
  const registration = await meshes[0]!.register({ ports: { http: 19081 }, address: '127.0.0.9', leaseMs: 2000 });

  let stop = false;
  const failures: string[] = [];
  let served = 0;
  const worker = async (mesh: Mesh): Promise<void> => {
    while (!stop) {
      try {
        const res = await mesh.fetch('http://reviews:9080/');
        const body = await res.text();
        if (res.status !== 200) failures.push(`${res.status} ${res.headers.get('x-meshlet-response-flags')} ${body}`);
        else served++;
      } catch (e) {
        failures.push(String(e));
      }
    }
  };
  const traffic = Promise.all(meshes.flatMap((m) => [worker(m), worker(m)]));
  // Traffic is flowing through both replicas' config before one dies.
  await until(() => served >= 30, 'traffic to flow before the kill');
  const servedBeforeKill = served;
  a.proc.kill('SIGKILL');
  const disconnected = meshes.map((m) => new Promise((r) => m.once('disconnected', r)));
  await Promise.all(disconnected);

  // A real sleep, and the one this test must keep: the lease (2 s) is held by another process
  // and expires on etcd's own clock, which no test clock reaches. Waiting longer than the lease
  // is the only way to see that renewals through the survivor kept the registration alive.
  await new Promise((r) => setTimeout(r, 2600));
  const workloads = (await (await fetch(`${b.url}/v1/workloads`, { headers: { authorization: `Bearer ${adminToken}` } })).json()) as unknown;
  assert.match(JSON.stringify(workloads), /127\.0\.0\.9/, 'the registration outlived its lease through the surviving replica');
  // The meshes resumed on the survivor with Last-Event-ID: what they hold counts as sent and ACKed (SYNCED, not STALE).
  type Row = { connection: string; sent: { config?: string; endpoints?: string }; acked: { config?: { version: string }; endpoints?: { version: string } }; disconnectedAt?: string };
  const synced = async () => {
    const doc = (await (await fetch(`${b.url}/status`, { headers: { authorization: `Bearer ${adminToken}` } })).json()) as { configVersion: string; workloads: Row[] };
    const rows = doc.workloads.filter((w) => w.disconnectedAt === undefined);
    return { rows, ok: rows.length === 3 && rows.every((w) => w.sent.config === doc.configVersion && w.acked.config?.version === doc.configVersion && w.sent.endpoints !== undefined && w.acked.endpoints?.version === w.sent.endpoints) };
  };
  let resumed = await synced();
  for (let i = 0; i < 50 && !resumed.ok; i++) {
    await new Promise((r) => setTimeout(r, 50));
    resumed = await synced();
  }
  assert.ok(resumed.ok, JSON.stringify(resumed.rows));

  const before = v2.hits;
  // The config change's own event (an endpoints-only update would also be a `config` event).
  const updated = meshes.map((m) => nextConfig(m));
  const res = await fetch(`${b.url}/v1/resources`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(route('v2')),
  });
  assert.equal(res.status, 200, await res.text());
  await Promise.all(updated);
  // Traffic keeps flowing on the new config until it has clearly moved to v2.
  await until(() => v2.hits > before + 20, 'traffic to move to v2');
  stop = true;
  await traffic;
  await registration.close();

  assert.deepEqual(failures, [], 'no request failed while a replica died');
  assert.ok(served > servedBeforeKill + 50, `traffic flowed throughout (${served} requests, ${servedBeforeKill} before the kill)`);
  assert.ok(v2.hits > before, 'the change applied through the survivor moved traffic to v2');
  const status = (await (await fetch(`${b.url}/status`, { headers: { authorization: `Bearer ${adminToken}` } })).json()) as { summary: string; configVersion: string };
  assert.match(status.summary, /^3\/3 workloads at config version /, status.summary);
  for (const m of meshes) assert.ok(m.configVersion.startsWith(status.configVersion), `${m.configVersion} is ${status.configVersion}`);
});
});
