/**
 * `mesh.close()` with registrations: the gRPC ports `mesh.grpc.bind` opened tell their callers to
 * go while they still accept, during `drainMs`, as the HTTP/2 servers the mesh makes do and as an
 * Envoy listener in its graceful drain does: a connection open when the drain starts gets a
 * GOAWAY at once (its calls in flight finish), a connection made during the drain gets its first
 * call served, then a GOAWAY. Then the port closes within `closeTimeoutMs`.
 */
import assert from 'node:assert/strict';
import { type ClientHttp2Session, connect as connectH2 } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import { createMesh } from '../../src/index.ts';
import { quietLogger, startTestControlPlane, type TestControlPlane } from '../control-plane/client-helpers.ts';
import { EchoClient, echo, grpc } from '../helpers/grpc.ts';
import { until } from '../helpers/until.ts';

/** A unary Echo call on a raw HTTP/2 session: the reply's status. */
function call(h2: ClientHttp2Session, text: string): Promise<string | undefined> {
  const def = EchoClient.service.Unary as grpc.MethodDefinition<{ text: string }, unknown>;
  const msg = def.requestSerialize({ text });
  const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), msg]);
  framed.writeUInt32BE(msg.length, 1);
  return new Promise((resolve, reject) => {
    const s = h2.request({ ':method': 'POST', ':path': '/meshlet.test.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers' });
    s.on('error', reject);
    s.on('trailers', (t) => resolve(t['grpc-status'] as string | undefined));
    s.resume();
    s.end(framed);
  });
}

describe('mesh.close() with registrations: gRPC ports bound through the mesh send GOAWAY during drainMs', () => {
  let t: TestControlPlane;
  before(async () => {
    t = await startTestControlPlane({});
  });
  after(async () => {
    await t.close();
  });

  it('an open connection gets a GOAWAY when the drain starts; a new one is served, then gets its GOAWAY; the port closes after drainMs', async () => {
    const clock = new ManualClock();
    const token = await t.cp.mintToken({ service: 'reviews', namespace: 'default' });
    const mesh = await createMesh({ service: 'reviews', controlPlane: t.cp.url, token, identity: 'none', drainMs: 1000, clock, logger: quietLogger });
    const server = new grpc.Server();
    server.addService(EchoClient.service, echo('a') as never);
    const port = await mesh.grpc.bind(server, '127.0.0.1:0');
    await mesh.register({ ports: { grpc: port }, address: '127.0.0.1' });
    const open = connectH2(`http://127.0.0.1:${port}`);
    const fresh: ClientHttp2Session[] = [];
    try {
    assert.equal(await call(open, 'before'), '0');
    let openGoaway = false;
    open.once('goaway', () => (openGoaway = true));
    const closing = mesh.close();
    await until(() => t.cp.status().registered === 0, 'deregistered');
    await until(() => openGoaway, 'the open connection told to go');
    // Deregistered, drainMs running: a new connection is still served, and told to go.
    const late = connectH2(`http://127.0.0.1:${port}`);
    fresh.push(late);
    let freshGoaway = false;
    late.once('goaway', () => (freshGoaway = true));
    assert.equal(await call(late, 'during'), '0');
    await until(() => freshGoaway, 'the new connection told to go after its call');
    let closed = false;
    void closing.then(() => (closed = true));
    await until(() => {
      clock.advance(1000);
      return closed;
    }, 'mesh.close()');
    } finally {
      open.destroy();
      for (const f of fresh) f.destroy();
      server.forceShutdown();
      const done = mesh.close();
      for (let i = 0; i < 5; i++) clock.advance(1000);
      await done;
    }
  });
});
