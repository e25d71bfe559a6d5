/**
 * A single control plane (no etcd) keeps its registrations in `<dataDir>/registrations.json`: a
 * restart — graceful or SIGKILL — serves the records whose lease is still running, with what is
 * left of it, so callers are never pushed an endpoint set without them (they were, until each
 * workload's next renewal got a 404 and registered again: `503 no healthy upstream UH`).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { MemoryRegistry, RESTORE_GRACE_MS } from '../../../src/control-plane-server/memory-registry.ts';
import { REGISTRATIONS_FILE } from '../../../src/control-plane-server/registry-file.ts';
import { startControlPlane } from '../../../src/control-plane-server/server.ts';
import type { WireResource } from '../../../src/control-plane/protocol.ts';
import { ManualClock } from '../../../src/core/clock.ts';
import { createMesh, type Mesh } from '../../../src/index.ts';
import { childReady } from '../../helpers/child-ready.ts';
import { startUpstream } from '../../helpers/upstreams.ts';
import { quietLogger, shortJitter, until, waitFor } from '../client-helpers.ts';
import { api, memoryLogger, tempDir } from './helpers.ts';

const MAIN = new URL('../../../src/cli/main.ts', import.meta.url).pathname;

const entry = (name: string, address: string): WireResource => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'WorkloadEntry',
  metadata: { name, namespace: 'default' },
  spec: { address, ports: { http: 9080 }, labels: { app: 'reviews' } },
});

describe('MemoryRegistry with a file', () => {
  it('a new registry on the same file restores the live records with the lease they have left; ended leases, deregistrations and renewals are as stored', async () => {
    const t = tempDir();
    try {
      const file = join(t.dir, REGISTRATIONS_FILE);
      let wall = 1_000_000;
      const clock1 = new ManualClock(500);
      const a = new MemoryRegistry({ file, clock: clock1, wallClock: () => wall });
      await a.start();
      await a.register(entry('short', '10.0.0.1'), 'reviews', 5_000);
      await a.register(entry('long', '10.0.0.2'), 'reviews', 30_000);
      await a.register(entry('gone', '10.0.0.3'), 'reviews', 30_000);
      assert.equal(await a.deregister('default', 'gone'), true);
      wall += 4_000;
      clock1.advance(4_000);
      assert.ok(await a.renew('default', 'short')); // now ends at +5 s from here
      wall += 1_000;
      clock1.advance(1_000); // the renewal is written within a second
      await new Promise((r) => setTimeout(r, 50));
      // A crash: no close(). The process is away for 3 s.
      wall += 3_000;
      const clock2 = new ManualClock(77);
      const logger = memoryLogger();
      const b = new MemoryRegistry({ file, clock: clock2, wallClock: () => wall, logger });
      await b.start();
      const byName = new Map(b.list().map((r) => [r.entry.metadata.name, r]));
      assert.deepEqual([...byName.keys()].sort(), ['long', 'short']);
      assert.equal(byName.get('short')!.expiresAt - clock2.now(), 1_000, 'renewed 4 s in for 5 s, then 1 + 3 s passed');
      assert.equal(byName.get('long')!.expiresAt - clock2.now(), 22_000);
      assert.equal(b.owned('default', 'reviews'), 2);
      assert.equal(b.version(), a.version(), 'the same endpoint set, the same version');
      assert.ok(await b.renew('default', 'short'), 'the next renewal finds the record');
      assert.match(logger.lines.join('\n'), /restored 2 registration\(s\)/);
      // A lease that ended while it was down (the control plane was down longer than the lease):
      // its workload could not renew, so the record gets one more lease rather than being dropped
      // (callers would be pushed an endpoint set without it: UH until its next renewal's 404),
      // and is dropped when that lease ends without a renewal.
      wall += 60_000;
      const clock3 = new ManualClock(1_000);
      const logger3 = memoryLogger();
      const c = new MemoryRegistry({ file, clock: clock3, wallClock: () => wall, logger: logger3 });
      await c.start();
      const kept = new Map(c.list().map((r) => [r.entry.metadata.name, r.expiresAt - clock3.now()]));
      assert.deepEqual(Object.fromEntries(kept), { long: 30_000, short: 5_000 }, 'one more lease each, as granted');
      assert.match(logger3.lines.join('\n'), /restored 2 registration\(s\) .* \(2 whose lease ended while it was down kept for one more lease/);
      assert.ok(await c.renew('default', 'long'), "the workload's next renewal finds its record");
      clock3.advance(6_000);
      assert.deepEqual(
        c.list().map((r) => r.entry.metadata.name),
        ['long'],
        'the one that did not renew is dropped when its lease ends',
      );
      await a.close();
      await b.close();
      await c.close();
    } finally {
      t.cleanup();
    }
  });

  it('a record whose lease ended more than 45 minutes before the restart is dropped, not revived (istiod bounds it too)', async () => {
    const t = tempDir();
    try {
      const file = join(t.dir, REGISTRATIONS_FILE);
      let wall = 5_000_000;
      const clock = new ManualClock(0);
      const a = new MemoryRegistry({ file, clock, wallClock: () => wall });
      await a.start();
      await a.register(entry('old', '10.0.0.1'), 'reviews', 30_000);
      wall += 20_000;
      clock.advance(20_000);
      await a.register(entry('recent', '10.0.0.2'), 'reviews', 30_000);
      // A crash; down until 'recent' ended just under 45 minutes ago, 'old' 20 s before that.
      wall += 30_000 + RESTORE_GRACE_MS - 1_000;
      const logger = memoryLogger();
      const b = new MemoryRegistry({ file, clock: new ManualClock(0), wallClock: () => wall, logger });
      await b.start();
      assert.deepEqual(
        b.list().map((r) => r.entry.metadata.name),
        ['recent'],
      );
      assert.equal(b.owned('default', 'reviews'), 1);
      assert.match(logger.lines.join('\n'), /dropped 1 stored registration\(s\) .* whose lease ended more than 45 minutes ago/);
      await a.close();
      await b.close();
    } finally {
      t.cleanup();
    }
  });

  it('a corrupt file is an empty registry with a warning, and is replaced at the next change', async () => {
    const t = tempDir();
    try {
      const file = join(t.dir, REGISTRATIONS_FILE);
      writeFileSync(file, '{not json');
      const logger = memoryLogger();
      const r = new MemoryRegistry({ file, logger });
      await r.start();
      assert.deepEqual(r.list(), []);
      assert.match(logger.lines.join('\n'), /warn the stored registrations .* are unreadable/);
      await r.register(entry('x', '10.0.0.1'), 'reviews', 30_000);
      await r.close();
      const again = new MemoryRegistry({ file });
      await again.start();
      assert.equal(again.list().length, 1);
      await again.close();
    } finally {
      t.cleanup();
    }
  });
});

const SE = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec: {hosts: [reviews], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 9080, name: http, protocol: HTTP}], workloadSelector: {labels: {app: reviews}}}
`;

describe('control-plane restart with registered workloads', () => {
  it('restarted on the same data dir, it serves the registrations at once: callers never lose the endpoint', async () => {
    const t = tempDir();
    const configDir = join(t.dir, 'config');
    const dataDir = join(t.dir, 'data');
    spawnSync('mkdir', ['-p', configDir]);
    writeFileSync(join(configDir, 'se.yaml'), SE);
    const upstream = await startUpstream('reviews');
    const options = { configDir, dataDir, host: '127.0.0.1', port: 0, logger: quietLogger };
    let cp = await startControlPlane(options);
    const meshes: Mesh[] = [];
    let stop = false;
    const results: string[] = [];
    try {
      const server = await createMesh({ service: 'reviews', controlPlane: cp.url, token: await cp.mintToken({ service: 'reviews', namespace: 'default' }), identity: 'none', drainMs: 0, logger: quietLogger, random: shortJitter(1) });
      meshes.push(server);
      const client = await createMesh({ service: 'productpage', controlPlane: cp.url, token: await cp.mintToken({ service: 'productpage', namespace: 'default' }), identity: 'none', drainMs: 0, logger: quietLogger, random: shortJitter(2) });
      meshes.push(client);
      await server.register({ ports: { http: upstream.port }, address: '127.0.0.1', leaseMs: 30_000 });
      const call = async () => {
        const r = await client.fetch('http://reviews:9080/').catch((e: Error) => ({ status: 0, statusText: e.message, text: async () => '' }));
        return `${r.status}`;
      };
      for (let i = 0; i < 200 && (await call()) !== '200'; i++) await new Promise((r) => setTimeout(r, 10));
      const traffic = (async () => {
        while (!stop) {
          results.push(await call());
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      const port = cp.port;
      const down = waitFor(client, 'disconnected');
      await cp.close();
      await down;
      const up = waitFor(client, 'connected', undefined, 8000);
      up.catch(() => undefined); // awaited below; not unhandled when an assertion fails first
      cp = await startControlPlane({ ...options, port });
      assert.equal(cp.status().registered, 1, 'the registration is served at once after the restart');
      await up;
      // The mesh applies what the restarted server sent on connect; a few calls after it.
      const n = results.length;
      await until(() => results.length > n + 20, 'calls after the reconnect', 8000);
      stop = true;
      await traffic;
      assert.deepEqual(
        results.filter((s) => s !== '200'),
        [],
        'no call failed across the restart',
      );
    } finally {
      stop = true;
      await Promise.all(meshes.map((m) => m.close()));
      await cp.close();
      await upstream.close();
      t.cleanup();
    }
  });

  it('a control plane killed with SIGKILL restores the registrations it had accepted', async () => {
    const t = tempDir();
    const configDir = join(t.dir, 'config');
    const dataDir = join(t.dir, 'data');
    spawnSync('mkdir', ['-p', configDir]);
    writeFileSync(join(configDir, 'se.yaml'), SE);
    const start = async (): Promise<{ proc: ChildProcess; url: string }> => {
      let out = '';
      let err = '';
      const proc = spawn(process.execPath, [MAIN, 'control-plane', '--config', configDir, '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
      proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
      proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
      const url = await childReady(proc, () => /listening on (http:\/\/\S+)/.exec(out)?.[1], () => `server start: ${err}`);
      return { proc, url };
    };
    const kill = async (proc: ChildProcess) => {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await exited;
    };
    let a = await start();
    try {
      const token = (args: string[]) => spawnSync(process.execPath, [MAIN, 'token', '--data-dir', dataDir, ...args], { encoding: 'utf8' }).stdout.trim();
      const workload = token(['--service', 'reviews']);
      const admin = token(['--admin']);
      const reg = await api(a.url, 'POST', '/v1/workloads', { token: workload, body: { ports: { http: 9080 }, address: '127.0.0.1', leaseMs: 60_000 } });
      assert.equal(reg.status, 200, JSON.stringify(reg.body));
      await kill(a.proc);
      a = await start();
      const status = await api(a.url, 'GET', '/status', { token: admin });
      assert.equal(status.body.registered, 1);
      const renewed = await api(a.url, 'PUT', `/v1/workloads/default/${reg.body.name}/lease`, { token: workload });
      assert.equal(renewed.status, 200, 'the workload renews its lease: no 404, no re-registration');
    } finally {
      await kill(a.proc);
      t.cleanup();
    }
  });
});
