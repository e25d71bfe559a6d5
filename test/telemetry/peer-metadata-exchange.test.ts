/**
 * Istio's HTTP metadata exchange between real meshes: outbound calls to in-mesh services carry
 * `x-envoy-peer-metadata-id` / `x-envoy-peer-metadata` (this workload's name, namespace,
 * canonical service, app, version, cluster), calls to MESH_EXTERNAL services and passthrough
 * destinations do not; with `telemetry.metrics.enabled: false` nothing is added. The server side
 * takes the caller's headers off the request and answers with its own, which the client takes off
 * the response for its metrics' destination labels.
 */
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { MeterProvider, } from '@opentelemetry/sdk-metrics';
import { request } from 'undici';
import { RequestsReader } from '../helpers/metric-reader.ts';
import { createMesh, type Mesh } from '../../src/index.ts';
import { decodePeerMetadata } from '../../src/telemetry/metrics/peer-metadata.ts';
import { call, serviceEntry, startUpstream, type Upstream } from '../helpers/upstreams.ts';

describe('peer metadata exchange on outbound calls', () => {
  let up: Upstream;
  let mesh: Mesh;
  let quiet: Mesh;
  before(async () => {
    up = await startUpstream('up');
    const config = [
      serviceEntry('internal', 'internal.default.svc.cluster.local', 80, [{ port: up.port }]),
      serviceEntry('external', 'api.example.com', 80, [{ port: up.port }], { location: 'MESH_EXTERNAL' }),
    ];
    mesh = await createMesh({ service: 'productpage', workloadName: 'productpage-v1', labels: { app: 'productpage', version: 'v1' }, namespace: 'default', config, identity: 'none' });
    quiet = await createMesh({ service: 'productpage', labels: { app: 'productpage' }, config, identity: 'none', telemetry: { metrics: { enabled: false } } });
  });
  after(async () => {
    await mesh.close();
    await quiet.close();
    await up.close();
  });

  it('an in-mesh destination gets the headers, with what Istio puts in them', async () => {
    assert.equal((await call(mesh, 'http://internal/x')).status, 200);
    const h = up.seen.at(-1)?.headers ?? {};
    assert.equal(h['x-envoy-peer-metadata-id'], 'sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local');
    assert.deepEqual(decodePeerMetadata(h['x-envoy-peer-metadata'] as string), {
      instance: 'productpage-v1',
      namespace: 'default',
      workload: 'productpage-v1',
      cluster: 'Kubernetes',
      canonicalName: 'productpage',
      canonicalRevision: 'v1',
      app: 'productpage',
      version: 'v1',
    });
  });

  it('a MESH_EXTERNAL service and a passthrough destination do not', async () => {
    assert.equal((await call(mesh, 'http://api.example.com/x')).status, 200);
    assert.equal(up.seen.at(-1)?.headers['x-envoy-peer-metadata'], undefined);
    assert.equal(up.seen.at(-1)?.headers['x-envoy-peer-metadata-id'], undefined);
    assert.equal((await call(mesh, `http://127.0.0.1:${up.port}/direct`)).status, 200);
    assert.equal(up.seen.at(-1)?.url, '/direct');
    assert.equal(up.seen.at(-1)?.headers['x-envoy-peer-metadata'], undefined);
  });

  it('metrics off: no metadata exchange either', async () => {
    assert.equal((await call(quiet, 'http://internal/y')).status, 200);
    assert.equal(up.seen.at(-1)?.url, '/y');
    assert.equal(up.seen.at(-1)?.headers['x-envoy-peer-metadata'], undefined);
  });
});

describe('peer metadata exchange in both directions, between two meshes', () => {
  let server: Mesh;
  let client: Mesh;
  let listening: Server;
  const clientReader = new RequestsReader();
  const serverReader = new RequestsReader();
  const seen: { headers: Record<string, unknown>; raw: string[] }[] = [];
  before(async () => {
    server = await createMesh({
      service: 'reviews',
      workloadName: 'reviews-v2',
      namespace: 'default',
      labels: { app: 'reviews', version: 'v2' },
      config: [],
      identity: 'none',
      telemetry: { metrics: { meterProvider: new MeterProvider({ readers: [serverReader] }) } },
    });
    listening = server.createServer((req, res) => {
      seen.push({ headers: { ...req.headers }, raw: [...req.rawHeaders] });
      res.setHeader('content-type', 'text/plain');
      res.end('ok');
    });
    await new Promise<void>((r) => listening.listen(0, '127.0.0.1', r));
    const port = (listening.address() as AddressInfo).port;
    client = await createMesh({
      service: 'productpage',
      workloadName: 'productpage-v1',
      namespace: 'default',
      labels: { app: 'productpage', version: 'v1' },
      config: [serviceEntry('reviews', 'reviews.default.svc.cluster.local', 80, [{ port }])],
      identity: 'none',
      telemetry: { metrics: { meterProvider: new MeterProvider({ readers: [clientReader] }) } },
    });
  });
  after(async () => {
    await client.close();
    await new Promise<void>((r) => listening.close(() => r()));
    await server.close();
  });

  it("the server takes the caller's headers off the request and answers with its own; the client takes those off the response", async () => {
    const r = await call(client, 'http://reviews.default.svc.cluster.local/r/1');
    assert.equal(r.status, 200);
    const app = seen.at(-1);
    assert.ok(app !== undefined);
    assert.equal(app.headers['x-envoy-peer-metadata'], undefined, 'the app never sees the exchange headers');
    assert.equal(app.headers['x-envoy-peer-metadata-id'], undefined);
    assert.ok(!app.raw.some((h) => h.toLowerCase().startsWith('x-envoy-peer-metadata')), 'not in rawHeaders either');
    assert.equal(r.headers.get('x-envoy-peer-metadata'), null, "the client's caller does not see the server's either");
    assert.equal(r.headers.get('x-envoy-peer-metadata-id'), null);
    // Both sides name each other in their metrics: the client's destination labels come from the server's answer.
    const src = (await clientReader.requests()).find((p) => p['reporter'] === 'source');
    assert.equal(src?.['destination_workload'], 'reviews-v2');
    assert.equal(src?.['destination_app'], 'reviews');
    assert.equal(src?.['destination_version'], 'v2');
    assert.equal(src?.['destination_canonical_service'], 'reviews');
    assert.equal(src?.['destination_canonical_revision'], 'v2');
    const dst = (await serverReader.requests()).find((p) => p['reporter'] === 'destination');
    assert.equal(dst?.['source_workload'], 'productpage-v1');
    assert.equal(dst?.['source_app'], 'productpage');
    assert.equal(dst?.['source_version'], 'v1');
  });

  it('a caller that sends no metadata gets none back (and the one that sends only the ID gets only the ID)', async () => {
    const port = (listening.address() as AddressInfo).port;
    const plain = await request(`http://127.0.0.1:${port}/plain`);
    await plain.body.dump();
    assert.equal(plain.statusCode, 200);
    assert.equal(plain.headers['x-envoy-peer-metadata'], undefined);
    assert.equal(plain.headers['x-envoy-peer-metadata-id'], undefined);
    const idOnly = await request(`http://127.0.0.1:${port}/id`, { headers: { 'x-envoy-peer-metadata-id': 'sidecar~10.0.0.1~x.default~default.svc.cluster.local' } });
    await idOnly.body.dump();
    assert.equal(idOnly.headers['x-envoy-peer-metadata-id'], 'sidecar~127.0.0.1~reviews-v2.default~default.svc.cluster.local');
    assert.equal(idOnly.headers['x-envoy-peer-metadata'], undefined);
    assert.equal(seen.at(-1)?.headers['x-envoy-peer-metadata-id'], undefined);
  });
});
