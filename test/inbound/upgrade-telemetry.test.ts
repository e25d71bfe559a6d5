/**
 * Telemetry of WebSocket upgrades on the servers the mesh makes, as Envoy reports an upgraded
 * stream: one request, logged (and counted, and its server span ended) when the upgraded
 * connection closes, with the status of the answer to the upgrade (`101`), the bytes of the whole
 * connection and its whole duration; a denied upgrade with the denial's status and details; an
 * upgrade the app never answered as `0 DC downstream_remote_disconnect`. Real `mesh.createServer`
 * and `mesh.protect` servers, raw sockets as clients, the server side's access log and the
 * `meshlet:inbound:end` messages.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { InboundEndMessage } from '../../src/core/observe.ts';
import { createMesh, ManualClock, type Mesh } from '../../src/index.ts';
import { parseHead } from '../../src/adapters/server/observe-upgrade.ts';
import { capture, T0, telemetry, until } from '../helpers/access-log.ts';

const FORMAT = '%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%';

const HEAD_101 = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n';

/** Opens a connection and sends an upgrade request on it. */
function upgradeRequest(port: number, path: string): Socket {
  const s = connect(port, '127.0.0.1');
  s.setEncoding('latin1');
  s.write(`GET ${path} HTTP/1.1\r\nHost: chat\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
  return s;
}

function received(s: Socket): { text: () => string; closed: Promise<void> } {
  let out = '';
  s.on('data', (d: string) => {
    out += d;
  });
  return { text: () => out, closed: new Promise((r) => s.on('close', () => r())) };
}

const handed: string[] = [];

/** The app's 'upgrade' listener: `/ws` answers 101 and echoes what it reads; `/silent` never answers. Both close when the caller does, as `ws` does. */
function onUpgrade(req: IncomingMessage, socket: Duplex): void {
  handed.push(req.url ?? '');
  socket.on('end', () => socket.end());
  if (req.url === '/silent') return;
  socket.write(HEAD_101);
  socket.on('data', (d: Buffer) => socket.write(d));
}

const config = [
  telemetry('mesh-default', { accessLogging: [{ providers: [{ name: 'ws-log' }] }] }),
  {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name: 'deny-admin', namespace: 'default' },
    spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] },
  },
];

for (const kind of ['mesh.createServer', 'mesh.protect'] as const) {
  describe(`WebSocket upgrades in the server side's telemetry (${kind})`, () => {
    const log = capture();
    const clock = new ManualClock(T0);
    const ends: InboundEndMessage[] = [];
    const onEnd = (m: unknown) => ends.push(m as InboundEndMessage);
    let mesh: Mesh;
    let server: Server;
    let port: number;

    before(async () => {
      subscribe('meshlet:inbound:end', onEnd);
      mesh = await createMesh({
        service: 'chat',
        clock,
        logger: log.logger,
        extensionProviders: [{ name: 'ws-log', envoyFileAccessLog: { logFormat: { text: FORMAT } } }],
        config,
      });
      server = kind === 'mesh.createServer' ? mesh.createServer((_q, res) => res.end('http')) : mesh.protect(createServer((_q, res) => res.end('http')));
      server.on('upgrade', onUpgrade);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      port = (server.address() as AddressInfo).port;
    });
    after(async () => {
      unsubscribe('meshlet:inbound:end', onEnd);
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await mesh.close();
    });

    test('an accepted upgrade is one request, reported when its connection closes: 101, the bytes both ways, the whole duration', async () => {
      log.entries.length = 0;
      ends.length = 0;
      const s = upgradeRequest(port, '/ws');
      const r = received(s);
      await until(() => r.text().startsWith('HTTP/1.1 101'), 'the 101');
      s.write('ping-1234');
      await until(() => r.text().endsWith('ping-1234'), 'the echo');
      clock.advance(2500);
      // Nothing is reported while the connection is open.
      await new Promise((res) => setImmediate(res));
      assert.equal(log.lines().length, 0);
      s.end();
      await r.closed;
      await until(() => log.lines().length === 1, 'the line');
      const [method, path, protocol, code, flags, details, received_, sent, duration] = (log.lines()[0] as string).split(' ');
      assert.deepEqual([method, path, protocol, code, flags, details, duration], ['GET', '/ws', 'HTTP/1.1', '101', '-', 'via_upstream', '2500']);
      // The request head and the frame; the 101 head and the echo.
      assert.ok(Number(received_) > 'ping-1234'.length + 100, `bytes received ${received_}`);
      assert.equal(Number(sent), HEAD_101.length + 'ping-1234'.length);
      const m = ends.at(-1) as InboundEndMessage;
      assert.equal(m.status, 101);
      assert.equal(m.responseHeaders?.upgrade, 'websocket');
      assert.equal(m.workload.service, 'chat');
    });

    test('a denied upgrade is reported with the denial: 403, rbac_access_denied_matched_policy', async () => {
      log.entries.length = 0;
      const s = upgradeRequest(port, '/admin');
      const r = received(s);
      await r.closed;
      assert.match(r.text(), /^HTTP\/1\.1 403 /);
      await until(() => log.lines().length === 1, 'the line');
      const f = (log.lines()[0] as string).split(' ');
      assert.deepEqual(f.slice(0, 6), ['GET', '/admin', 'HTTP/1.1', '403', '-', 'rbac_access_denied_matched_policy[ns[default]-policy[deny-admin]-rule[0]]']);
      assert.equal(Number(f[7]), Buffer.byteLength(r.text(), 'latin1'));
    });

    test('an upgrade the app never answered, closed by the caller: 0 DC downstream_remote_disconnect', async () => {
      log.entries.length = 0;
      handed.length = 0;
      const s = upgradeRequest(port, '/silent');
      const r = received(s);
      // Admitted and handed to the app (its listener keeps the socket) before the caller leaves.
      await until(() => handed.includes('/silent'), 'handed to the app');
      s.destroy();
      await r.closed;
      await until(() => log.lines().length === 1, 'the line');
      assert.deepEqual((log.lines()[0] as string).split(' ').slice(0, 6), ['GET', '/silent', 'HTTP/1.1', '0', 'DC', 'downstream_remote_disconnect']);
    });
  });
}

describe('parseHead: the answer to an upgrade, from the first write on its socket', () => {
  test('status and headers from a string or bytes; 0 for anything that is not a response head', () => {
    assert.deepEqual(parseHead(HEAD_101).status, 101);
    assert.deepEqual(parseHead(Buffer.from('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nX-A: 1\r\nX-A: 2\r\n\r\nbody')), { status: 400, headers: { connection: 'close', 'x-a': ['1', '2'] } });
    assert.deepEqual(parseHead('\x81\x05hello'), { status: 0, headers: {} });
    assert.deepEqual(parseHead(undefined), { status: 0, headers: {} });
  });
});
