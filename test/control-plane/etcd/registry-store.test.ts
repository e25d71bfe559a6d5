import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { WireResource } from '../../../src/control-plane/protocol.ts';
import { EtcdClient } from '../../../src/control-plane-server/etcd/client.ts';
import { type EtcdStores, openEtcd } from '../../../src/control-plane-server/etcd/index.ts';
import type { RegistryChange } from '../../../src/control-plane-server/store.ts';
import { healthCondition } from '../../../src/control-plane-server/workload-group.ts';
import { isMeshletError } from '../../../src/core/errors.ts';
import { type EtcdServer, startEtcd } from '../../helpers/etcd.ts';
import { skipWithout } from '../../helpers/tools.ts';

function entry(name: string, port = 19081): WireResource {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadEntry',
    metadata: { name, namespace: 'default', labels: { app: 'reviews' } },
    spec: { address: '127.0.0.1', ports: { http: port }, labels: { app: 'reviews', version: 'v1' } },
  };
}

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const names = (s: EtcdStores): string[] => s.registry.list().map((r) => r.entry.metadata.name);

describe('EtcdRegistryStore and EtcdSharedValues: replicas sharing one etcd', { skip: skipWithout('etcd') }, () => {
  let etcd: EtcdServer;
  let raw: EtcdClient;
  let a: EtcdStores;
  let b: EtcdStores;
  let changesOnB = 0;

  before(async () => {
    etcd = await startEtcd();
    raw = new EtcdClient(etcd.endpoints);
    a = await openEtcd(etcd.endpoints, { prefix: '/rs' });
    b = await openEtcd(etcd.endpoints, { prefix: '/rs' });
    b.registry.onChange(() => changesOnB++);
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await raw?.close();
    await etcd?.stop();
  });

  it('a registration on one replica is listed by the other, with the same version', async () => {
    const empty = b.registry.version();
    // The lease's end is bracketed by the clock read before and after register(), not by a
    // guess at how long register() takes (it waits for its own watch to catch up with etcd).
    const t0 = Date.now();
    const rec = await a.registry.register(entry('reviews-1'), 'reviews', 30_000);
    const t1 = Date.now();
    assert.equal(rec.service, 'reviews');
    assert.equal(rec.leaseMs, 30_000);
    assert.ok(rec.expiresAt >= t0 + 30_000 && rec.expiresAt <= t1 + 30_000, `expiresAt ${rec.expiresAt - t0} ms after register() was called, which took ${t1 - t0} ms`);
    assert.deepEqual(names(a), ['reviews-1'], 'the registering replica lists it when register resolves');
    await until('B to list it', () => names(b).length === 1);
    assert.equal(changesOnB, 1);
    assert.deepEqual(b.registry.list()[0]?.entry, entry('reviews-1'));
    assert.equal(b.registry.version(), a.registry.version());
    assert.notEqual(b.registry.version(), empty);
    const kv = (await raw.get('/rs/registry/default/reviews-1'))!;
    const stored = JSON.parse(kv.value) as { entry: WireResource; service: string; leaseMs: number; lease: string };
    assert.deepEqual({ ...stored, lease: undefined }, { entry: entry('reviews-1'), service: 'reviews', leaseMs: 30_000, lease: undefined });
    assert.equal(stored.lease, kv.lease, 'the record names the lease it is attached to');
    assert.equal(await raw.keepAlive(kv.lease), 30);
  });

  it('re-registering replaces the record and revokes the old lease; every change is an event', async () => {
    const oldLease = (await raw.get('/rs/registry/default/reviews-1'))!.lease;
    const before = changesOnB;
    await b.registry.register(entry('reviews-1', 19099), 'reviews', 30_000);
    const kv = (await raw.get('/rs/registry/default/reviews-1'))!;
    assert.notEqual(kv.lease, oldLease);
    assert.equal(await raw.keepAlive(oldLease), 0, 'old lease revoked');
    const port = (s: EtcdStores): number | undefined => (s.registry.list()[0]?.entry.spec as { ports?: { http?: number } } | undefined)?.ports?.http;
    await until('A to see the new port', () => port(a) === 19099);
    assert.equal(a.registry.version(), b.registry.version());
    await b.registry.register(entry('reviews-1', 19099), 'reviews', 30_000);
    assert.equal(changesOnB, before + 2, 'an identical re-registration is still reported (no debouncing)');
  });

  it('leases expire in etcd unless renewed, from any replica', async () => {
    await a.registry.register(entry('short'), 'reviews', 2000);
    await until('B to list it', () => names(b).includes('short'));
    // renewed through the other replica for longer than the TTL. Real time, on purpose: the lease
    // lives in etcd and expires on etcd's clock, which no test clock reaches; each 300 ms sleep is
    // a renewal interval well inside the 2 s TTL (a loaded machine would have to stall one
    // renewal by 1.7 s to end it; with a 1 s TTL, 0.7 s did).
    const renewUntil = Date.now() + 3000;
    while (Date.now() < renewUntil) {
      const renewed = await b.registry.renew('default', 'short');
      assert.ok(renewed, 'renew finds the record and its lease');
      assert.ok(renewed.expiresAt > Date.now());
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.ok(names(a).includes('short') && names(b).includes('short'));
    const changes = changesOnB;
    await until('etcd to expire it', () => !names(a).includes('short') && !names(b).includes('short'), 10_000);
    assert.ok(changesOnB > changes);
    assert.equal(await raw.get('/rs/registry/default/short'), undefined);
    assert.equal(await a.registry.renew('default', 'short'), undefined);
    assert.equal(a.registry.version(), b.registry.version());
  });

  it('deregister deletes the record and revokes its lease; records outlive the replica that made them', async () => {
    const c = await openEtcd(etcd.endpoints, { prefix: '/rs' });
    await c.registry.register(entry('reviews-2'), 'reviews', 30_000);
    const lease = (await raw.get('/rs/registry/default/reviews-2'))!.lease;
    await c.close();
    await until('A to list it', () => names(a).includes('reviews-2'));
    assert.ok(await a.registry.renew('default', 'reviews-2'), 'renewed by a replica that did not register it');
    assert.equal(await a.registry.deregister('default', 'reviews-2'), true);
    assert.ok(!names(a).includes('reviews-2'), 'gone from the deregistering replica when deregister resolves');
    await until('B to drop it', () => !names(b).includes('reviews-2'));
    assert.equal(await raw.keepAlive(lease), 0);
    assert.equal(await b.registry.deregister('default', 'reviews-2'), false);
    assert.equal(await b.registry.renew('default', 'reviews-2'), undefined);
  });

  it('a record belongs to its owner on every replica: another service cannot replace (409), renew or deregister it (403)', async () => {
    await a.registry.register(entry('owned'), 'reviews', 30_000);
    await until('B to list it', () => names(b).includes('owned'));
    const conflict = (e: unknown) => isMeshletError(e, 'MESHLET_ERR_CONTROL_PLANE') && e.httpStatus === 409 && /registered by service default\/reviews, not default\/api/.test(e.message);
    const forbidden = (e: unknown) => isMeshletError(e, 'MESHLET_ERR_CONTROL_PLANE') && e.httpStatus === 403;
    await assert.rejects(b.registry.register({ ...entry('owned'), spec: { address: '10.6.6.6', ports: { http: 1 } } }, 'api', 30_000), conflict);
    await assert.rejects(b.registry.renew('default', 'owned', 'api'), forbidden);
    await assert.rejects(a.registry.deregister('default', 'owned', 'api'), forbidden);
    const stored = JSON.parse((await raw.get('/rs/registry/default/owned'))!.value) as { entry: WireResource; service: string };
    assert.equal(stored.service, 'reviews');
    assert.deepEqual(stored.entry, entry('owned'));
    assert.equal(b.registry.owned('default', 'reviews') >= 1, true);
    assert.equal(b.registry.owned('default', 'api'), 0);
    assert.ok(await b.registry.renew('default', 'owned', 'reviews'));
    assert.equal(await b.registry.deregister('default', 'owned', 'reviews'), true);
  });

  it('change events name what changed: the records put, the ones removed', async () => {
    const seen: RegistryChange[] = [];
    b.registry.onChange((c) => seen.push(c));
    await a.registry.register(entry('evented'), 'reviews', 30_000);
    await until('B to hear of it', () => seen.length >= 1);
    assert.deepEqual(
      seen.map((c) => (c.kind === 'delta' ? [c.upserted.map((r) => r.entry.metadata.name), c.removed] : c.kind)),
      [[['evented'], []]],
    );
    await a.registry.deregister('default', 'evented');
    await until('B to hear of the removal', () => seen.length >= 2);
    assert.deepEqual(seen[1], { kind: 'delta', upserted: [], removed: [{ namespace: 'default', name: 'evented' }] });
  });

  it('a record written straight into etcd that is not valid is skipped (never served) and reported', async () => {
    await raw.put('/rs/registry/default/garbage', 'not json');
    await raw.put('/rs/registry/default/bad-entry', JSON.stringify({ entry: { ...entry('bad-entry'), spec: { address: '10.0.0.1', ports: { http: 70000 } } }, service: 'reviews', leaseMs: 30_000 }));
    await raw.put('/rs/registry/default/misnamed', JSON.stringify({ entry: entry('other-name'), service: 'reviews', leaseMs: 30_000 }));
    await until('B to skip them', () => (b.registry.skipped?.() ?? []).length === 3);
    assert.ok(!names(b).some((n) => ['garbage', 'bad-entry', 'other-name', 'misnamed'].includes(n)));
    const reasons = new Map((b.registry.skipped?.() ?? []).map((v) => [v.key, v.reasons.join()]));
    assert.match(reasons.get('/rs/registry/default/garbage')!, /not a registry record/);
    assert.match(reasons.get('/rs/registry/default/bad-entry')!, /not a valid WorkloadEntry/);
    assert.match(reasons.get('/rs/registry/default/misnamed')!, /the key names default\/misnamed but the entry is default\/other-name/);
    for (const k of ['garbage', 'bad-entry', 'misnamed']) assert.equal(await a.registry.deregister('default', k), true, k);
    await until('B to forget them', () => (b.registry.skipped?.() ?? []).length === 0);
  });

  it('a renewal in flight while a health report lands keeps the report in the cache (only the expiry changes)', async () => {
    // renew() reads the record, awaits the keepalive, then caches: it used to cache the record it
    // had read, undoing on this replica a health report written meanwhile (list() and the views
    // built from it went back to the old condition until the next change).
    await a.registry.register(entry('renewed-health'), 'reviews', 30_000);
    await a.registry.health('default', 'renewed-health', healthCondition(true, undefined, new Date(0)), 'reviews');
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let entered: () => void = () => {};
    const inKeepAlive = new Promise<void>((r) => {
      entered = r;
    });
    const keepAlive = EtcdClient.prototype.keepAlive;
    EtcdClient.prototype.keepAlive = async function (this: EtcdClient, id: string) {
      entered();
      await gate;
      return keepAlive.call(this, id);
    };
    try {
      const renewing = a.registry.renew('default', 'renewed-health', 'reviews');
      await inKeepAlive;
      await a.registry.health('default', 'renewed-health', healthCondition(false, 'probe failed', new Date(1000)), 'reviews');
      const reported = a.registry.version();
      release();
      const renewed = await renewing;
      const status = (s: EtcdStores): unknown => (s.registry.list().find((r) => r.entry.metadata.name === 'renewed-health')?.entry.status as { conditions?: { status?: string }[] } | undefined)?.conditions?.[0]?.status;
      assert.equal(status(a), 'False', 'the replica that renewed still lists the reported condition');
      assert.equal((renewed?.entry.status as { conditions?: { status?: string }[] } | undefined)?.conditions?.[0]?.status, 'False', 'renew returns the current record');
      assert.equal(a.registry.version(), reported, 'a renewal does not change the content, so not the version');
      await until('B to list the report', () => status(b) === 'False');
      assert.equal(b.registry.version(), a.registry.version());
    } finally {
      EtcdClient.prototype.keepAlive = keepAlive;
      release();
    }
    await a.registry.deregister('default', 'renewed-health');
  });

  it('putIfAbsent: concurrent writers on two replicas all get the one stored value', async () => {
    const racers = Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? a : b).shared.putIfAbsent('token-key', `value-${i}`));
    const values = await Promise.all(racers);
    assert.equal(new Set(values).size, 1, values.join(','));
    assert.match(values[0]!, /^value-\d$/);
    assert.equal((await raw.get('/rs/shared/token-key'))?.value, values[0]);
    assert.equal(await b.shared.putIfAbsent('token-key', 'later'), values[0]);
    assert.equal(await a.shared.putIfAbsent('other-key', 'first'), 'first');
  });
});
