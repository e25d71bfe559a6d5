/**
 * `%BYTES_RECEIVED%` (and the `request_size` the metrics and spans read from the same
 * `meshlet:call:end` message) counts every byte of the request body the caller sent, as Envoy
 * counts what its downstream sent: a streamed upload larger than `retryBufferBytes` too — the part
 * past the retry buffer streams straight through, unrecorded, but it was still received — whether
 * the attempt reads it or the mesh reads it ahead (a route timeout); and a typed-array body other
 * than a Uint8Array (a `Uint16Array`) by its bytes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { createMesh, type Mesh } from '../../src/index.ts';
import { capture, until } from '../helpers/access-log.ts';
import { serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

const CAP = 1000;
const SIZE = 10 * 1024;

/** SIZE bytes in 1 KiB chunks, as an async generator (a streamed body). */
async function* chunks(): AsyncGenerator<Buffer> {
  for (let i = 0; i < SIZE; i += 1024) yield Buffer.alloc(1024, 97);
}

describe('the request bytes of a call', () => {
  let up: Upstream;
  let mesh: Mesh;
  const log = capture();
  before(async () => {
    up = await startUpstream('up');
    mesh = await createMesh({
      service: 'client',
      retryBufferBytes: CAP,
      logger: log.logger,
      telemetry: { accessLog: { file: '/dev/stdout', format: '%REQ(:PATH)% %BYTES_RECEIVED%\n' } },
      config: [
        serviceEntry('up', 'up.default.svc.cluster.local', 80, [{ port: up.port }]),
        virtualService('up', ['up'], [
          // A route timeout makes the mesh read the body ahead of the attempt.
          { match: [{ uri: { prefix: '/ahead' } }], route: [{ destination: { host: 'up' } }], timeout: '30s' },
          { route: [{ destination: { host: 'up' } }] },
        ]),
      ],
    });
  });
  after(async () => {
    await mesh.close();
    await up.close();
  });

  test('a streamed body over retryBufferBytes counts in full, read by the attempt or read ahead', async () => {
    for (const path of ['/stream', '/ahead']) {
      const r = await request(`http://up${path}`, { method: 'POST', body: chunks() as never, dispatcher: mesh.dispatcher });
      assert.equal(r.statusCode, 200);
      await r.body.text();
    }
    await until(() => log.lines().length === 2, 'both calls to be logged');
    assert.deepEqual(
      up.seen.map((s) => s.body.length),
      [SIZE, SIZE],
      'the upstream got every byte',
    );
    assert.deepEqual(log.lines(), [`/stream ${SIZE}`, `/ahead ${SIZE}`]);
  });

  test('a Uint16Array body counts its bytes', async () => {
    const before = log.lines().length;
    const r = await request('http://up/u16', { method: 'POST', body: new Uint16Array(50) as never, dispatcher: mesh.dispatcher });
    await r.body.text();
    await until(() => log.lines().length === before + 1, 'the call to be logged');
    assert.equal(log.lines().at(-1), '/u16 100');
  });
});
