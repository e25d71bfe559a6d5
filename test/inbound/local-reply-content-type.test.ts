/**
 * Envoy's local reply (`Utility::prepareLocalReply`) applies the filter's headers first — a local
 * rate limit's `response_headers_to_add` — and sets `content-type: text/plain` only when they set
 * none. So a rate limit refusal configured with `content-type: application/json` is answered as
 * JSON by the sidecar, on every server the mesh guards, upgrades included.
 */
import assert from 'node:assert/strict';
import { type AddressInfo, connect } from 'node:net';
import { describe, it } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { frameworks, raw } from '../helpers/frameworks.ts';
import { localRateLimitFilter } from '../helpers/rate-limit.ts';

const jsonRefusal = localRateLimitFilter({ name: 'rl', namespace: 'foo' }, 1, '60s', {
  response_headers_to_add: [{ append_action: 'OVERWRITE_IF_EXISTS_OR_ADD', header: { key: 'content-type', value: 'application/json' } }],
});
const plainRefusal = localRateLimitFilter({ name: 'rl', namespace: 'foo' }, 1, '60s', { response_headers_to_add: [{ header: { key: 'x-local-rate-limit', value: 'true' } }] });

const newMesh = (config: object) => createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: [config], clock: new ManualClock(), logger: { warn: () => {} } });

describe('the content-type of a rate limit refusal', () => {
  for (const fw of frameworks) {
    it(`${fw.name}: the one response_headers_to_add sets, else text/plain`, async () => {
      for (const [config, want] of [
        [jsonRefusal, 'application/json'],
        [plainRefusal, 'text/plain'],
      ] as const) {
        const mesh = await newMesh(config);
        const server = await fw.start(mesh);
        try {
          assert.equal((await raw(server.port, '/get')).statusCode, 200);
          const refused = await raw(server.port, '/get');
          assert.deepEqual([refused.statusCode, refused.text, refused.headers['content-type']], [429, 'local_rate_limited', want]);
        } finally {
          await server.close();
          await mesh.close();
        }
      }
    });
  }

  it('an upgrade refused by the rate limit carries one content-type: the configured one', async () => {
    const mesh = await newMesh(jsonRefusal);
    const server = mesh.createServer((_req, res) => res.end('ok'));
    server.on('upgrade', (_req, socket) => socket.end('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as AddressInfo).port;
    const upgrade = () =>
      new Promise<string>((resolve, reject) => {
        const s = connect(port, '127.0.0.1');
        let got = '';
        s.on('data', (d) => {
          got += d.toString('latin1');
        });
        s.on('close', () => resolve(got));
        s.on('error', reject);
        s.write('GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n');
        setImmediate(() => s.end());
      });
    try {
      assert.match(await upgrade(), /^HTTP\/1\.1 101 /);
      const refused = await upgrade();
      assert.match(refused, /^HTTP\/1\.1 429 /);
      assert.deepEqual(refused.match(/^content-type: .*$/gim), ['content-type: application/json']);
      assert.ok(refused.endsWith('\r\n\r\nlocal_rate_limited'), refused);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
      await mesh.close();
    }
  });
});
