/**
 * etcd frozen for longer than the leases: when it is back it expires every registration at
 * once, although the workloads kept trying to renew. Every replica pushed callers an empty
 * endpoint set; now a record etcd removes while or right after it was unavailable is held (still
 * served) for one more lease, so that its workload registers again first.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WireResource } from '../../../src/control-plane/protocol.ts';
import { EtcdClient } from '../../../src/control-plane-server/etcd/client.ts';
import { openEtcd } from '../../../src/control-plane-server/etcd/index.ts';
import type { RegistryChange } from '../../../src/control-plane-server/store.ts';
import { startEtcd } from '../../helpers/etcd.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { until } from '../../helpers/until.ts';

function entry(name: string, port: number): WireResource {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadEntry',
    metadata: { name, namespace: 'default', labels: { app: 'reviews' } },
    spec: { address: '127.0.0.1', ports: { http: port }, labels: { app: 'reviews' } },
  };
}

describe('registrations across an etcd stall', { skip: skipWithout('etcd'), timeout: 60_000 }, () => {
  it('records etcd expires after its own outage stay served until their workloads register again (or one lease)', async () => {
    const etcd = await startEtcd();
    const raw = new EtcdClient(etcd.endpoints, { timeoutMs: 2000 });
    const s = await openEtcd(etcd.endpoints, { prefix: '/sg', logger: { warn: () => undefined }, healthProbe: { everyMs: 50, unhealthyEveryMs: 50, timeoutMs: 300 } });
    const removed: string[] = [];
    s.registry.onChange((c: RegistryChange) => {
      if (c.kind === 'delta') removed.push(...c.removed.map((r) => r.name));
    });
    try {
      await s.registry.register(entry('kept', 19081), 'reviews', 3000);
      await s.registry.register(entry('gone', 19082), 'reviews', 3000);
      etcd.freeze();
      // Longer than the leases: the replica sees etcd unhealthy, then etcd expires both at once.
      await new Promise((r) => setTimeout(r, 4500));
      etcd.thaw();
      await until(async () => (await raw.list('/sg/registry/')).kvs.length === 0, 'etcd expiring the leases', 20_000, 50);
      // Another registration, whose own write the registry waits to see: the watch is past the expiries.
      await s.registry.register(entry('new', 19083), 'reviews', 3000);
      assert.deepEqual(s.registry.list().map((r) => r.entry.metadata.name).sort(), ['gone', 'kept', 'new']);
      assert.equal(removed.length, 0, `callers are not pushed the expiries: ${removed.join(', ')}`);
      // 'kept' registers again (its renewal got 404): the hold is replaced by the new record.
      assert.equal(await s.registry.renew('default', 'kept'), undefined);
      await s.registry.register(entry('kept', 19081), 'reviews', 30_000);
      // 'gone' never comes back: dropped when its hold ends, as its lease would have.
      await until(() => removed.includes('gone'), 'the hold of a workload that did not come back ending', 20_000);
      const names = s.registry.list().map((r) => r.entry.metadata.name);
      assert.ok(names.includes('kept') && !names.includes('gone'), names.join(', '));
      assert.ok(!removed.includes('kept'));
    } finally {
      etcd.thaw();
      await s.close();
      await raw.close();
      await etcd.stop();
    }
  });
});
