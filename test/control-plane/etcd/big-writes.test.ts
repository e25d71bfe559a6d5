/**
 * Config writes bigger than one etcd txn (found by the HA review): etcd refuses a txn of more than
 * 128 operations or compares (`--max-txn-ops`), and every apply was one txn, so `meshlet apply` of
 * 130 resources was refused with `etcdserver: too many operations in txn request`, and a replica
 * whose `--config` directory defines 64 resources or more (each is put with its owner record)
 * could not start. Such writes are now committed as consecutive txns.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import type { WireResource } from '../../../src/control-plane/protocol.ts';
import { EtcdClient } from '../../../src/control-plane-server/etcd/client.ts';
import { type EtcdStores, openEtcd } from '../../../src/control-plane-server/etcd/index.ts';
import { TXN_OPS, txnBatches } from '../../../src/control-plane-server/etcd/txn-batches.ts';
import { type EtcdServer, startEtcd } from '../../helpers/etcd.ts';
import { skipWithout } from '../../helpers/tools.ts';

const serviceEntry = (name: string, host = `${name}.example.com`): WireResource => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'ServiceEntry',
  metadata: { name, namespace: 'default' },
  spec: { hosts: [host], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'DNS' },
});

const names = (n: number, prefix: string): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const served = (s: EtcdStores, prefix: string): number => s.store.current().resources.filter((r) => r.kind === 'ServiceEntry' && r.metadata.name.startsWith(prefix)).length;

describe('txnBatches', () => {
  const roots = { root: '/m/config/', owners: '/m/owners/' };
  it('keeps a small write in one txn, and a resource with its owner record in one batch', () => {
    const ops = names(3, 'se').flatMap((n) => [{ put: { key: `/m/owners/ServiceEntry/default/${n}`, value: '{}' } }, { put: { key: `/m/config/ServiceEntry/default/${n}`, value: '{}' } }]);
    assert.deepEqual(txnBatches(ops, roots), [ops]);
    const batches = txnBatches(ops, roots, 3);
    assert.deepEqual(
      batches.map((b) => b.length),
      [2, 2, 2],
    );
    const keys = batches.map((b) => b.map((op) => ('put' in op ? op.put.key : '')));
    assert.deepEqual(keys[1], ['/m/owners/ServiceEntry/default/se1', '/m/config/ServiceEntry/default/se1']);
  });
  it('cuts by bytes too; a resource bigger than the budget gets a batch of its own', () => {
    const ops = ['a', 'b', 'c'].map((n, i) => ({ put: { key: `/m/config/ServiceEntry/default/${n}`, value: 'x'.repeat(i === 1 ? 500 : 100) } }));
    assert.deepEqual(
      txnBatches(ops, roots, 100, 300).map((b) => b.length),
      [1, 1, 1],
    );
  });
});

describe('etcd config writes bigger than one txn', { skip: skipWithout('etcd'), timeout: 60_000 }, () => {
  let etcd: EtcdServer;
  let dir: string;
  let a: EtcdStores | undefined;
  let b: EtcdStores | undefined;
  let c: EtcdStores | undefined;
  let raw: EtcdClient;

  before(async () => {
    etcd = await startEtcd();
    raw = new EtcdClient(etcd.endpoints);
    dir = await mkdtemp(join(tmpdir(), 'meshlet-etcd-big-'));
    await mkdir(join(dir, 'mesh'));
    // 70 resources: 140 puts with their owner records, more than one txn may carry.
    await writeFile(join(dir, 'mesh', 'many.yaml'), names(70, 'file').map((n) => stringify(serviceEntry(n))).join('---\n'));
    b = await openEtcd(etcd.endpoints);
    c = await openEtcd(etcd.endpoints);
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await c?.close();
    await raw?.close();
    await etcd?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('a replica starts on a --config directory of 70 resources and every replica serves them', async () => {
    a = await openEtcd(etcd.endpoints, { configDir: join(dir, 'mesh') });
    assert.deepEqual(a.files, { resources: 70, changed: 70 });
    await until('another replica to serve them', () => served(b!, 'file') === 70);
    assert.equal((await raw.list('/meshlet/owners/')).kvs.length, 70);
  });

  it(`an apply of ${TXN_OPS * 2 + 10} resources is committed whole, answered for each, and served by every replica`, async () => {
    const n = TXN_OPS * 2 + 10;
    const res = await b!.store.apply(
      names(n, 'api').map((x) => serviceEntry(x)),
      'apply by admin',
    );
    assert.equal(res.applied.length, n);
    assert.ok(res.applied.every((x) => x.action === 'created'));
    assert.equal(served(b!, 'api'), n);
    await until('the other replica to serve them', () => served(c!, 'api') === n);
    assert.equal(c!.store.current().version, b!.store.current().version);
    // Applied again, nothing changes.
    const again = await c!.store.apply(
      names(n, 'api').map((x) => serviceEntry(x)),
      'apply by admin',
    );
    assert.ok(again.applied.every((x) => x.action === 'unchanged'));
  });
});
