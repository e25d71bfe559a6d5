/**
 * The etcd config store's check of the stored set (config-check.ts), without etcd: values
 * invalid alone are skipped, what is unchanged since the last check is reused (the same parsed
 * document, the same resource object), and the check gives the event loop turns while it runs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkStoredSet, StoredSetCache } from '../../../src/control-plane-server/etcd/config-check.ts';

const ROOT = '/meshlet/config/';
const OPTIONS = { root: ROOT, analysis: 'advisory' as const, defaultNamespace: 'default' };

function serviceEntry(i: number, port = 80): [string, string] {
  const name = `svc-${i}`;
  const value = {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name, namespace: 'bench' },
    spec: { hosts: [`${name}.bench.svc.cluster.local`], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: port, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: `10.0.${i >> 8}.${i & 255}` }] },
  };
  return [`${ROOT}ServiceEntry/bench/${name}`, JSON.stringify(value)];
}

function set(n: number): Map<string, string> {
  return new Map(Array.from({ length: n }, (_, i) => serviceEntry(i)));
}

describe('checkStoredSet', () => {
  it('skips values invalid on their own with why, and serves the others', async () => {
    const s = set(3);
    s.set(`${ROOT}ServiceEntry/bench/broken`, '{not json');
    s.set(`${ROOT}ServiceEntry/bench/other`, serviceEntry(7)[1]);
    const checked = await checkStoredSet(s, OPTIONS);
    assert.equal(checked.ok, true);
    assert.deepEqual(
      checked.state.resources.map((r) => r.metadata.name),
      ['svc-0', 'svc-1', 'svc-2'],
    );
    assert.deepEqual([...checked.skipped.values()].map((v) => [v.key.slice(ROOT.length), v.reasons]), [
      ['ServiceEntry/bench/broken', ['the value is not JSON']],
      ['ServiceEntry/bench/other', ['the key names ServiceEntry/bench/other but the value is ServiceEntry/bench/svc-7']],
    ]);
  });

  it('with a cache, a one-value change makes one new resource: every other is the object of the check before', async () => {
    const cache = new StoredSetCache();
    const s = set(200);
    const before = await checkStoredSet(s, OPTIONS, cache);
    const [key, value] = serviceEntry(42, 8080);
    s.set(key, value);
    const after = await checkStoredSet(s, OPTIONS, cache);
    assert.equal(after.state.resources.length, 200);
    assert.notEqual(after.state.version, before.state.version);
    const byName = new Map(before.state.resources.map((r) => [r.metadata.name, r]));
    const fresh = after.state.resources.filter((r) => byName.get(r.metadata.name) !== r).map((r) => r.metadata.name);
    assert.deepEqual(fresh, ['svc-42']);
    // Without the cache every resource is made again.
    const uncached = await checkStoredSet(s, OPTIONS);
    assert.equal(
      uncached.state.resources.some((r) => byName.get(r.metadata.name) === r),
      false,
    );
    assert.equal(uncached.state.version, after.state.version);
    // A removed key is forgotten by prune; the set checks the same without it.
    s.delete(key);
    cache.prune(s);
    const removed = await checkStoredSet(s, OPTIONS, cache);
    assert.equal(removed.state.resources.length, 199);
  });

  it('gives the event loop turns while it checks a large set (a replica keeps serving)', async () => {
    let turns = 0;
    let ticking = true;
    const tick = () => {
      turns++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const checked = await checkStoredSet(set(3000), OPTIONS);
    ticking = false;
    assert.equal(checked.state.resources.length, 3000);
    // Synchronously (as before) the ticker would not run at all until the check is over.
    assert.ok(turns >= 2, `${turns} event-loop turns during the check`);
  });
});
