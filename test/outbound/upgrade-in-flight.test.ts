/**
 * An upgraded call (a WebSocket through `mesh.dispatcher`) is a request in flight on its endpoint
 * until its socket closes, as Envoy keeps an upgraded stream active: least-request balancing sees
 * it (`mesh.diagnostics()`'s `active`), and so do the pool limits. In telemetry it is one call,
 * reported (access log, metrics, client span) when its connection closes, with the status `101`,
 * the session's duration and the bytes both ways, as Envoy reports an upgraded stream.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { describe, it } from 'node:test';
import { WebSocket } from 'undici';
import { createMesh, ManualClock } from '../../src/index.ts';
import { capture, T0, telemetry } from '../helpers/access-log.ts';
import { until } from '../helpers/until.ts';
import { serviceEntry } from '../helpers/upstreams.ts';

/** A minimal WebSocket server: the RFC 6455 handshake, then one text frame; a frame from the client closes it. */
async function wsServer() {
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
  return {
    port,
    close: async () => {
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('an upgraded call', () => {
  it('counts as in flight on its endpoint until its socket closes', async () => {
    const { port, close } = await wsServer();
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
      await m.close();
      await close();
    }
  });

  it('is one call in telemetry, reported when its connection closes: 101, the session’s duration, the bytes both ways', async () => {
    const { port, close } = await wsServer();
    const log = capture();
    const clock = new ManualClock(T0);
    const m = await createMesh({
      service: 'client',
      clock,
      logger: log.logger,
      extensionProviders: [{ name: 'l', envoyFileAccessLog: { logFormat: { text: '%REQ(:AUTHORITY)% %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_SENT% %BYTES_RECEIVED% %DURATION%' } } }],
      config: [serviceEntry('ws', 'ws.default.svc.cluster.local', 80, [{ port }]), telemetry('mesh-default', { accessLogging: [{ providers: [{ name: 'l' }] }] })],
    });
    const ws = new WebSocket('ws://ws.default.svc.cluster.local/chat', { dispatcher: m.dispatcher });
    try {
      const closed = new Promise<void>((r) => {
        ws.onclose = () => r();
      });
      ws.onerror = () => undefined;
      await new Promise<void>((resolve) => {
        ws.onmessage = () => resolve();
      });
      clock.advance(4000);
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(log.lines(), [], 'nothing while the WebSocket is open');
      ws.send('bye');
      await closed;
      await until(() => log.lines().length === 1, 'the line');
      const [authority, code, flags, sent, received, duration] = (log.lines()[0] as string).split(' ');
      assert.deepEqual([authority, code, flags, duration], ['ws.default.svc.cluster.local', '101', '-', '4000']);
      // Envoy's %BYTES_SENT% on the client side is what the upstream sent (the 'hello' frame); %BYTES_RECEIVED% what the app sent (its masked 'bye' frame: 2 + 4 + 3 bytes).
      assert.equal(Number(sent), 7);
      assert.ok(Number(received) >= 9, `bytes received ${received}`);
    } finally {
      ws.close();
      await m.close();
      await close();
    }
  });
});
