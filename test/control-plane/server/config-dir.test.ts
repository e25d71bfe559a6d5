/**
 * The control plane on a config directory written the ways directories are really written (issue
 * 11, point 10), with a mesh connected to it sending requests: a ConfigMap volume update, a
 * writer that pauses mid-file, the directory deleted and re-created, a FIFO and a link to
 * /dev/zero named like config files.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type ControlPlane, startControlPlane } from '../../../src/control-plane-server/server.ts';
import { createMesh, type Mesh, type RejectedEvent } from '../../../src/index.ts';
import {
  configMapVolume,
  mkfifo,
  probe,
  reviewsServices as services,
  reviewsVs as vs,
  reviewsVsParts as vsParts,
  sleep,
  until,
  writeSlowly,
} from '../../helpers/config-dir.ts';
import { call, startUpstream, type Upstream } from '../../helpers/upstreams.ts';
import { api, memoryLogger } from './helpers.ts';

describe('control plane: a config directory written the ways directories are written', () => {
  let v1: Upstream;
  let v2: Upstream;
  const base = mkdtempSync(join(tmpdir(), 'meshlet-cp-config-dir-'));
  const open: { cp: ControlPlane; mesh: Mesh }[] = [];

  before(async () => {
    v1 = await startUpstream('v1');
    v2 = await startUpstream('v2');
  });
  after(async () => {
    for (const o of open) {
      await o.mesh.close();
      await o.cp.close();
    }
    await Promise.all([v1.close(), v2.close()]);
    rmSync(base, { recursive: true, force: true });
  });

  let n = 0;
  /** A control plane over `dir` (filled by `fill`) and a mesh connected to it. */
  async function start(fill: (dir: string) => void): Promise<{ cp: ControlPlane; mesh: Mesh; dir: string; logs: string[]; admin: string }> {
    const dir = join(base, `config-${++n}`);
    fill(dir);
    const logger = memoryLogger();
    const cp = await startControlPlane({ configDir: dir, dataDir: join(base, `data-${n}`), host: '127.0.0.1', port: 0, logger });
    const token = await cp.mintToken({ service: 'productpage', namespace: 'default' });
    const mesh = await createMesh({ service: 'productpage', controlPlane: cp.url, token, logger: { warn: () => undefined } });
    open.push({ cp, mesh });
    return { cp, mesh, dir, logs: logger.lines, admin: await cp.mintToken({ admin: true }) };
  }
  const plainDir = (subset: string) => (dir: string) => {
    mkdirSync(dir);
    writeFileSync(join(dir, 'services.yaml'), services(v1.port, v2.port));
    writeFileSync(join(dir, 'vs.yaml'), vs(subset));
  };
  const upstreamOf = async (m: Mesh) => (await call(m, 'http://reviews:9080/')).upstream;

  test('a ConfigMap volume update (kubelet: new timestamped directory, ..data renamed over) reaches the meshes', async () => {
    let cm: ReturnType<typeof configMapVolume> | undefined;
    const { mesh } = await start((dir) => {
      cm = configMapVolume(dir);
      cm.update({ 'services.yaml': services(v1.port, v2.port), 'vs.yaml': vs('v1') });
    });
    assert.equal(await upstreamOf(mesh), 'v1');
    cm?.update({ 'services.yaml': services(v1.port, v2.port), 'vs.yaml': vs('v2') });
    await until(async () => (await upstreamOf(mesh)) === 'v2', 'the ConfigMap update reaches the mesh');
    cm?.update({ 'services.yaml': services(v1.port, v2.port), 'vs.yaml': vs('v1') });
    await until(async () => (await upstreamOf(mesh)) === 'v1', 'and the next one');
  });

  test('a writer pausing mid-file (150 ms, longer than the debounce) never gets its half-written file pushed', async () => {
    const { mesh, dir } = await start(plainDir('v1'));
    const rejected: RejectedEvent[] = [];
    mesh.on('rejected', (e) => rejected.push(e));
    const p = probe(mesh);
    await sleep(50);
    await writeSlowly(join(dir, 'vs.yaml'), vsParts('v2'), 150);
    await until(async () => (await upstreamOf(mesh)) === 'v2', 'the finished file is pushed');
    const { requests, wrong } = await p.stop();
    assert.deepEqual(wrong, [], `${wrong.length} of ${requests} requests answered by a half-written config`);
    assert.ok(requests > 20, `the probe ran (${requests} requests)`);
    assert.deepEqual(rejected, []);
  });

  test('the directory deleted: /status and the log say the watch is lost, the meshes keep the last good config; re-created: watched and pushed again', async () => {
    const { cp, mesh, dir, logs, admin } = await start(plainDir('v1'));
    rmSync(dir, { recursive: true });
    await until(() => logs.some((l) => l.includes('lost the watch')), 'the loss is logged');
    const status = (await api(cp.url, 'GET', '/status', { token: admin })).body;
    assert.equal(status.source.healthy, false);
    assert.match(status.source.error, /lost the watch on .*no longer exists/);
    await sleep(100);
    assert.deepEqual(status.rejections, [], 'a missing directory is a lost watch, not a refused change');
    assert.equal(await upstreamOf(mesh), 'v1', 'the last good config serves');
    plainDir('v2')(dir);
    await until(async () => (await upstreamOf(mesh)) === 'v2', 'the re-created directory is pushed');
    await until(async () => (await api(cp.url, 'GET', '/status', { token: admin })).body.source.healthy === true, 'healthy again');
  });

  test('a FIFO named *.yaml is refused by name and blocks nothing (apply still answers); a link to /dev/zero is refused without being read', { timeout: 15_000 }, async () => {
    const { cp, mesh, dir, admin } = await start(plainDir('v1'));
    mkfifo(join(dir, 'pipe.yaml'));
    const rejections = async () => (await api(cp.url, 'GET', '/status', { token: admin })).body.rejections as { reasons: string[] }[];
    await until(async () => (await rejections()).some((r) => r.reasons.some((x) => x.includes('pipe.yaml') && x.includes('is a FIFO (named pipe), not a regular file'))), 'the FIFO is refused by name');
    // The store is not stuck: an apply goes through.
    const applied = await api(cp.url, 'POST', '/v1/resources', {
      token: admin,
      text: vs('v1').replace('name: reviews,', 'name: other,').replace('hosts: [reviews]', 'hosts: [other.example.com]'),
    });
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    rmSync(join(dir, 'pipe.yaml'));
    symlinkSync('/dev/zero', join(dir, 'zero.yaml'));
    await until(async () => (await rejections()).some((r) => r.reasons.some((x) => x.includes('zero.yaml') && x.includes('is a character device, not a regular file'))), 'the link to /dev/zero is refused by name');
    assert.equal(await upstreamOf(mesh), 'v1');
  });
});
