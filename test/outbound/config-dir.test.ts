/**
 * An embedded mesh on a config directory written the ways directories really are written (issue
 * 11, point 10): a ConfigMap volume update, a writer that pauses mid-file, the directory deleted
 * and re-created or swapped with `mv`, a FIFO and a link to /dev/zero named like config files.
 * Requests run through the mesh meanwhile; none may be answered by a half-written config.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createMesh, type Mesh, type RejectedEvent, type WatchStateEvent } from '../../src/index.ts';
import { configMapVolume, mkfifo, probe, reviewsServices as services, reviewsVs as vs, reviewsVsParts as vsParts, sleep, until, writeSlowly } from '../helpers/config-dir.ts';
import { call, startUpstream, type Upstream } from '../helpers/upstreams.ts';

describe('embedded mesh: a config directory written the ways directories are written', () => {
  let v1: Upstream;
  let v2: Upstream;
  const base = mkdtempSync(join(tmpdir(), 'meshlet-config-dir-'));
  const warnings: string[] = [];
  const logger = { warn: (m: string) => void warnings.push(m), info: () => undefined };
  const meshes: Mesh[] = [];

  before(async () => {
    v1 = await startUpstream('v1');
    v2 = await startUpstream('v2');
  });
  after(async () => {
    for (const m of meshes) await m.close();
    await Promise.all([v1.close(), v2.close()]);
    rmSync(base, { recursive: true, force: true });
  });

  let n = 0;
  function configDir(subset = 'v1'): string {
    const dir = join(base, `c${++n}`);
    mkdirSync(dir);
    writeFileSync(join(dir, 'services.yaml'), services(v1.port, v2.port));
    writeFileSync(join(dir, 'vs.yaml'), vs(subset));
    return dir;
  }
  async function mesh(config: string): Promise<Mesh> {
    const m = await createMesh({ service: 'productpage', config, logger });
    meshes.push(m);
    return m;
  }
  const upstreamOf = async (m: Mesh) => (await call(m, 'http://reviews:9080/')).upstream;

  test('a ConfigMap volume update (kubelet: new timestamped directory, ..data renamed over) applies', async () => {
    const dir = join(base, 'configmap');
    const cm = configMapVolume(dir);
    cm.update({ 'services.yaml': services(v1.port, v2.port), 'vs.yaml': vs('v1') });
    const m = await mesh(dir);
    assert.equal(await upstreamOf(m), 'v1');
    cm.update({ 'services.yaml': services(v1.port, v2.port), 'vs.yaml': vs('v2') });
    await until(async () => (await upstreamOf(m)) === 'v2', 'the update reaches requests');
    // A key added by an update (its link is made before ..data switches) is read too.
    cm.update({ 'services.yaml': services(v1.port, v2.port), 'vs.yaml': vs('v2'), 'extra.yaml': vs('v1').replace('name: reviews,', 'name: extra,').replace('hosts: [reviews]', 'hosts: [extra.example.com]') });
    await until(() => m.snapshot.resources.some((r) => r.metadata.name === 'extra'), 'the new key is loaded');
    assert.equal(await upstreamOf(m), 'v2');
  });

  test('a writer pausing mid-file (250 ms, longer than the debounce) never gets its half-written file applied', async () => {
    const dir = configDir('v1');
    const m = await mesh(dir);
    const p = probe(m);
    const rejected: RejectedEvent[] = [];
    m.on('rejected', (e) => rejected.push(e));
    await sleep(50);
    // Cut after the first part, vs.yaml is valid config whose only rule is /admin: 404 NR for the probe.
    await writeSlowly(join(dir, 'vs.yaml'), vsParts('v2'), 250);
    await until(async () => (await upstreamOf(m)) === 'v2', 'the finished file applies');
    const { requests, wrong } = await p.stop();
    assert.deepEqual(wrong, [], `${wrong.length} of ${requests} requests answered by a half-written config`);
    assert.ok(requests > 20, `the probe ran (${requests} requests)`);
    assert.deepEqual(rejected, [], 'nothing half-written was even considered');
  });

  test('the directory deleted: the loss is reported (event and log) and the last good config keeps serving; re-created: watched again and applied', async () => {
    const dir = configDir('v1');
    const m = await mesh(dir);
    const events: WatchStateEvent[] = [];
    m.on('watch', (e) => events.push(e));
    const rejected: RejectedEvent[] = [];
    m.on('rejected', (e) => rejected.push(e));
    warnings.length = 0;
    const lost = once(m, 'watch');
    rmSync(dir, { recursive: true });
    const [ev] = (await lost) as [WatchStateEvent];
    assert.equal(ev.watching, false);
    assert.equal(ev.path, dir);
    assert.match(ev.message, /no longer exists/);
    assert.ok(warnings.some((w) => w.includes('lost the watch') && w.includes(dir)), warnings.join('\n'));
    for (let i = 0; i < 3; i++) assert.equal(await upstreamOf(m), 'v1', 'the last good config serves');
    await sleep(150);
    assert.deepEqual(rejected.map((r) => r.error.message), [], 'a missing directory is a lost watch, not a rejected config');
    // Re-created (and filled by a copy, in place), then written again: both are seen.
    mkdirSync(dir);
    writeFileSync(join(dir, 'services.yaml'), services(v1.port, v2.port));
    writeFileSync(join(dir, 'vs.yaml'), vs('v2'));
    await until(() => events.some((e) => e.watching), 'watched again');
    await until(async () => (await upstreamOf(m)) === 'v2', 'the re-created directory applies');
    writeFileSync(join(dir, '.next'), vs('v1'));
    renameSync(join(dir, '.next'), join(dir, 'vs.yaml'));
    await until(async () => (await upstreamOf(m)) === 'v1', 'changes in the re-created directory apply');
  });

  test('the directory swapped with mv: the new directory is read and watched', async () => {
    const dir = configDir('v1');
    const next = configDir('v2');
    const m = await mesh(dir);
    assert.equal(await upstreamOf(m), 'v1');
    renameSync(dir, `${dir}.old`);
    renameSync(next, dir);
    await until(async () => (await upstreamOf(m)) === 'v2', 'the swapped-in directory applies');
    // The new one is watched (the old one, moved away, made the events before).
    await sleep(150);
    writeFileSync(join(dir, '.next'), vs('v1').replace('/admin', '/other'));
    renameSync(join(dir, '.next'), join(dir, 'vs.yaml'));
    await until(() => m.snapshot.resources.some((r) => JSON.stringify(r.spec).includes('/other')), 'a change in the new directory applies');
  });

  test('a FIFO named *.yaml is refused by name, without hanging the reload; a link to /dev/zero is refused without being read', { timeout: 10_000 }, async () => {
    const dir = configDir('v1');
    const m = await mesh(dir);
    const rejected: RejectedEvent[] = [];
    m.on('rejected', (e) => rejected.push(e));
    mkfifo(join(dir, 'pipe.yaml'));
    assert.equal(await m.reload(), false);
    const fifo = rejected.at(-1)?.issues.map(String) ?? [];
    assert.ok(fifo.some((i) => i.includes(join(dir, 'pipe.yaml')) && /is a FIFO \(named pipe\), not a regular file/.test(i)), fifo.join('\n'));
    rmSync(join(dir, 'pipe.yaml'));
    symlinkSync('/dev/zero', join(dir, 'zero.yaml'));
    const heap = process.memoryUsage().heapUsed;
    assert.equal(await m.reload(), false);
    const zero = rejected.at(-1)?.issues.map(String) ?? [];
    assert.ok(zero.some((i) => i.includes(join(dir, 'zero.yaml')) && /is a character device, not a regular file/.test(i)), zero.join('\n'));
    assert.ok(process.memoryUsage().heapUsed - heap < 64 * 1024 * 1024, 'nothing large was read');
    assert.equal(await upstreamOf(m), 'v1', 'the last good config serves');
    rmSync(join(dir, 'zero.yaml'));
    assert.equal(await m.reload(), true);
  });
});
