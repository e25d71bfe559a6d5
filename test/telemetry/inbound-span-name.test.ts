/**
 * The server span's name of a workload several Services select. A sidecar's inbound span is named
 * by its inbound route's decorator, which istiod builds from the port's inbound chain: the first
 * of the workload's service targets on that target port — oldest first, then by host (the same
 * service the stats filter reports as `destination_service`) — as `<host>:<service port>/*`
 * (pilot/pkg/networking/core/httproute.go buildSidecarInboundHTTPRouteConfig,
 * telemetry.TraceOperation; listener_inbound.go getFilterChainsByServicePort keeps the first per
 * target port). So the span and the metrics name the same service.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { request } from 'undici';
import { createMesh } from '../../src/index.ts';
import { RequestsReader } from '../helpers/metric-reader.ts';
import { exporter, finished, server, useTracingSdk } from '../helpers/tracing-policy.ts';

useTracingSdk();

const service = (name: string, created: string, port: number, targetPort: number) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'shop', creationTimestamp: created },
  spec: { selector: { app: 'web' }, ports: [{ name: 'http', port, targetPort }] },
});

describe('the server span of a workload several Services select', () => {
  it('is named <oldest Service>:<its service port>/*, the service destination_service reports, and follows a reloaded config', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshlet-spanname-'));
    const reader = new RequestsReader();
    const mesh = await createMesh({
      service: 'web',
      namespace: 'shop',
      labels: { app: 'web' },
      identity: 'none',
      config: dir,
      logger: { warn: () => undefined },
      telemetry: { tracing: { samplingPercentage: 100 }, metrics: { meterProvider: new MeterProvider({ readers: [reader] }) } },
    });
    const listening = createServer(mesh.handler((_req, res) => res.end('ok')));
    await new Promise<void>((r) => listening.listen(0, '127.0.0.1', r));
    const port = (listening.address() as AddressInfo).port;
    const get = async (): Promise<string | undefined> => {
      exporter.reset();
      const r = await request(`http://127.0.0.1:${port}/`, { headers: { host: 'web.shop.svc.cluster.local' } });
      await r.body.dump();
      assert.equal(r.statusCode, 200);
      return server(await finished(1))?.name;
    };
    try {
      // No Service reaches the port: the `service` option's host and the local port.
      assert.equal(await get(), `web.shop.svc.cluster.local:${port}/*`);
      // `web-v1` (port 8080) is older than `web` (port 80); both reach the local port.
      writeFileSync(join(dir, 'services.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [service('web', '2024-06-01T00:00:00Z', 80, port), service('web-v1', '2024-01-01T00:00:00Z', 8080, port)] }));
      assert.equal(await mesh.reload(), true);
      assert.equal(await get(), 'web-v1.shop.svc.cluster.local:8080/*');
      // `web-v1` is gone: `web`, on its own service port.
      writeFileSync(join(dir, 'services.json'), JSON.stringify(service('web', '2024-06-01T00:00:00Z', 80, port)));
      assert.equal(await mesh.reload(), true);
      assert.equal(await get(), 'web.shop.svc.cluster.local:80/*');
      const dst = (await reader.requests()).filter((p) => p['reporter'] === 'destination');
      assert.deepEqual(dst.map((p) => [p['destination_service'], p['value']]).sort(), [
        ['web-v1.shop.svc.cluster.local', 1],
        ['web.shop.svc.cluster.local', 2],
      ]);
    } finally {
      await new Promise<void>((r) => listening.close(() => r()));
      await mesh.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
