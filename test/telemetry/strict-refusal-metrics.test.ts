/**
 * A plaintext request that PeerAuthentication STRICT refuses on a server the app made itself
 * (`mesh.express()` on `app.listen()`: the mesh refuses per request and closes the connection)
 * is what a sidecar sees as a connection no filter chain of its inbound listener accepts: Envoy
 * closes it before any HTTP connection manager runs, so the istio_stats filter reports nothing —
 * no `istio_requests_total` — and only the listener's access log (Istio's `NR` filter,
 * `pilot/pkg/networking/core/accesslog.go` `listenerAccessLogFilter`) writes a line,
 * `NR filter_chain_not_found`.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import express from 'express';
import { createMesh } from '../../src/index.ts';
import { capture, until } from '../helpers/access-log.ts';
import { sdk } from '../helpers/metric-reader.ts';

describe('STRICT refusing a plaintext request on a server the app made', () => {
  it('logs NR filter_chain_not_found and records no request metric', async () => {
    const m = sdk();
    const log = capture();
    const strict = { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'strict', namespace: 'default' }, spec: { mtls: { mode: 'STRICT' } } };
    const mesh = await createMesh({ service: 'reviews', logger: log.logger, telemetry: { accessLog: { file: '/dev/stdout' }, metrics: { meterProvider: m.provider } }, config: [strict] });
    const app = express();
    app.use(mesh.express());
    app.get('/', (_req, res) => {
      res.send('served');
    });
    const server = app.listen(0, '127.0.0.1');
    try {
      await new Promise((r) => server.once('listening', r));
      const { port } = server.address() as AddressInfo;
      await assert.rejects(fetch(`http://127.0.0.1:${port}/`));
      await until(() => log.lines().length === 1, 'the access-log line');
      assert.match(log.lines()[0] ?? '', / 0 NR filter_chain_not_found /);
      assert.deepEqual(await m.points('istio_requests_total'), []);
    } finally {
      server.close();
      await mesh.close();
      await m.shutdown();
    }
  });
});
