/**
 * An upgrade request answered without switching (a non-101 status) through `mesh.dispatcher`.
 * Envoy's connection manager keeps a response's `connection` and `upgrade` when the request was an
 * upgrade and the response is one by its headers — `connection` naming `upgrade`, and an `upgrade`
 * header — whatever its status, and takes both off otherwise
 * (source/common/http/conn_manager_utility.cc `mutateResponseHeaders`:
 * `Utility::isUpgrade(*request_headers) && Utility::isUpgrade(response_headers)`). So a 426 that
 * names the protocol to switch to reaches the app as sent; the other hop-by-hop headers go.
 * A raw upstream writes the exact bytes; the app's handler reads the head undici hands it.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { serviceEntry } from '../helpers/upstreams.ts';

/** Each request's answer: the raw head lines after the status line (each path its own). */
const ANSWERS: Record<string, string> = {
  '/426': 'HTTP/1.1 426 Upgrade Required\r\nConnection: Upgrade, Keep-Alive\r\nUpgrade: websocket\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nno',
  '/no-upgrade-header': 'HTTP/1.1 400 Bad Request\r\nConnection: Upgrade\r\nContent-Length: 2\r\n\r\nno',
  '/plain': 'HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nUpgrade: websocket\r\nContent-Length: 2\r\n\r\nok',
};

/** Sends a request through the dispatcher as undici's upgrade() would (`upgrade` set), and reads the head the app's handler gets. */
function headOf(mesh: Mesh, path: string, upgrade: string | undefined): Promise<{ status: number; headers: Record<string, string> }> {
  return new Promise((resolve, reject) => {
    let got: { status: number; headers: Record<string, string> } | undefined;
    mesh.dispatcher.dispatch(
      { origin: 'http://svc', path, method: 'GET', ...(upgrade === undefined ? {} : { upgrade }) },
      {
        onConnect: () => undefined,
        onHeaders: (status: number, raw: Buffer[]) => {
          const headers: Record<string, string> = {};
          for (let i = 0; i + 1 < raw.length; i += 2) headers[String(raw[i]).toLowerCase()] = String(raw[i + 1]);
          got = { status, headers };
          return true;
        },
        onData: () => true,
        onComplete: () => (got === undefined ? reject(new Error('no head')) : resolve(got)),
        onError: reject,
        onUpgrade: () => reject(new Error('upgraded')),
      } as never,
    );
  });
}

describe('mesh.dispatcher: an upgrade request answered without 101', () => {
  let server: Server;
  let mesh: Mesh;
  const sockets = new Set<Socket>();
  before(async () => {
    server = createServer((socket) => {
      sockets.add(socket);
      let buf = '';
      socket.on('data', (d) => {
        buf += d.toString('latin1');
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        const path = buf.split(' ')[1] ?? '/';
        buf = buf.slice(end + 4);
        socket.write(ANSWERS[path] ?? 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    mesh = await createMesh({ service: 'client', config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: (server.address() as AddressInfo).port }])] });
  });
  after(async () => {
    await mesh.close();
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });

  it('a 426 naming the upgrade keeps connection and upgrade (the other hop-by-hop headers go)', async () => {
    const h = await headOf(mesh, '/426', 'websocket');
    assert.equal(h.status, 426);
    assert.deepEqual([h.headers.connection, h.headers.upgrade, h.headers['keep-alive']], ['Upgrade, Keep-Alive', 'websocket', undefined]);
  });

  it('a response that is no upgrade by its headers loses both, as any response does', async () => {
    const h = await headOf(mesh, '/no-upgrade-header', 'websocket');
    assert.deepEqual([h.status, h.headers.connection, h.headers.upgrade], [400, undefined, undefined]);
    const p = await headOf(mesh, '/plain', 'websocket');
    assert.deepEqual([p.status, p.headers.connection, p.headers.upgrade], [200, undefined, undefined]);
  });

  it('a request that is no upgrade: the same 426 loses both', async () => {
    const h = await headOf(mesh, '/426', undefined);
    assert.deepEqual([h.status, h.headers.connection, h.headers.upgrade], [426, undefined, undefined]);
  });
});
