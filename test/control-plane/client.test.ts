/**
 * createMesh({ controlPlane }) against a real control plane: config pushed to many meshes,
 * NACK of config the mesh's analysis rejects, auth failures, and startup without a control plane
 * (fail-closed, failOpen, last-known-good cache).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type ConfigAppliedEvent, createMesh, isMeshletError, type Mesh } from '../../src/index.ts';
import { call, deadPort, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';
import { quietLogger, routeAll, shortJitter, startTestControlPlane, type TestControlPlane, until, waitFor } from './client-helpers.ts';

let a: Upstream;
let b: Upstream;
const dirs: string[] = [];
const entries = () => [serviceEntry('a', 'a.example', 80, [{ port: a.port, labels: { version: 'v1' } }]), serviceEntry('b', 'b.example', 80, [{ port: b.port }])];

before(async () => {
  a = await startUpstream('a');
  b = await startUpstream('b');
});
after(async () => {
  await a.close();
  await b.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'meshlet-cache-'));
  dirs.push(d);
  return d;
}

test('a route change in the config directory reaches 20 meshes and moves their traffic', async () => {
  const t = await startTestControlPlane({ se: entries(), vs: [routeAll('svc', 'svc.example', 'a.example')] });
  const meshes: Mesh[] = [];
  try {
    for (let i = 0; i < 20; i++) {
      const token = await t.cp.mintToken({ service: `client${i}`, namespace: 'default' });
      meshes.push(await createMesh({ service: `client${i}`, controlPlane: t.cp.url, token, logger: quietLogger }));
    }
    for (const m of meshes) assert.equal((await call(m, 'http://svc.example/')).upstream, 'a');
    const before = meshes[0]!.configVersion;
    assert.equal(t.cp.status().configVersion, before);
    assert.equal(meshes[0]!.configSource, 'control-plane');
    const changed = meshes.map((m) => waitFor<{ version: string }>(m, 'config', (e) => e.version !== before));
    await t.write('vs', [routeAll('svc', 'svc.example', 'b.example')]);
    await Promise.all(changed);
    for (const m of meshes) {
      assert.notEqual(m.configVersion, before);
      assert.equal((await call(m, 'http://svc.example/')).upstream, 'b');
    }
    // Every mesh ACKed the new version (istioctl proxy-status style).
    const v = t.cp.status().configVersion;
    await until(() => t.cp.status().workloads.filter((w) => w.acked.config?.version === v).length === 20, 'every mesh ACKs');
  } finally {
    await Promise.all(meshes.map((m) => m.close()));
    await t.close();
  }
});

test("config a mesh with analysis: 'blocking' rejects (route to a missing subset) is NACKed with reasons and its last good snapshot keeps routing; a default (advisory) mesh applies it with the finding", async () => {
  // The server does not analyze, so it serves what a mesh with blocking analysis must refuse.
  const t = await startTestControlPlane({ se: entries(), vs: [routeAll('svc', 'svc.example', 'a.example')] }, { analysis: 'off' });
  const token = await t.cp.mintToken({ service: 'productpage', namespace: 'default' });
  const strict = await createMesh({ service: 'productpage', controlPlane: t.cp.url, token, analysis: 'blocking', logger: quietLogger });
  const lax = await createMesh({ service: 'productpage', controlPlane: t.cp.url, token, logger: quietLogger });
  try {
    const good = strict.configVersion;
    const rejected = waitFor<{ error: Error; issues: unknown[] }>(strict, 'rejected');
    const laxApplied = waitFor<ConfigAppliedEvent>(lax, 'config', (e) => e.version !== good);
    await t.write('vs', [virtualService('svc', ['svc.example'], [{ route: [{ destination: { host: 'a.example', subset: 'v9' } }] }])]);
    const ev = await rejected;
    assert.ok(isMeshletError(ev.error, 'MESHLET_ERR_CONFIG_INVALID'));
    assert.match(ev.error.message, /IST0101|subset/);
    assert.ok(ev.issues.length > 0);
    // The advisory mesh took it, with the finding in its config event, and answers 503 NC as Istio does.
    const laxEvent = await laxApplied;
    assert.deepEqual(laxEvent.findings.map((f) => [f.level, f.code]), [['error', 'IST0101']]);
    assert.equal((await call(lax, 'http://svc.example/')).flags, 'NC');
    assert.equal(strict.configVersion, good);
    assert.equal((await call(strict, 'http://svc.example/')).upstream, 'a');
    await until(() => t.cp.status().workloads.some((w) => w.nacked !== undefined), 'the NACK reaches the server');
    const nack = t.cp.status().workloads.find((w) => w.nacked !== undefined)!.nacked!;
    assert.equal(nack.kind, 'config');
    assert.equal(nack.version, t.cp.status().configVersion);
    assert.match(nack.reasons.join('\n'), /v9/);
  } finally {
    await strict.close();
    await lax.close();
    await t.close();
  }
});

test('auth: no token and a bad token reject with 401, another service\'s token with 403', async () => {
  const t = await startTestControlPlane({ se: entries() });
  try {
    const saved = process.env.MESHLET_TOKEN;
    delete process.env.MESHLET_TOKEN;
    try {
      await assert.rejects(createMesh({ service: 'client', controlPlane: t.cp.url, logger: quietLogger }), (e: Error) => {
        assert.ok(isMeshletError(e, 'MESHLET_ERR_CONTROL_PLANE'));
        assert.match(e.message, new RegExp(`^control plane ${t.cp.url}: 401 Unauthorized: .+`));
        return true;
      });
    } finally {
      if (saved !== undefined) process.env.MESHLET_TOKEN = saved;
    }
    await assert.rejects(createMesh({ service: 'client', controlPlane: t.cp.url, token: 'not-a-jwt', logger: quietLogger }), /401 Unauthorized: .+/);
    const reviews = await t.cp.mintToken({ service: 'reviews', namespace: 'default' });
    await assert.rejects(createMesh({ service: 'ratings', controlPlane: t.cp.url, token: reviews, logger: quietLogger }), /: 403 Forbidden: .+/);
    // MESHLET_TOKEN is the default token.
    process.env.MESHLET_TOKEN = reviews;
    try {
      const m = await createMesh({ service: 'reviews', controlPlane: t.cp.url, logger: quietLogger });
      await m.close();
    } finally {
      if (saved === undefined) delete process.env.MESHLET_TOKEN;
      else process.env.MESHLET_TOKEN = saved;
    }
  } finally {
    await t.close();
  }
});

test('options: config and controlPlane are mutually exclusive, one is required; bad URLs and timeouts are refused', async () => {
  await assert.rejects(createMesh({ service: 's', config: [], controlPlane: 'http://127.0.0.1:1' }), /mutually exclusive/);
  await assert.rejects(createMesh({ service: 's' }), /`config` .* or `controlPlane`/);
  await assert.rejects(createMesh({ service: 's', controlPlane: 'ftp://x' }), (e: Error) => isMeshletError(e, 'MESHLET_ERR_INVALID_ARG') && /http\(s\) URL/.test(e.message));
  await assert.rejects(createMesh({ service: 's', controlPlane: 'http://x', startupTimeoutMs: -1 }), /startupTimeoutMs/);
  const m = await createMesh({ service: 's', config: [] });
  await assert.rejects(m.register({ ports: { http: 1 } }), /control-plane mode/);
  await m.close();
});

test('control plane down at startup, no cache: fail-closed rejects saying why; failOpen starts empty and goes live later', async () => {
  const port = await deadPort();
  const url = `http://127.0.0.1:${port}`;
  await assert.rejects(createMesh({ service: 'client', controlPlane: url, token: 'x', startupTimeoutMs: 300, logger: quietLogger }), (e: Error) => {
    assert.ok(isMeshletError(e, 'MESHLET_ERR_CONTROL_PLANE'));
    assert.match(e.message, /no config within 300 ms \(startupTimeoutMs\); last error: control plane http:\/\/127\.0\.0\.1:\d+: connection refused \(ECONNREFUSED\)/);
    return true;
  });
  const warnings: string[] = [];
  const mesh = await createMesh({
    service: 'client',
    controlPlane: [url],
    token: '', // no token: the control plane that comes up is --insecure
    failOpen: true,
    startupTimeoutMs: 5000,
    logger: { warn: (m) => warnings.push(m) },
  });
  let t: TestControlPlane | undefined;
  try {
    assert.equal(mesh.configSource, 'none');
    assert.equal(mesh.configVersion, '');
    assert.match(warnings.join('\n'), /starting without config \(failOpen\)/);
    const disconnected = await waitFor<{ error: Error }>(mesh, 'disconnected');
    assert.match(disconnected.error.message, /ECONNREFUSED/);
    // Every host passes through with no config.
    assert.equal((await call(mesh, `http://127.0.0.1:${a.port}/`)).upstream, 'a');
    // The control plane comes up on that port: the mesh goes live.
    const live = waitFor<{ source: string }>(mesh, 'config', (e) => e.source === 'control-plane', 8000);
    t = await startTestControlPlane({ se: entries(), vs: [routeAll('svc', 'svc.example', 'b.example')] }, { insecure: true, port });
    await live;
    assert.equal(mesh.configSource, 'control-plane');
    assert.equal((await call(mesh, 'http://svc.example/')).upstream, 'b');
  } finally {
    await mesh.close();
    await t?.close();
  }
});

test('control plane down at startup with a cache: starts from the cache, then switches to live config', async () => {
  const cacheDir = await tempDir();
  const t = await startTestControlPlane({ se: entries(), vs: [routeAll('svc', 'svc.example', 'a.example')] });
  try {
    const token = await t.cp.mintToken({ service: 'client', namespace: 'default' });
    const first = await createMesh({ service: 'client', controlPlane: t.cp.url, token, cacheDir, logger: quietLogger });
    const cachedVersion = first.configVersion;
    const cachedEndpoints = (await waitFor<ConfigAppliedEvent>(first, 'config')).endpointsVersion;
    await first.close(); // flushes the cache
    await t.cp.close();

    const mesh = await createMesh({ service: 'client', controlPlane: t.cp.url, token, cacheDir, startupTimeoutMs: 5000, logger: quietLogger, random: shortJitter(1) });
    try {
      const fromCache = waitFor<ConfigAppliedEvent>(mesh, 'config');
      const disconnected = waitFor<{ error: Error }>(mesh, 'disconnected');
      assert.equal(mesh.configSource, 'cache');
      assert.equal(mesh.configVersion, cachedVersion);
      assert.deepEqual(await fromCache, { version: cachedVersion, endpointsVersion: cachedEndpoints, source: 'cache', findings: [] });
      assert.match((await disconnected).error.message, /ECONNREFUSED/);
      assert.equal((await call(mesh, 'http://svc.example/')).upstream, 'a');
      // The control plane returns with different config: the mesh goes live.
      await t.write('vs', [routeAll('svc', 'svc.example', 'b.example')]);
      const live = waitFor<{ source: string; version: string }>(mesh, 'config', (e) => e.source === 'control-plane', 8000);
      const connected = waitFor(mesh, 'connected', undefined, 8000);
      await t.restart();
      await connected;
      assert.notEqual((await live).version, cachedVersion);
      assert.equal(mesh.configSource, 'control-plane');
      assert.equal((await call(mesh, 'http://svc.example/')).upstream, 'b');
    } finally {
      await mesh.close();
    }
  } finally {
    await t.close();
  }
});

test('a corrupt cache is ignored with a warning (and fail-closed rejects)', async () => {
  const cacheDir = await tempDir();
  await writeFile(join(cacheDir, 'default.client.json'), '{ not json');
  const warnings: string[] = [];
  const url = `http://127.0.0.1:${await deadPort()}`;
  await assert.rejects(
    createMesh({ service: 'client', controlPlane: url, token: 'x', cacheDir, startupTimeoutMs: 200, logger: { warn: (m) => warnings.push(m) } }),
    /connection refused/,
  );
  assert.match(warnings.join('\n'), /ignoring the corrupt config cache .*default\.client\.json/);
});

test('fail-closed: a first config the mesh rejects fails createMesh with the reasons (and is NACKed)', async () => {
  const bad = virtualService('svc', ['svc.example'], [{ route: [{ destination: { host: 'a.example', subset: 'v9' } }] }]);
  const t = await startTestControlPlane({ se: entries(), vs: [bad] }, { analysis: 'off' });
  try {
    const token = await t.cp.mintToken({ service: 'client', namespace: 'default' });
    await assert.rejects(createMesh({ service: 'client', controlPlane: t.cp.url, token, analysis: 'blocking', logger: quietLogger }), (e: Error) => {
      assert.ok(isMeshletError(e, 'MESHLET_ERR_CONTROL_PLANE'));
      assert.match(e.message, new RegExp(`^control plane ${t.cp.url}: config version ${t.cp.status().configVersion} rejected: .*v9`, 's'));
      return true;
    });
    await until(() => t.cp.status().workloads.some((w) => w.nacked?.kind === 'config'), 'the NACK reaches the server');
    // failOpen starts anyway, with no config.
    const open = await createMesh({ service: 'client', controlPlane: t.cp.url, token, failOpen: true, analysis: 'blocking', logger: quietLogger });
    assert.equal(open.configSource, 'none');
    await open.close();
  } finally {
    await t.close();
  }
});

test('tokenFile: the token is read again for every request — after the signing key is rotated, a mesh refused (401) comes back once the file holds the new key’s token, without a restart', async () => {
  const t = await startTestControlPlane({ se: entries(), vs: [routeAll('svc', 'svc.example', 'b.example')] });
  const dir = await tempDir();
  const file = join(dir, 'token');
  await writeFile(file, `${await t.cp.mintToken({ service: 'client', namespace: 'default' })}\n`);
  const warnings: string[] = [];
  const mesh = await createMesh({ service: 'client', controlPlane: t.cp.url, tokenFile: file, random: shortJitter(3), logger: { warn: (m) => warnings.push(m), info: () => undefined } });
  try {
    assert.equal((await call(mesh, 'http://svc.example/')).upstream, 'b');
    // A new signing key (the old one's tokens are refused), and a config change the mesh should get.
    await t.cp.close();
    await rm(join(t.dataDir, 'signing-key.jwk'));
    await t.restart();
    await t.write('vs', [routeAll('svc', 'svc.example', 'a.example')]);
    await until(() => warnings.some((w) => /401/.test(w)), 'the old token refused');
    // The token is replaced on disk (a projected volume, a new `meshlet token`): the next reconnect presents it.
    const live = waitFor<{ source: string }>(mesh, 'config', (e) => e.source === 'control-plane', 8000);
    await writeFile(file, `${await t.cp.mintToken({ service: 'client', namespace: 'default' })}\n`);
    await live;
    assert.equal((await call(mesh, 'http://svc.example/')).upstream, 'a');
  } finally {
    await mesh.close();
    await t.close();
  }
});

test('tokenFile: a missing, empty or several-word file, or both token and tokenFile, reject createMesh naming the file; MESHLET_TOKEN_FILE is its default', async () => {
  const t = await startTestControlPlane({ se: entries() });
  const dir = await tempDir();
  const file = join(dir, 'token');
  try {
    await assert.rejects(createMesh({ service: 'client', controlPlane: t.cp.url, tokenFile: join(dir, 'absent'), logger: quietLogger }), new RegExp(`cannot read the token file ${join(dir, 'absent')}: ENOENT`));
    await writeFile(file, '  \n');
    await assert.rejects(createMesh({ service: 'client', controlPlane: t.cp.url, tokenFile: file, logger: quietLogger }), new RegExp(`the token file ${file} is empty`));
    await writeFile(file, 'a b\n');
    await assert.rejects(createMesh({ service: 'client', controlPlane: t.cp.url, tokenFile: file, logger: quietLogger }), /holds more than one word/);
    await assert.rejects(createMesh({ service: 'client', controlPlane: t.cp.url, token: 'x', tokenFile: file, logger: quietLogger }), /`token` and `tokenFile` are mutually exclusive/);
    await writeFile(file, await t.cp.mintToken({ service: 'client', namespace: 'default' }));
    const saved = { token: process.env.MESHLET_TOKEN, file: process.env.MESHLET_TOKEN_FILE };
    delete process.env.MESHLET_TOKEN;
    process.env.MESHLET_TOKEN_FILE = file;
    try {
      const m = await createMesh({ service: 'client', controlPlane: t.cp.url, logger: quietLogger });
      assert.equal(m.configSource, 'control-plane');
      await m.close();
    } finally {
      if (saved.token !== undefined) process.env.MESHLET_TOKEN = saved.token;
      if (saved.file === undefined) delete process.env.MESHLET_TOKEN_FILE;
      else process.env.MESHLET_TOKEN_FILE = saved.file;
    }
  } finally {
    await t.close();
  }
});
