/**
 * With two control-plane replicas on one etcd, `meshlet apply` on one must not report as its own
 * the findings another replica's change just brought. The warnings of an apply are the findings
 * new with it (apply-warnings.ts), compared with the config before it; that "before" was the
 * replica's served state, which its watch keeps and which may lag the read of the apply: replica
 * A drops a subset a VirtualService routes to (IST0101, A's apply says so), replica B's watch has
 * not delivered that yet, and B's unrelated apply answered `error IST0101 …` as if it had broken
 * the route. An apply now waits (bounded) for its replica's watch to reach what it read, and
 * checks the config as read when the watch does not get there in time.
 *
 * B's watch is held back deterministically: its client's watch stream hands nothing on while the
 * gate is closed (etcd itself goes on).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { WireResource } from '../../../src/control-plane/protocol.ts';
import { EtcdClient } from '../../../src/control-plane-server/etcd/client.ts';
import { EtcdConfigStore } from '../../../src/control-plane-server/etcd/config-store.ts';
import { type EtcdServer, startEtcd } from '../../helpers/etcd.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { until } from '../../helpers/until.ts';

const NET = 'networking.istio.io/v1';
const service = (name: string): WireResource => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default' },
  spec: { selector: { app: name }, ports: [{ name: 'http', port: 9080 }] },
});
const rule = (subsets: string[]): WireResource => ({
  apiVersion: NET,
  kind: 'DestinationRule',
  metadata: { name: 'reviews', namespace: 'default' },
  spec: { host: 'reviews', subsets: subsets.map((s) => ({ name: s, labels: { version: s } })) },
});
const ROUTE: WireResource = {
  apiVersion: NET,
  kind: 'VirtualService',
  metadata: { name: 'reviews', namespace: 'default' },
  spec: { hosts: ['reviews'], http: [{ route: ['v1', 'v3'].map((subset) => ({ destination: { host: 'reviews', subset }, weight: 50 })) }] },
};

/** Holds a watch stream's chunks back while closed. */
class Gate {
  #closed = false;
  #opened: (() => void)[] = [];
  close(): void {
    this.#closed = true;
  }
  open(): void {
    this.#closed = false;
    for (const o of this.#opened.splice(0)) o();
  }
  async *pass(body: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
    for await (const chunk of body) {
      while (this.#closed) await new Promise<void>((r) => this.#opened.push(r));
      yield chunk;
    }
  }
}

/** A replica whose watch stream goes through `gate`, and what it logs. */
async function replica(endpoints: string[], settleMs: number): Promise<{ store: EtcdConfigStore; client: EtcdClient; gate: Gate; logs: string[]; reads: number }> {
  const client = new EtcdClient(endpoints);
  const gate = new Gate();
  const stream = client.stream.bind(client);
  client.stream = async (...args) => {
    const opened = await stream(...args);
    return { endpoint: opened.endpoint, body: gate.pass(opened.body) };
  };
  const logs: string[] = [];
  const store = new EtcdConfigStore(client, { settleMs, logger: { warn: (m) => logs.push(m), info: (m) => logs.push(m) } });
  await store.start();
  const r = { store, client, gate, logs, reads: 0 };
  const txn = client.txn.bind(client);
  client.txn = async (compare, ...rest) => {
    const res = await txn(compare, ...rest);
    if (compare.length === 0) r.reads++;
    return res;
  };
  return r;
}

const BEHIND = /watch is at revision \d+, behind the read/;

describe('apply warnings over etcd with two replicas', { skip: skipWithout('etcd'), timeout: 60_000 }, () => {
  let etcd: EtcdServer;
  let a: Awaited<ReturnType<typeof replica>>;
  /** Its watch is held throughout its apply: it checks the config as read. */
  let held: Awaited<ReturnType<typeof replica>>;
  /** Its watch is let go once its apply has read: it waits for it. */
  let late: Awaited<ReturnType<typeof replica>>;

  before(async () => {
    etcd = await startEtcd();
    // A waits for its own writes as long as it takes: a write whose revision its watch never sees would hang.
    a = await replica(etcd.endpoints, 600_000);
    held = await replica(etcd.endpoints, 200);
    late = await replica(etcd.endpoints, 60_000);
    assert.deepEqual(await a.store.apply([service('reviews'), rule(['v1', 'v2', 'v3']), ROUTE], 'setup'), {
      version: a.store.current().version,
      applied: ['Service default/reviews', 'DestinationRule default/reviews', 'VirtualService default/reviews'].map((ref) => ({ ref, action: 'created' })),
      warnings: [],
    });
  });
  after(async () => {
    for (const r of [a, held, late]) {
      r?.gate.open();
      await r?.store.close();
      await r?.client.close();
    }
    await etcd?.stop();
  });

  /** Both others serve what A serves, then their watches are held back. */
  async function caughtUpThenHeld(): Promise<void> {
    for (const r of [held, late]) await until(() => r.store.current().version === a.store.current().version, 'the replica to serve what A serves');
    held.gate.close();
    late.gate.close();
  }

  /** `r`'s apply of an unrelated Service, its watch let go once the apply has read. */
  async function unrelatedApply(r: typeof late, name: string): Promise<readonly string[]> {
    const reads = r.reads;
    const letGo = until(() => r.reads > reads, 'the apply to read').then(() => r.gate.open());
    const res = await r.store.apply([service(name)], `apply of ${name}`);
    await letGo;
    return res.warnings;
  }

  it("another replica's dropped subset is its warning, not a later apply's on a replica whose watch lags", async () => {
    await caughtUpThenHeld();
    const dropped = await a.store.apply([rule(['v1', 'v2'])], 'drop v3');
    assert.equal(dropped.warnings.length, 1, dropped.warnings.join('\n'));
    assert.match(dropped.warnings[0]!, /^error IST0101: .*VirtualService default\/reviews: spec\.http\[0\]\.route\[1\]\.destination\.subset: referenced subset "v3"/);

    // The watch never gets there in time: the config as read is checked.
    const heldWarnings = (await held.store.apply([service('ratings')], 'apply of ratings')).warnings;
    assert.deepEqual(heldWarnings, [], 'the finding is A\'s apply\'s, not this one\'s');
    assert.equal(held.logs.filter((l) => BEHIND.test(l)).length, 1, held.logs.join('\n'));
    held.gate.open();

    // The watch gets there while the apply waits: the state it serves then is used.
    assert.deepEqual(await unrelatedApply(late, 'details'), []);
    assert.deepEqual(late.logs.filter((l) => BEHIND.test(l)), []);
  });

  it('a deletion by another replica (no value left to read, only the write marker) is waited for too', async () => {
    await caughtUpThenHeld();
    const deleted = await a.store.delete('DestinationRule', 'default', 'reviews', 'delete the rule');
    assert.equal(deleted.warnings.length, 1, deleted.warnings.join('\n'));
    assert.match(deleted.warnings[0]!, /^error IST0101: .*referenced subset "v1"/);
    assert.deepEqual(await unrelatedApply(late, 'productpage'), []);
    assert.deepEqual(late.logs.filter((l) => BEHIND.test(l)), [], late.logs.join('\n'));
    held.gate.open();
  });

  it('a write that only marks file owners waits for no revision the watch never sees, and leaves later applies none to wait for', { timeout: 30_000 }, async () => {
    // The file sync takes over resources applied through the API with the same content: it writes owner records only.
    const synced = await a.store.syncFiles('/etc/mesh', 'a-host', [{ wire: service('reviews'), file: 'reviews.yaml' }], 'sync');
    assert.deepEqual(synced.applied, [{ ref: 'Service default/reviews', action: 'unchanged' }]);
    await caughtUpThenHeld();
    const waits = held.logs.filter((l) => BEHIND.test(l)).length;
    assert.deepEqual((await held.store.apply([service('reviews-db')], 'apply of reviews-db')).warnings, []);
    assert.equal(held.logs.filter((l) => BEHIND.test(l)).length, waits, 'no wait: the marker says which revision last changed the config');
    held.gate.open();
  });
});
