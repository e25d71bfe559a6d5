/**
 * Hot reload from a directory of YAML files: a valid change applies to new requests, an invalid
 * one is rejected as a whole (event `rejected`, with every issue) while the last good config
 * keeps serving, and swapping config under load fails no request.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type ConfigAppliedEvent, createMesh, type Mesh, type MeshOptions, type RejectedEvent } from '../../src/index.ts';
import { nextConfig } from '../helpers/mesh-events.ts';
import { call, startUpstream, type Upstream } from '../helpers/upstreams.ts';

function services(v1: number, v2: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
  namespace: default
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9080, name: http, protocol: HTTP}
  endpoints:
  - {address: 127.0.0.1, ports: {http: ${v1}}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: ${v2}}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: default
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`;
}

/** A VirtualService sending everything to `subset`; `extra` is spliced into the route entry. */
function routeTo(subset: string, extra = ''): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts: [reviews]
  http:
  - name: main
    route:
    - destination: {host: reviews, subset: ${subset}}${extra}
`;
}

/** Writes a file in one step (temporary dotfile, which the loader skips, then rename). */
async function put(dir: string, name: string, text: string): Promise<void> {
  const tmp = join(dir, `.${name}.${process.pid}.tmp`);
  await writeFile(tmp, text);
  await rename(tmp, join(dir, name));
}

/**
 * Polls `fn` every 5 ms until it returns true. `ms` only guards against a hang: how fast a
 * reload lands is the machine's business, not an assertion.
 */
async function until(fn: () => Promise<boolean> | boolean, what: string, ms = 5000): Promise<void> {
  const t0 = performance.now();
  while (!(await fn())) {
    if (performance.now() - t0 > ms) assert.fail(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('config reload from a directory of YAML files', () => {
  let v1: Upstream;
  let v2: Upstream;
  let dir: string;
  const warnings: string[] = [];
  const logger = { warn: (m: string) => void warnings.push(m) };

  before(async () => {
    v1 = await startUpstream('v1');
    v2 = await startUpstream('v2');
  });

  after(async () => {
    await Promise.all([v1.close(), v2.close()]);
  });

  async function freshDir(): Promise<string> {
    dir = await mkdtemp(join(tmpdir(), 'meshlet-reload-'));
    await put(dir, 'services.yaml', services(v1.port, v2.port));
    await put(dir, 'vs.yaml', routeTo('v1'));
    return dir;
  }

  async function withMesh(fn: (mesh: Mesh) => Promise<void>, watch = true, options: Partial<MeshOptions> = {}): Promise<void> {
    const d = await freshDir();
    const mesh = await createMesh({ service: 'productpage', config: d, logger, watch, ...options });
    try {
      await fn(mesh);
    } finally {
      await mesh.close();
      await rm(d, { recursive: true, force: true });
    }
  }

  const upstreamOf = async (mesh: Mesh) => (await call(mesh, 'http://reviews:9080/')).upstream;

  test('a changed VirtualService (v1 → v2) reaches new requests within 1 s', async () => {
    await withMesh(async (mesh) => {
      assert.equal(await upstreamOf(mesh), 'v1');
      const version = mesh.snapshot.version;
      const applied = once(mesh, 'config');
      await put(dir, 'vs.yaml', routeTo('v2'));
      await until(async () => (await upstreamOf(mesh)) === 'v2', 'requests reach v2');
      const [ev] = (await applied) as [{ version: string }];
      assert.notEqual(ev.version, version);
      assert.equal(mesh.snapshot.version, ev.version);
      // Stays on v2.
      for (let i = 0; i < 5; i++) assert.equal(await upstreamOf(mesh), 'v2');
    });
  });

  test('an invalid change is rejected as a whole with every issue; the old routes keep serving', async () => {
    await withMesh(async (mesh) => {
      assert.equal(await upstreamOf(mesh), 'v1');
      const version = mesh.snapshot.version;
      warnings.length = 0;

      // Two problems in one change, plus a valid-looking route to v2 in the same file:
      // none of it may apply.
      const rejected = once(mesh, 'rejected');
      await put(dir, 'vs.yaml', routeTo('v2', '\n      weight: -1\n      colour: blue'));
      const [ev] = (await rejected) as [RejectedEvent];
      const text = ev.issues.filter((i) => i.level === 'error').map(String);
      assert.ok(text.some((t) => /spec\.http\[0\]\.route\[0\]\.weight: must be >= 0, got -1/.test(t)), text.join('\n'));
      assert.ok(text.some((t) => /unknown field "colour"/.test(t)), text.join('\n'));
      assert.ok(text.every((t) => t.includes('vs.yaml')), 'issues name the file');
      assert.equal(ev.error.code, 'MESHLET_ERR_CONFIG_INVALID');
      assert.match(ev.error.message, /2 error\(s\)/);
      assert.ok(warnings.some((w) => w.includes('rejected')), 'the rejection is logged');
      assert.equal(mesh.snapshot.version, version, 'the last good snapshot stays');
      for (let i = 0; i < 5; i++) assert.equal(await upstreamOf(mesh), 'v1');

      // An unknown field alone is enough to reject the change.
      const rejected2 = once(mesh, 'rejected');
      await put(dir, 'vs.yaml', routeTo('v2').replace('  http:', '  gateway: [mesh]\n  http:'));
      const [ev2] = (await rejected2) as [RejectedEvent];
      assert.ok(ev2.issues.some((i) => i.level === 'error' && /unknown field "gateway"/.test(i.message) && /did you mean/.test(i.message)), ev2.issues.map(String).join('\n'));
      assert.equal(await upstreamOf(mesh), 'v1');

      // Fixing the file applies it.
      const applied = once(mesh, 'config');
      await put(dir, 'vs.yaml', routeTo('v2'));
      await applied;
      assert.equal(await upstreamOf(mesh), 'v2');
    });
  });

  test('mesh.reload() returns false for invalid config and true for valid config; the config event fires at start too', async () => {
    await withMesh(async (mesh) => {
      const rejected: RejectedEvent[] = [];
      const applied: ConfigAppliedEvent[] = [];
      mesh.on('rejected', (e) => rejected.push(e));
      mesh.on('config', (e) => applied.push(e));
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(applied.map((e) => [e.version, e.source, e.findings.length]), [[mesh.snapshot.version, 'file', 0]], 'the start is a config event, on the next turn');
      await put(dir, 'vs.yaml', 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews\n');
      assert.equal(await mesh.reload(), false, 'a YAML syntax error is rejected');
      assert.equal(rejected.length, 1);
      assert.equal(await upstreamOf(mesh), 'v1');
      assert.equal(applied.length, 1);

      await put(dir, 'vs.yaml', routeTo('v2'));
      assert.equal(await mesh.reload(), true);
      assert.equal(applied.length, 2);
      assert.equal(await upstreamOf(mesh), 'v2');
      // Unchanged config: still true, nothing new applied.
      assert.equal(await mesh.reload(), true);
      assert.equal(applied.length, 2);
    }, false);
  });

  test('analysis findings are advisory, as in Istio: a route to an undefined subset applies, is reported once, and answers 503 NC', async () => {
    await withMesh(async (mesh) => {
      const applied: ConfigAppliedEvent[] = [];
      mesh.on('config', (e) => applied.push(e));
      await new Promise((r) => setImmediate(r));
      warnings.length = 0;
      await put(dir, 'vs.yaml', routeTo('v3'));
      assert.equal(await mesh.reload(), true, 'IST0101 does not refuse the config');
      const last = applied.at(-1) as ConfigAppliedEvent;
      assert.deepEqual(last.findings.map((f) => [f.level, f.code]), [['error', 'IST0101']]);
      assert.match(String(last.findings[0]), /subset "v3"/);
      const r = await call(mesh, 'http://reviews:9080/');
      assert.equal(r.status, 503);
      assert.equal(r.flags, 'NC');
      assert.equal(warnings.filter((w) => /IST0101/.test(w)).length, 1, 'the finding is logged');
      // A change that keeps the finding does not log it again.
      await put(dir, 'vs.yaml', routeTo('v3').replace('name: main', 'name: main-renamed'));
      assert.equal(await mesh.reload(), true);
      assert.equal(applied.length, 3);
      assert.equal(warnings.filter((w) => /IST0101/.test(w)).length, 1, 'logged once, not on every change that still has it');
    }, false);
  });

  test("analysis: 'blocking' refuses config with error-level findings; the last good config keeps serving", async () => {
    await withMesh(
      async (mesh) => {
        const rejected: RejectedEvent[] = [];
        mesh.on('rejected', (e) => rejected.push(e));
        await put(dir, 'vs.yaml', routeTo('v3'));
        assert.equal(await mesh.reload(), false);
        assert.equal(rejected.length, 1);
        assert.ok(rejected[0]?.issues.some((i) => i.code === 'IST0101' && i.level === 'error'));
        assert.equal(await upstreamOf(mesh), 'v1');
      },
      false,
      { analysis: 'blocking' },
    );
  });

  test('hot reload under load: 8 workers, config flipped 6 times, zero failed requests, both versions seen', async () => {
    await withMesh(async (mesh) => {
      let stop = false;
      const seen = { v1: 0, v2: 0 };
      const failures: string[] = [];
      let requests = 0;
      const worker = async () => {
        while (!stop) {
          try {
            const r = await call(mesh, 'http://reviews:9080/load', { method: 'POST', body: 'x' });
            requests++;
            if (r.status !== 200 || (r.upstream !== 'v1' && r.upstream !== 'v2')) failures.push(`${r.status} ${r.upstream} ${r.flags} ${r.body}`);
            else seen[r.upstream]++;
          } catch (e) {
            failures.push(String(e));
          }
        }
      };
      const workers = Array.from({ length: 8 }, worker);
      try {
        for (let flip = 0; flip < 6; flip++) {
          const target = flip % 2 === 0 ? 'v2' : 'v1';
          const applied = nextConfig(mesh);
          await put(dir, 'vs.yaml', routeTo(target));
          await applied;
          const before = seen[target];
          await until(() => seen[target] > before + 8, `traffic on ${target} after flip ${flip}`);
        }
      } finally {
        stop = true;
        await Promise.all(workers);
      }
      assert.deepEqual(failures, []);
      assert.ok(seen.v1 > 0 && seen.v2 > 0, JSON.stringify(seen));
      assert.equal(seen.v1 + seen.v2, requests);
      // The last flip went to v1, and it stuck.
      assert.equal(await upstreamOf(mesh), 'v1');
    });
  });
});
