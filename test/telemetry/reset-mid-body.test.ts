/**
 * An upstream that fails after the response started — its HTTP/1.1 connection closes mid-body,
 * its HTTP/2 stream is reset mid-body — fails the caller's body (never a silent truncation) and is
 * reported as Envoy's router reports a late reset: the status the caller got, the flag of the
 * reset reason (UC connection termination, UR remote reset) and `%RESPONSE_CODE_DETAILS%`
 * `upstream_reset_after_response_started{<reason>}` — not `via_upstream` with no flag. A call to
 * a host outside the mesh (PassthroughCluster) too, whose body fails with the transport's error
 * rather than a local reply's "reset before headers" text.
 */
import assert from 'node:assert/strict';
import { createServer as createH2Server, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { createMesh, type Mesh } from '../../src/index.ts';
import { capture, until } from '../helpers/access-log.ts';
import { serviceEntry, startUpstream, type Upstream } from '../helpers/upstreams.ts';

describe('an upstream that fails mid-body', () => {
  let h1: Upstream;
  const h2 = createH2Server();
  let mesh: Mesh;
  const log = capture();
  before(async () => {
    // The head and a first chunk, then the connection goes away.
    h1 = await startUpstream('h1', (q, res) => {
      res.writeHead(200);
      res.write('partial', () => q.socket.destroy());
    });
    // The head and a first chunk, then RST_STREAM (INTERNAL_ERROR).
    h2.on('stream', (s: ServerHttp2Stream) => {
      s.on('error', () => undefined);
      s.respond({ ':status': 200 });
      s.write('partial', () => s.destroy(new Error('mid-body failure')));
    });
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
    const h2Entry = serviceEntry('h2', 'h2.default.svc.cluster.local', 80, [{ port: (h2.address() as AddressInfo).port }]) as { spec: { ports: { protocol: string }[] } };
    (h2Entry.spec.ports[0] as { protocol: string }).protocol = 'HTTP2';
    mesh = await createMesh({
      service: 'client',
      logger: log.logger,
      telemetry: { accessLog: { file: '/dev/stdout', format: '%REQ(:AUTHORITY)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\n' } },
      config: [serviceEntry('h1', 'h1.default.svc.cluster.local', 80, [{ port: h1.port }]), h2Entry],
    });
  });
  after(async () => {
    await mesh.close();
    await h1.close();
    h2.close();
  });

  test('the body fails, and the call is reported with the reset flag and details', async () => {
    const passthrough = `127.0.0.1:${h1.port}`;
    const errors: string[] = [];
    for (const authority of ['h1', 'h2', passthrough]) {
      const r = await request(`http://${authority}/`, { dispatcher: mesh.dispatcher });
      assert.equal(r.statusCode, 200);
      const e = await r.body.text().then(
        () => undefined,
        (err: Error) => err,
      );
      assert.ok(e instanceof Error, `${authority}: the body fails`);
      errors.push(e.message);
    }
    assert.ok(!errors.some((m) => m.includes('before headers')), `no "before headers" error after the headers: ${errors.join('; ')}`);
    await until(() => log.lines().length === 3, 'the three calls to be logged');
    assert.deepEqual(log.lines(), [
      'h1 200 UC upstream_reset_after_response_started{connection_termination}',
      'h2 200 UR upstream_reset_after_response_started{remote_reset}',
      `${passthrough} 200 UC upstream_reset_after_response_started{connection_termination}`,
    ]);
  });
});
