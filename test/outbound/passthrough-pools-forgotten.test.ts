/**
 * The Agent behind calls to hosts outside the mesh (PassthroughCluster) makes a pool per origin
 * and closes it once its last connection goes; meshlet tracks those pools to cancel their calls at
 * `mesh.close()`. It forgot a closed pool only when the next new origin came, so after calls to
 * many hosts the set held every closed pool (and each new origin walked them all): now a pool is
 * forgotten when the Agent closes it.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { request } from 'undici';
import { trackedAgent, trackedPools } from '../../src/adapters/undici/close-within.ts';
import { until } from '../helpers/until.ts';

const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

async function server(): Promise<Server> {
  const s = createServer((_q, r) => r.end('ok'));
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return s;
}

test('pools of origins whose connections closed, or never opened, are forgotten', async () => {
  const agent = trackedAgent({});
  try {
    const live = await Promise.all(Array.from({ length: 20 }, () => server()));
    for (const s of live) assert.equal(await (await request(`http://127.0.0.1:${(s.address() as AddressInfo).port}/`, { dispatcher: agent })).body.text(), 'ok');
    assert.equal(trackedPools(agent), 20);
    for (const s of live) s.closeAllConnections();
    await until(() => trackedPools(agent) === 0, 'every origin’s connection closed: no pool held');

    // Origins that refuse the connection.
    const refused = await Promise.all(Array.from({ length: 20 }, () => server()));
    const ports = refused.map((s) => (s.address() as AddressInfo).port);
    await Promise.all(refused.map((s) => new Promise((r) => s.close(r))));
    for (const p of ports) await request(`http://127.0.0.1:${p}/`, { dispatcher: agent }).then(() => assert.fail('connected'), () => undefined);
    await until(() => trackedPools(agent) === 0, 'no connection could be opened: no pool held');
  } finally {
    await agent.close();
  }
});
