import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { EtcdClient, EtcdError, type KeyValue } from '../../../src/control-plane-server/etcd/client.ts';
import { PrefixWatch, type WatchEvent } from '../../../src/control-plane-server/etcd/watch.ts';
import { type EtcdServer, freePort, startEtcd } from '../../helpers/etcd.ts';
import { skipWithout } from '../../helpers/tools.ts';

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('etcd client (real etcd)', { skip: skipWithout('etcd') }, () => {
  let etcd: EtcdServer;
  let client: EtcdClient;

  before(async () => {
    etcd = await startEtcd();
    client = new EtcdClient(etcd.endpoints, { timeoutMs: 2000 });
  });
  after(async () => {
    await client?.close();
    await etcd?.stop();
  });

  it('puts, gets, lists a prefix (UTF-8 keys and values) and deletes', async () => {
    const { revision: rev } = await client.put('/t/kv/a', 'héllo');
    await client.put('/t/kv/b', '{"x":1}');
    await client.put('/t/kw', 'outside the prefix');
    const a = await client.get('/t/kv/a');
    assert.equal(a?.value, 'héllo');
    assert.equal(a?.modRevision, rev);
    assert.equal(a?.version, 1);
    assert.equal(await client.get('/t/kv/none'), undefined);
    const listed = await client.list('/t/kv/');
    assert.deepEqual(listed.kvs.map((kv) => kv.key), ['/t/kv/a', '/t/kv/b']);
    assert.ok(listed.revision >= rev + 2);
    assert.deepEqual(await client.delete('/t/kv/none'), { deleted: 0, revision: listed.revision, prev: [] });
    const del = await client.delete('/t/kv/', { prefix: true, prevKv: true });
    assert.equal(del.deleted, 2);
    assert.deepEqual(del.prev.map((kv) => kv.value), ['héllo', '{"x":1}']);
    assert.equal((await client.list('/t/kv/')).kvs.length, 0);
    assert.equal((await client.get('/t/kw'))?.value, 'outside the prefix');
  });

  it('txn: applies the success branch when compares hold, the failure branch otherwise', async () => {
    const { revision: rev } = await client.put('/t/txn/k', 'v1');
    const stale = await client.txn(
      [{ key: '/t/txn/k', target: 'MOD', result: 'EQUAL', revision: rev - 1 }],
      [{ put: { key: '/t/txn/k', value: 'lost' } }],
      [{ range: { key: '/t/txn/k' } }],
    );
    assert.equal(stale.succeeded, false);
    assert.equal(stale.responses[0]?.kvs?.[0]?.value, 'v1');
    const ok = await client.txn(
      [
        { key: '/t/txn/k', target: 'MOD', result: 'EQUAL', revision: rev },
        { key: '/t/txn/new', target: 'CREATE', result: 'EQUAL', revision: 0 },
        { key: '/t/txn/', prefix: true, target: 'MOD', result: 'LESS', revision: rev + 1 },
      ],
      [{ put: { key: '/t/txn/k', value: 'v2' } }, { put: { key: '/t/txn/new', value: 'n' } }],
    );
    assert.equal(ok.succeeded, true);
    assert.equal(ok.revision, rev + 1);
    assert.equal((await client.get('/t/txn/k'))?.value, 'v2');
    // a key created after the read makes the prefix compare fail
    const prefixStale = await client.txn([{ key: '/t/txn/', prefix: true, target: 'MOD', result: 'LESS', revision: rev + 1 }], [{ delete: { key: '/t/txn/', prefix: true } }]);
    assert.equal(prefixStale.succeeded, false);
    assert.equal((await client.list('/t/txn/')).kvs.length, 2);
  });

  it('leases: grant, keepalive, keys vanish on revoke, unknown leases', async () => {
    const lease = await client.grantLease(5);
    assert.match(lease.id, /^\d+$/);
    assert.equal(lease.ttlSeconds, 5);
    await client.put('/t/lease/k', 'v', { lease: lease.id });
    assert.equal((await client.get('/t/lease/k'))?.lease, lease.id);
    const replaced = await client.put('/t/lease/k', 'v2', { lease: lease.id, prevKv: true });
    assert.equal(replaced.prev?.value, 'v');
    assert.equal(replaced.prev?.lease, lease.id);
    assert.equal(await client.keepAlive(lease.id), 5);
    assert.equal(await client.revokeLease(lease.id), true);
    assert.equal(await client.get('/t/lease/k'), undefined);
    assert.equal(await client.keepAlive(lease.id), 0);
    assert.equal(await client.revokeLease(lease.id), false);
    await assert.rejects(client.put('/t/lease/k2', 'v', { lease: lease.id }), (err: unknown) => {
      assert.ok(err instanceof EtcdError);
      assert.match(err.message, /kv\/put: etcdserver: requested lease not found/);
      assert.match(err.message, new RegExp(etcd.endpoints[0]!));
      return true;
    });
  });

  it('fails over to the next endpoint and names every endpoint and the operation when none answers', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const both = new EtcdClient([dead, ...etcd.endpoints], { timeoutMs: 1000 });
    try {
      await both.put('/t/failover', 'x');
      assert.equal((await both.get('/t/failover'))?.value, 'x');
    } finally {
      await both.close();
    }
    const none = new EtcdClient([dead], { timeoutMs: 1000 });
    try {
      await assert.rejects(none.get('/t/failover'), (err: unknown) => {
        assert.ok(err instanceof EtcdError);
        assert.equal(err.code, 'MESHLET_ERR_CONTROL_PLANE');
        assert.match(err.message, /^etcd kv\/range failed on every endpoint: http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);
        return true;
      });
      assert.equal(none.health.healthy, false);
    } finally {
      await none.close();
    }
  });

  it('times out a call to an endpoint that accepts but never answers', async () => {
    const sockets: import('node:net').Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as import('node:net').AddressInfo).port;
    const c = new EtcdClient([`http://127.0.0.1:${port}`], { timeoutMs: 200 });
    try {
      await assert.rejects(c.txn([], []), /etcd kv\/txn failed on every endpoint: http:\/\/127\.0\.0\.1:\d+: .*(timeout|aborted)/i);
    } finally {
      await c.close();
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  it('watch: snapshot, then events; re-lists after a compaction', async () => {
    await client.put('/t/w1/a', '1');
    const snapshots: KeyValue[][] = [];
    const events: WatchEvent[] = [];
    const w = new PrefixWatch(client, '/t/w1/', { onSnapshot: (kvs) => snapshots.push([...kvs]), onEvents: (e) => events.push(...e) });
    await w.start();
    try {
      assert.deepEqual(snapshots[0]?.map((kv) => kv.value), ['1']);
      const { revision: rev } = await client.put('/t/w1/b', '2');
      await client.delete('/t/w1/a');
      assert.equal(await w.waitFor(rev + 1, 3000), true);
      assert.deepEqual(
        events.map((e) => `${e.type} ${e.kv.key} ${e.kv.value}`),
        ['PUT /t/w1/b 2', 'DELETE /t/w1/a '],
      );
    } finally {
      await w.close();
    }
    // a watch resuming from a compacted revision gets a fresh snapshot instead
    const old = (await client.list('/t/w1/')).revision - 1;
    const { revision: now } = await client.put('/t/w1/c', '3');
    await client.compact(now);
    const again: KeyValue[][] = [];
    const w2 = new PrefixWatch(client, '/t/w1/', { onSnapshot: (kvs) => again.push([...kvs]), onEvents: () => undefined });
    await w2.start(old);
    try {
      await until('a re-list', () => again.length === 1);
      assert.deepEqual(again[0]?.map((kv) => kv.key), ['/t/w1/b', '/t/w1/c']);
    } finally {
      await w2.close();
    }
  });

  it('watch resumes from the last seen revision after etcd is restarted on the same data dir', async () => {
    const events: string[] = [];
    let errors = 0;
    let connected = 0;
    const w = new PrefixWatch(
      client,
      '/t/w2/',
      { onSnapshot: () => undefined, onEvents: (e) => events.push(...e.map((x) => x.kv.value)), onError: () => errors++, onConnected: () => connected++ },
      { retryMinMs: 20, retryMaxMs: 100 },
    );
    await w.start();
    try {
      const { revision: r1 } = await client.put('/t/w2/k', 'before');
      assert.equal(await w.waitFor(r1, 3000), true);
      await etcd.kill();
      await until('the watch to notice', () => errors > 0);
      assert.equal(client.health.healthy, false);
      await etcd.start();
      const { revision: r2 } = await client.put('/t/w2/k', 'after');
      await client.put('/t/w2/k2', 'after2');
      assert.equal(await w.waitFor(r2 + 1, 5000), true);
      assert.deepEqual(events, ['before', 'after', 'after2'], 'every change exactly once, in order');
      assert.ok(connected >= 2);
      assert.equal(client.health.healthy, true);
    } finally {
      await w.close();
    }
  });
});
