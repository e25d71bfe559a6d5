/**
 * An upgraded call (a WebSocket through `mesh.dispatcher`) is a request in flight on its endpoint
 * until its socket closes, as Envoy keeps an upgraded stream active: least-request balancing sees
 * it (`mesh.diagnostics()`'s `active`), and so do the pool limits.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { describe, it } from 'node:test';
import { WebSocket } from 'undici';
import { createMesh } from '../../src/index.ts';
import { until } from '../helpers/until.ts';
import { serviceEntry } from '../helpers/upstreams.ts';

describe('an upgraded call', () => {
  it('counts as in flight on its endpoint until its socket closes', async () => {
    // A minimal WebSocket server: the RFC 6455 handshake, then one text frame; a frame from the client closes it.
    const server = createServer();
    const sockets = new Set<Socket>();
    server.on('upgrade', (req, socket: Socket) => {
      sockets.add(socket);
      const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      socket.write(Buffer.concat([Buffer.from([0x81, 5]), Buffer.from('hello')]));
      socket.on('data', () => socket.destroy());
      socket.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const m = await createMesh({ service: 'client', config: [serviceEntry('ws', 'ws.default.svc.cluster.local', 80, [{ port }])] });
    const active = () => m.diagnostics().clusters.find((c) => c.name.includes('ws.default'))?.endpoints[0]?.active;
    const ws = new WebSocket('ws://ws.default.svc.cluster.local/chat', { dispatcher: m.dispatcher });
    try {
      const closed = new Promise<void>((r) => {
        ws.onclose = () => r();
      });
      ws.onerror = () => undefined;
      const message = await new Promise<string>((resolve) => {
        ws.onmessage = (e) => resolve(String(e.data));
      });
      assert.equal(message, 'hello');
      assert.equal(active(), 1, 'the open WebSocket is in flight');
      ws.close();
      await closed;
      await until(() => active() === 0, 'the closed WebSocket to leave the endpoint');
      assert.equal(active(), 0);
    } finally {
      ws.close();
      for (const s of sockets) s.destroy();
      await m.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
