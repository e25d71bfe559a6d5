/**
 * A watch on an etcd member that stops answering (found by the HA review, with a three-member
 * etcd and one member SIGSTOPped, as in a partition or a hung VM): the member keeps its
 * connections open and sends nothing, so the replicas' watch streams waited on it forever — every
 * replica kept serving the config of before (changes written through the other members never
 * arrived, for minutes, with `meshlet status` saying healthy since the health probe failed over).
 * The probe now asks the endpoints that hold watches on their own and moves the watches off one
 * that does not answer.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket, connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { WireResource } from '../../../src/control-plane/protocol.ts';
import { EtcdClient } from '../../../src/control-plane-server/etcd/client.ts';
import { type EtcdStores, openEtcd } from '../../../src/control-plane-server/etcd/index.ts';
import { type EtcdServer, startEtcd } from '../../helpers/etcd.ts';
import { skipWithout } from '../../helpers/tools.ts';

const serviceEntry = (name: string): WireResource => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'ServiceEntry',
  metadata: { name, namespace: 'default', creationTimestamp: '2026-01-01T00:00:00.000Z' },
  spec: { hosts: [`${name}.example.com`], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'DNS' },
});

/** A TCP proxy to etcd that can freeze: connections stay open (new ones are accepted) and nothing flows, as with a SIGSTOPped member. */
async function freezableProxy(port: number): Promise<{ url: string; freeze(): void; close(): Promise<void> }> {
  let frozen = false;
  const sockets = new Set<Socket>();
  const pairs: [Socket, Socket][] = [];
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    if (frozen) return void client.pause();
    const upstream = connect(port, '127.0.0.1');
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
    pairs.push([client, upstream]);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    freeze() {
      frozen = true;
      for (const [a, b] of pairs) {
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
      }
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

async function until(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('a watched etcd member that stops answering', { skip: skipWithout('etcd'), timeout: 60_000 }, () => {
  let etcd: EtcdServer;
  let proxy: Awaited<ReturnType<typeof freezableProxy>>;
  let stores: EtcdStores | undefined;
  let direct: EtcdClient;

  before(async () => {
    etcd = await startEtcd();
    proxy = await freezableProxy(etcd.clientPort);
    direct = new EtcdClient(etcd.endpoints);
  });
  after(async () => {
    await stores?.close();
    await direct?.close();
    await proxy?.close();
    await etcd?.stop();
  });

  it('the watches move to another endpoint and the change written meanwhile is served', async () => {
    // The frozen "member" first: the watches open on it.
    stores = await openEtcd([proxy.url, etcd.endpoints[0]!], { prefix: '/frozen', timeoutMs: 1000, logger: { warn: () => undefined }, healthProbe: { everyMs: 100, unhealthyEveryMs: 100, timeoutMs: 300 } });
    await stores.store.apply([serviceEntry('before')], 'apply by admin');
    proxy.freeze();
    // Written through the member that still answers (another replica, etcdctl).
    await direct.put('/frozen/config/ServiceEntry/default/during', JSON.stringify(serviceEntry('during')));
    const served = (): string[] => stores!.store.current().resources.map((r) => r.metadata.name);
    await until('the change to be served', () => served().includes('during'));
    assert.deepEqual(served().sort(), ['before', 'during']);
  });
});
