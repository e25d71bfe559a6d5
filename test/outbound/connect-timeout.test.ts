/**
 * DestinationRule `connectionPool.tcp.connectTimeout` on HTTP calls: a connection that does not
 * come up in time (here an endpoint that accepts TCP but never answers the TLS handshake, which
 * Envoy's connect timer also covers: its transport socket raises Connected after the handshake)
 * fails as Envoy's pool fails it — PoolFailureReason::Timeout, which the router words as the reset
 * reason `connection timeout` (router_test.cc PoolFailureDueToConnectTimeout:
 * `upstream_reset_before_response_started{connection_timeout…}`), flag UF — not as a refused
 * connection (`remote connection failure`).
 */
import assert from 'node:assert/strict';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { it } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { capture, telemetry, until } from '../helpers/access-log.ts';
import { call, destinationRule, serviceEntry, virtualService } from '../helpers/upstreams.ts';

it('a connect that times out (TLS handshake never answered) is 503 URX,UF, reset reason `connection timeout`, details {connection_timeout}', async () => {
  const sockets: Socket[] = [];
  const hole = createServer((s) => {
    sockets.push(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => hole.listen(0, '127.0.0.1', r));
  const port = (hole.address() as AddressInfo).port;
  const log = capture();
  const host = 'slow.default.svc.cluster.local';
  const mesh = await createMesh({
    service: 'client',
    logger: log.logger,
    extensionProviders: [{ name: 'details', envoyFileAccessLog: { logFormat: { text: '%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %UPSTREAM_TRANSPORT_FAILURE_REASON%' } } }],
    config: [
      serviceEntry('slow', host, 80, [{ port }]),
      destinationRule('slow', host, { trafficPolicy: { connectionPool: { tcp: { connectTimeout: '100ms' } }, tls: { mode: 'SIMPLE', sni: 'slow.example' } } }),
      virtualService('slow', [host], [{ route: [{ destination: { host } }], retries: { attempts: 1, retryOn: 'connect-failure' } }]),
      telemetry('mesh-default', { accessLogging: [{ providers: [{ name: 'details' }] }] }),
    ],
  });
  try {
    const r = await call(mesh, `http://${host}/`);
    assert.equal(r.status, 503);
    assert.equal(r.flags, 'URX,UF');
    assert.equal(r.body, 'upstream connect error or disconnect/reset before headers. retried and the latest reset reason: connection timeout');
    assert.equal(sockets.length, 2, 'the first attempt and its retry each opened a connection');
    await until(() => log.lines().length === 1, 'the access log line');
    assert.deepEqual(log.lines(), ['503 URX,UF upstream_reset_before_response_started{connection_timeout} -']);
  } finally {
    for (const s of sockets) s.destroy();
    hole.close();
    await mesh.close();
  }
});
