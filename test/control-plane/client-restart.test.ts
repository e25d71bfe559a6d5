/**
 * Outages: a control plane restarted on the same port (meshes keep routing, reconnect, get the
 * next change, registrations come back), a dead stream found by missed heartbeats, and a dead
 * replica skipped in the URL list.
 */
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { call, deadPort, serviceEntry, startUpstream, type Upstream } from '../helpers/upstreams.ts';
import { quietLogger, routeAll, shortJitter, startTestControlPlane, until, waitFor } from './client-helpers.ts';

let a: Upstream;
let b: Upstream;
before(async () => {
  a = await startUpstream('a');
  b = await startUpstream('b');
});
after(async () => {
  await a.close();
  await b.close();
});

test('control plane restart on the same port: no request fails, meshes reconnect, the next change arrives, registrations return', async () => {
  const t = await startTestControlPlane({ se: [serviceEntry('a', 'a.example', 80, [{ port: a.port }]), serviceEntry('b', 'b.example', 80, [{ port: b.port }])], vs: [routeAll('svc', 'svc.example', 'a.example')] });
  const meshes: Mesh[] = [];
  let stop = false;
  let ok = 0;
  const failures: string[] = [];
  try {
    for (let i = 0; i < 5; i++) {
      const token = await t.cp.mintToken({ service: `c${i}`, namespace: 'default' });
      // Plain HTTP upstreams are registered: no identity (not registered as accepting mTLS).
      meshes.push(await createMesh({ service: `c${i}`, controlPlane: t.cp.url, token, drainMs: 0, identity: 'none', logger: quietLogger, random: shortJitter(i + 1) }));
    }
    const reg = await meshes[0]!.register({ ports: { http: a.port }, address: '127.0.0.1', leaseMs: 1000 });
    assert.equal(t.cp.status().registered, 1);
    const traffic = (async () => {
      while (!stop) {
        await Promise.all(
          meshes.map(async (m) => {
            const r = await call(m, 'http://svc.example/').catch((e: Error) => ({ status: 0, body: e.message }));
            if (r.status === 200) ok++;
            else failures.push(`${r.status} ${r.body}`);
          }),
        );
      }
    })();
    const disconnected = meshes.map((m) => waitFor(m, 'disconnected'));
    await t.cp.close();
    await Promise.all(disconnected);
    const during = ok;
    await until(() => ok > during + 10, 'traffic keeps flowing while the control plane is down');
    const connected = meshes.map((m) => waitFor(m, 'connected', undefined, 8000));
    await t.restart();
    await Promise.all(connected);
    // The registration was kept in the data dir (registry-restart.test.ts): it is served again.
    await until(() => t.cp.status().registered === 1, 'the registration comes back', 5000);
    assert.equal(reg.name.startsWith('c0-127-0-0-1-'), true);
    const before = t.cp.status().configVersion;
    const changed = meshes.map((m) => waitFor(m, 'config', (e: { version: string }) => e.version !== before));
    await t.write('vs', [routeAll('svc', 'svc.example', 'b.example')]);
    await Promise.all(changed);
    for (const m of meshes) assert.equal((await call(m, 'http://svc.example/')).upstream, 'b');
    stop = true;
    await traffic;
    assert.deepEqual(failures, []);
    assert.ok(ok > 20);
  } finally {
    stop = true;
    await Promise.all(meshes.map((m) => m.close()));
    await t.close();
  }
});

/** A fake control plane: answers /v1/watch with a hello (heartbeat 50 ms) and then nothing. */
async function silentControlPlane() {
  const streams: ServerResponse[] = [];
  let watches = 0;
  const server = createServer((req, res) => {
    if (req.url?.startsWith('/v1/watch')) {
      watches++;
      streams.push(res);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`event: hello\ndata: ${JSON.stringify({ connection: `c${watches}`, server: 'fake', configVersion: 'v1', endpointsVersion: 'e1', heartbeatMs: 50 })}\n\n`);
      res.write(`event: config\nid: v1/e1\ndata: ${JSON.stringify({ version: 'v1', resources: [] })}\n\n`);
      res.write(`event: endpoints\nid: v1/e1\ndata: ${JSON.stringify({ version: 'e1', workloads: [] })}\n\n`);
      return; // no pings from now on
    }
    // A control plane without a CA (as before issue 14): the mesh runs without a workload certificate.
    if (req.url === '/v1/certificates') return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"NOT_FOUND","message":"no such endpoint: POST /v1/certificates"}}');
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get watches() {
      return watches;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

test('a stream that goes silent (missed heartbeats) is dropped and the mesh reconnects; a dead replica in the list is skipped', async () => {
  const fake = await silentControlPlane();
  const dead = `http://127.0.0.1:${await deadPort()}`;
  const mesh = await createMesh({ service: 's', controlPlane: [dead, fake.url], token: 't', startupTimeoutMs: 3000, logger: quietLogger });
  try {
    assert.equal(mesh.configVersion, 'v1');
    const lost = await waitFor<{ error: Error }>(mesh, 'disconnected', undefined, 3000);
    assert.match(lost.error.message, /no data for 150 ms \(3 heartbeats missed\)/);
    await until(() => fake.watches >= 2, 'the mesh reconnects (past the dead replica)', 5000);
  } finally {
    await mesh.close();
    await fake.close();
  }
});
