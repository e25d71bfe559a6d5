/**
 * An upstream's hop-by-hop response headers (`connection`, `keep-alive`, `proxy-connection`,
 * `transfer-encoding`, `upgrade` on a response that is no upgrade) belong to the mesh's
 * connection to it, not to the app: Envoy's connection manager removes them
 * (ConnectionManagerUtility::mutateResponseHeaders), and so does meshlet before mesh.fetch or
 * mesh.dispatcher hands the response over. undici still acts on `connection: close` for its own
 * connection: the next call opens a new one. An upgrade (WebSocket) keeps its `connection` and
 * `upgrade` both ways and loses the rest — the app's `proxy-connection` on the request (any
 * request), the upstream's `keep-alive` / `proxy-connection` on its 101 — as Envoy's
 * mutateRequestHeaders / mutateResponseHeaders treat an upgrade. A real upstream over real sockets.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { request, upgrade } from 'undici';
import { createMesh } from '../../src/index.ts';
import { serviceEntry } from '../helpers/upstreams.ts';

const HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade'];

describe('hop-by-hop response headers', () => {
  it('are removed before the app sees the response (fetch and dispatcher); connection: close still closes the upstream connection', async () => {
    let connections = 0;
    const server = createServer((req, res) => {
      // Chunked (no content-length), with every hop-by-hop header an upstream could send.
      res.writeHead(200, { 'content-type': 'text/plain', connection: 'close', 'keep-alive': 'timeout=5', 'proxy-connection': 'close', upgrade: 'h2c', 'x-app': 'kept' });
      res.write('hello ');
      res.end(req.url);
    });
    server.on('connection', () => connections++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const mesh = await createMesh({ service: 'client', logger: { warn: () => {} }, config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port }])] });
    try {
      const res = await mesh.fetch('http://svc/fetch');
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'hello /fetch');
      assert.equal(res.headers.get('x-app'), 'kept');
      for (const h of HOP) assert.equal(res.headers.get(h), null, `fetch: ${h}: ${res.headers.get(h)}`);
      const r = await request('http://svc/dispatcher', { dispatcher: mesh.dispatcher });
      assert.equal(r.statusCode, 200);
      assert.equal(await r.body.text(), 'hello /dispatcher');
      assert.equal(r.headers['x-app'], 'kept');
      for (const h of HOP) assert.equal(r.headers[h], undefined, `dispatcher: ${h}: ${String(r.headers[h])}`);
      // Each answer said connection: close, and undici honoured it: two calls, two connections.
      assert.equal(connections, 2);
    } finally {
      await mesh.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('an upgrade keeps connection and upgrade and loses the rest, both ways; the app’s proxy-connection never reaches the upstream', async () => {
    const seen: string[][] = [];
    const server = createServer((req, res) => {
      seen.push(req.rawHeaders);
      res.end('plain');
    });
    server.on('upgrade', (req, socket) => {
      seen.push(req.rawHeaders);
      socket.end('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nX-App: kept\r\n\r\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const mesh = await createMesh({ service: 'client', logger: { warn: () => {} }, config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port }])] });
    try {
      const r = await request('http://svc/plain', { dispatcher: mesh.dispatcher, headers: { 'proxy-connection': 'keep-alive', 'x-a': '1' } });
      assert.equal(await r.body.text(), 'plain');
      const u = await upgrade('http://svc/ws', { dispatcher: mesh.dispatcher, protocol: 'websocket', headers: { 'proxy-connection': 'keep-alive', 'x-a': '1' } });
      u.socket.destroy();
      assert.equal(seen.length, 2);
      for (const raw of seen) {
        const names = raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
        assert.ok(names.includes('x-a'));
        assert.ok(!names.includes('proxy-connection'), `the upstream got proxy-connection: ${raw.join(' ')}`);
      }
      const upgradeNames = (seen[1] ?? []).filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
      assert.ok(upgradeNames.includes('connection') && upgradeNames.includes('upgrade'), 'the upgrade request keeps connection and upgrade');
      assert.equal(u.headers.connection, 'Upgrade');
      assert.equal(u.headers.upgrade, 'websocket');
      assert.equal(u.headers['x-app'], 'kept');
      assert.equal(u.headers['keep-alive'], undefined);
      assert.equal(u.headers['proxy-connection'], undefined);
    } finally {
      await mesh.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
