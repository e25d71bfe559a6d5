/**
 * `%UPSTREAM_LOCAL_ADDRESS%` / `%UPSTREAM_CONNECTION_ID%` of an undici call come from undici's
 * `undici:client:sendHeaders` message, a channel every copy of undici in the process publishes
 * on (Node's built-in fetch has its own copy, an app may have another): the mesh's calls are
 * still matched after another copy's request was seen first.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { request as undici7Request } from 'undici7';
import { createMesh, type Mesh } from '../../src/index.ts';
import { capture, telemetry } from '../helpers/access-log.ts';

const HOST = 'plain.example.internal';
let server: Server;
let port: number;
let mesh: Mesh;
let log: ReturnType<typeof capture>;
const remotes = new Map<string, string>();

before(async () => {
  server = createServer((req, res) => {
    remotes.set(req.url ?? '', `${req.socket.remoteAddress}:${req.socket.remotePort}`);
    res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  log = capture();
  mesh = await createMesh({
    service: 'productpage',
    logger: log.logger,
    extensionProviders: [{ name: 'json', envoyFileAccessLog: { path: '/dev/stdout', logFormat: { labels: { path: '%REQ(:PATH)%', local: '%UPSTREAM_LOCAL_ADDRESS%', conn: '%UPSTREAM_CONNECTION_ID%' } } } }],
    config: [
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'ServiceEntry',
        metadata: { name: 'plain', namespace: 'default' },
        spec: { hosts: [HOST], location: 'MESH_EXTERNAL', resolution: 'STATIC', ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '127.0.0.1', ports: { http: port } }] },
      },
      telemetry('logs', { accessLogging: [{ providers: [{ name: 'json' }] }] }),
    ] as never,
  });
});

after(async () => {
  await mesh.close();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

async function line(path: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 400; i++) {
    const l = (log.entries as Record<string, unknown>[]).find((e) => e['path'] === path);
    if (l !== undefined) return l;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`no access-log line for ${path}`);
}

test("a mesh call's upstream connection is logged after Node's built-in fetch and another undici sent requests of their own", async () => {
  // Requests outside the mesh first, each copy of undici its own: their messages come first on the shared channel.
  const direct = await fetch(`http://127.0.0.1:${port}/direct-fetch`);
  assert.equal(await direct.text(), 'ok');
  const other = await undici7Request(`http://127.0.0.1:${port}/direct-undici7`);
  assert.equal(await other.body.text(), 'ok');
  const r = await mesh.fetch(`http://${HOST}/through-mesh`);
  assert.equal(await r.text(), 'ok');
  const l = await line('/through-mesh');
  assert.equal(l['local'], remotes.get('/through-mesh'), 'the local end is the address the server saw');
  assert.equal(typeof l['conn'], 'number');
  // Node's fetch through the mesh's dispatcher: the mesh's own undici sends it.
  const f = await fetch(`http://${HOST}/fetch-through-mesh`, { dispatcher: mesh.dispatcher } as RequestInit);
  assert.equal(await f.text(), 'ok');
  assert.equal((await line('/fetch-through-mesh'))['local'], remotes.get('/fetch-through-mesh'));
});
