/**
 * A mirrored copy (VirtualService `mirror`) is Envoy's shadow request: sent by the router through
 * an async client, outside the connection manager, so the client sidecar neither counts it in
 * `istio_requests_total{reporter="source"}` nor writes an access-log line for it (istio/istio#23496:
 * mirrored traffic has destination-side metrics only). The app's own call is reported once, to
 * its route's destination; the mirror's server reports the copy on its side.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MeterProvider, } from '@opentelemetry/sdk-metrics';
import { RequestsReader } from '../helpers/metric-reader.ts';
import { createMesh, type Mesh } from '../../src/index.ts';
import { capture, until } from '../helpers/access-log.ts';
import { call, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

describe('a mirrored copy is not the caller’s request: no source metrics, no access-log line', () => {
  let main: Upstream;
  let shadow: Upstream;
  let mesh: Mesh;
  const reader = new RequestsReader();
  const log = capture();
  before(async () => {
    main = await startUpstream('main');
    shadow = await startUpstream('shadow');
    mesh = await createMesh({
      service: 'productpage',
      identity: 'none',
      logger: log.logger,
      telemetry: { accessLog: { file: '/dev/stdout' }, metrics: { meterProvider: new MeterProvider({ readers: [reader] }) } },
      config: [
        serviceEntry('main', 'main.default.svc.cluster.local', 80, [{ port: main.port }]),
        serviceEntry('shadow', 'shadow.default.svc.cluster.local', 80, [{ port: shadow.port }]),
        virtualService('main', ['main'], [{ route: [{ destination: { host: 'main' } }], mirror: { host: 'shadow' }, mirrorPercentage: { value: 100 } }]),
      ],
    });
  });
  after(async () => {
    await mesh.close();
    await main.close();
    await shadow.close();
  });

  it('two calls: two data points and two lines, for main; the shadow still gets its copies', async () => {
    for (const p of ['/a', '/b']) assert.equal((await call(mesh, `http://main${p}`)).status, 200);
    // The copies are fire-and-forget: wait until both have been answered and have ended.
    await until(() => shadow.hits === 2 && mesh.diagnostics().mirrors.inFlight === 0, 'both copies answered and ended');
    assert.equal(mesh.diagnostics().mirrors.sent, 2);
    const rows = (await reader.requests()).filter((r) => r['reporter'] === 'source');
    assert.deepEqual(
      rows.map((r) => [r['destination_service'], r['response_code'], r['value']]),
      [['main.default.svc.cluster.local', '200', 2]],
    );
    const lines = log.lines();
    assert.equal(lines.length, 2, lines.join('\n'));
    for (const l of lines) assert.match(l, /outbound\|80\|\|main\.default\.svc\.cluster\.local/);
  });
});
