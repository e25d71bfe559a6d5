/**
 * test/helpers/etcd.ts against the race it has to live with: etcd cannot listen on port 0, so
 * its ports are picked before etcd binds them, and another process may hold one by then. A
 * start whose ports turn out taken (etcd exits with `bind: address already in use`, or another
 * etcd answers on the client port) is made again on fresh ports.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { after, describe, it } from 'node:test';
import { type EtcdServer, freePort, startEtcd } from '../../helpers/etcd.ts';
import { skipWithout } from '../../helpers/tools.ts';

/** Port picks that give `taken` first, then free ports; counts the picks. */
function picksTakenFirst(taken: number): { pick: () => Promise<number>; picks: number[] } {
  const picks: number[] = [];
  return {
    picks,
    pick: async () => {
      const port = picks.length === 0 ? taken : await freePort();
      picks.push(port);
      return port;
    },
  };
}

describe('startEtcd when a picked port is taken before etcd binds it', { skip: skipWithout('etcd') }, () => {
  const started: EtcdServer[] = [];
  const held: Server[] = [];
  after(async () => {
    for (const e of started) await e.stop();
    for (const s of held) await new Promise((r) => s.close(r));
  });

  it('freePort gives a port below the ephemeral range, free now', async () => {
    const port = await freePort();
    const ephemeral = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0]);
    assert.ok(port >= 20_000 && port < ephemeral, `${port}`);
    const s = createServer();
    await new Promise<void>((r) => s.listen(port, '127.0.0.1', r));
    await new Promise((r) => s.close(r));
  });

  it('by a plain listener: etcd exits with "address already in use", and the start is made again on fresh ports', async () => {
    const s = createServer((c) => c.destroy());
    held.push(s);
    const taken = await freePort();
    await new Promise<void>((r) => s.listen(taken, '127.0.0.1', r));
    const { pick, picks } = picksTakenFirst(taken);
    const etcd = await startEtcd({ pickPort: pick });
    started.push(etcd);
    assert.equal(picks.length, 4, 'two ports, twice');
    assert.notEqual(etcd.clientPort, taken);
    assert.equal(((await (await fetch(`${etcd.endpoints[0]}/health`)).json()) as { health: string }).health, 'true');
  });

  it('by another etcd: its healthy answer is not taken for ours (ours is the member with our peer URL)', async () => {
    const other = await startEtcd();
    started.push(other);
    const { pick, picks } = picksTakenFirst(other.clientPort);
    const etcd = await startEtcd({ pickPort: pick });
    started.push(etcd);
    assert.equal(picks.length, 4);
    const members = (await (await fetch(`${etcd.endpoints[0]}/v3/cluster/member/list`, { method: 'POST', body: '{}' })).json()) as { members: { peerURLs: string[] }[] };
    assert.deepEqual(members.members[0]?.peerURLs, [`http://127.0.0.1:${etcd.peerPort}`]);
  });

  it('given ports are not changed: a taken one fails the start, with etcd\'s message', async () => {
    const s = createServer((c) => c.destroy());
    held.push(s);
    const taken = await freePort();
    await new Promise<void>((r) => s.listen(taken, '127.0.0.1', r));
    await assert.rejects(startEtcd({ clientPort: taken }), /bind: address already in use/);
  });
});
