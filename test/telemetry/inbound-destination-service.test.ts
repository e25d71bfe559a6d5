/**
 * `destination_service` on the server side (`reporter="destination"`) of a workload that several
 * Services select. Istio's sidecar never reads the request's Host there: istiod sets
 * `disable_host_header_fallback` for the SidecarInbound class (pilot/pkg/model/telemetry.go
 * `disableHostHeaderFallback`), and the stats filter reports the inbound cluster's
 * `istio.services[0]` (istio/proxy istio_stats.cc `populatePeerInfo`), which istiod fills with
 * every Service selecting the pod on that port (pilot/pkg/networking/core/cluster_builder.go
 * `addTelemetryMetadata`), ordered oldest first, then by host (pilot/pkg/model/context.go
 * `SetServiceTargets`). So every request reports the same, oldest Service — whatever Service the
 * caller named, in any Host form, and a hostile Host adds no series.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { request } from 'undici';
import { createMesh, type Mesh } from '../../src/index.ts';
import { type Echo, EchoClient, grpc, unary } from '../helpers/grpc.ts';
import { startMeshGrpcServer } from '../helpers/grpc-server.ts';
import { RequestsReader, sdk } from '../helpers/metric-reader.ts';
import { call, serviceEntry } from '../helpers/upstreams.ts';

const service = (name: string, created: string, selector: Record<string, string>, targetPort: number) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'shop', creationTimestamp: created },
  spec: { selector, ports: [{ name: 'http', port: 8080, targetPort }] },
});

describe('destination_service on the server side of a workload several Services select', () => {
  let server: Mesh;
  let client: Mesh;
  let listening: Server;
  let other: Server;
  let port: number;
  let otherPort: number;
  const serverReader = new RequestsReader();
  const clientReader = new RequestsReader();
  before(async () => {
    listening = createServer();
    other = createServer();
    await new Promise<void>((r) => listening.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    port = (listening.address() as AddressInfo).port;
    otherPort = (other.address() as AddressInfo).port;
    server = await createMesh({
      // The option names `web`, but `web-v1` is the older Service: istiod puts it first.
      service: 'web',
      workloadName: 'web',
      namespace: 'shop',
      labels: { app: 'web' },
      identity: 'none',
      config: [
        service('web', '2024-06-01T00:00:00Z', { app: 'web' }, port),
        service('web-v1', '2024-01-01T00:00:00Z', { app: 'web' }, port),
        // Selects another workload: never this one's destination_service.
        service('api', '2023-01-01T00:00:00Z', { app: 'api' }, port),
      ],
      telemetry: { metrics: { meterProvider: new MeterProvider({ readers: [serverReader] }) } },
    });
    const app = server.handler((_req, res) => res.end('ok'));
    listening.on('request', app);
    other.on('request', app);
    client = await createMesh({
      service: 'sleep',
      namespace: 'shop',
      labels: { app: 'sleep' },
      identity: 'none',
      config: [serviceEntry('web', 'web.shop.svc.cluster.local', 8080, [{ port }]), serviceEntry('web-v1', 'web-v1.shop.svc.cluster.local', 8080, [{ port }])],
      telemetry: { metrics: { meterProvider: new MeterProvider({ readers: [clientReader] }) } },
    });
  });
  after(async () => {
    await client.close();
    await new Promise<void>((r) => listening.close(() => r()));
    await new Promise<void>((r) => other.close(() => r()));
    await server.close();
  });

  it('the oldest Service selecting the workload on that port, whatever the Host; a hostile Host adds no series', async () => {
    assert.equal((await call(client, 'http://web-v1.shop.svc.cluster.local:8080/a')).status, 200);
    assert.equal((await call(client, 'http://web.shop.svc.cluster.local:8080/b')).status, 200);
    // Callers outside the mesh, with every form of Host.
    for (const host of ['web-v1', 'web-v1:8080', 'web-v1.shop.svc.cluster.local', `127.0.0.1:${port}`, 'api.shop.svc.cluster.local', 'evil-1.example', 'evil-2.example']) {
      const r = await request(`http://127.0.0.1:${port}/c`, { headers: { host } });
      await r.body.dump();
      assert.equal(r.statusCode, 200);
    }
    const dst = (await serverReader.requests()).filter((p) => p['reporter'] === 'destination');
    assert.deepEqual(
      dst.map((p) => [p['source_workload'], p['destination_service'], p['destination_service_name'], p['destination_service_namespace'], p['value']]).sort(),
      [
        ['sleep', 'web-v1.shop.svc.cluster.local', 'web-v1', 'shop', 2],
        ['unknown', 'web-v1.shop.svc.cluster.local', 'web-v1', 'shop', 7],
      ],
    );
    // The caller reports what it called (its cluster's service), as the proxy does.
    const src = (await clientReader.requests()).filter((p) => p['reporter'] === 'source');
    assert.deepEqual(src.map((p) => p['destination_service']).sort(), ['web-v1.shop.svc.cluster.local', 'web.shop.svc.cluster.local']);
  });

  it("a port no Service reaches: the `service` option's host", async () => {
    const r = await request(`http://127.0.0.1:${otherPort}/d`, { headers: { host: 'web-v1' } });
    await r.body.dump();
    const dst = (await serverReader.requests()).filter((p) => p['reporter'] === 'destination' && p['destination_service'] !== 'web-v1.shop.svc.cluster.local');
    assert.deepEqual(
      dst.map((p) => [p['destination_service'], p['destination_service_name'], p['value']]),
      [['web.shop.svc.cluster.local', 'web', 1]],
    );
  });
});

describe('destination_service on the server side of a gRPC server, whatever the :authority', () => {
  it('the oldest Service selecting it on that port, from the config as reloaded', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshlet-destsvc-'));
    const m = sdk();
    const mesh = await createMesh({ service: 'echo', namespace: 'shop', labels: { app: 'echo' }, identity: 'none', config: dir, logger: { warn: () => undefined }, telemetry: { metrics: { meterProvider: m.provider } } });
    const s = await startMeshGrpcServer(mesh);
    const clients: grpc.Client[] = [];
    try {
      // The Services, known once the server has its port: `echo-v1` is the older.
      writeFileSync(join(dir, 'services.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [service('echo', '2024-06-01T00:00:00Z', { app: 'echo' }, s.port), service('echo-v1', '2024-01-01T00:00:00Z', { app: 'echo' }, s.port)] }));
      assert.equal(await mesh.reload(), true);
      for (const authority of [undefined, 'echo-v1:8080', 'echo.shop.svc.cluster.local', 'evil.example']) {
        const c = new EchoClient(`127.0.0.1:${s.port}`, grpc.credentials.createInsecure(), authority === undefined ? {} : { 'grpc.default_authority': authority });
        clients.push(c);
        const r = await unary(c as unknown as Echo, { text: 'hi' });
        assert.equal(r.error, undefined);
      }
      const dst = (await m.points('istio_requests_total')).filter((p) => p.attributes['reporter'] === 'destination');
      assert.deepEqual(
        dst.map((p) => [p.attributes['request_protocol'], p.attributes['destination_service'], p.attributes['destination_service_name'], p.value]),
        [['grpc', 'echo-v1.shop.svc.cluster.local', 'echo-v1', 4]],
      );
    } finally {
      for (const c of clients) c.close();
      await s.close();
      await mesh.close();
      await m.shutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the order of a workload's services, as istiod sorts its service targets (oldest, then by host)", () => {
  /** destination_service / _name a server reports for a request from outside the mesh. */
  async function reported(config: (port: number) => object[]): Promise<string[][]> {
    const listening = createServer();
    await new Promise<void>((r) => listening.listen(0, '127.0.0.1', r));
    const port = (listening.address() as AddressInfo).port;
    const reader = new RequestsReader();
    const mesh = await createMesh({ service: 'web', namespace: 'shop', labels: { app: 'web' }, identity: 'none', config: config(port) as never, telemetry: { metrics: { meterProvider: new MeterProvider({ readers: [reader] }) } } });
    try {
      listening.on('request', mesh.handler((_req, res) => res.end('ok')));
      const r = await request(`http://127.0.0.1:${port}/`);
      await r.body.dump();
      return (await reader.requests()).filter((p) => p['reporter'] === 'destination').map((p) => [String(p['destination_service']), String(p['destination_service_name'])]);
    } finally {
      await mesh.close();
      await new Promise<void>((r) => listening.close(() => r()));
    }
  }

  it('two Services created in the same second: the host first in order (web-v1.shop… before web.shop…), not the name', async () => {
    const t = '2024-01-01T00:00:00Z';
    assert.deepEqual(await reported((p) => [service('web', t, { app: 'web' }, p), service('web-v1', t, { app: 'web' }, p)]), [['web-v1.shop.svc.cluster.local', 'web-v1']]);
  });

  it('a ServiceEntry with two hosts counts once per host, sorted by host', async () => {
    const se = (port: number) => ({
      apiVersion: 'networking.istio.io/v1',
      kind: 'ServiceEntry',
      metadata: { name: 'ext', namespace: 'shop', creationTimestamp: '2023-01-01T00:00:00Z' },
      spec: { hosts: ['b.example.com', 'a.example.com'], location: 'MESH_INTERNAL', resolution: 'STATIC', workloadSelector: { labels: { app: 'web' } }, ports: [{ name: 'http', number: 8080, targetPort: port, protocol: 'HTTP' }] },
    });
    assert.deepEqual(await reported((p) => [se(p)]), [['a.example.com', 'a.example.com']]);
  });
});
