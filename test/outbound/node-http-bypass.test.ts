/**
 * A call to a mesh service made with node:http (axios's default adapter, got, node-fetch) does not
 * go through the mesh; behind a sidecar it was captured. The mesh says so once per host, from
 * node:http's diagnostics channel (nothing patched), and stays quiet about other hosts, calls
 * through the mesh, a request to a local address that only names a mesh service in its Host
 * header, the OpenTelemetry SDK's OTLP/HTTP exporters sending to a collector that is a mesh
 * service, and anything after close().
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { createMesh, type Mesh } from '../../src/index.ts';

/** localhost:<port> as a mesh service (at 127.0.0.1), and reviews as another. */
function config(port: number): never {
  return [
    { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'loopback', namespace: 'default' }, spec: { hosts: ['localhost'], location: 'MESH_EXTERNAL', resolution: 'STATIC', ports: [{ number: port, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '127.0.0.1' }] } },
    { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'reviews', namespace: 'default' }, spec: { hosts: ['reviews.default.svc.cluster.local'], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '127.0.0.1' }] } },
  ] as never;
}

function get(options: http.RequestOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get(options, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    }).on('error', reject);
  });
}

describe('a call to a mesh service made with node:http', () => {
  let server: http.Server;
  let port: number;
  before(async () => {
    server = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('is warned about once per host, naming the recipe; other hosts and local addresses are not', async () => {
    const warnings: string[] = [];
    const mesh: Mesh = await createMesh({ service: 'productpage', config: config(port), logger: { warn: (m) => warnings.push(m) } });
    try {
      const ours = () => warnings.filter((w) => w.includes('node:http'));
      // A local address, naming a mesh service only in its Host header: a sidecar would not capture it either.
      assert.equal(await get({ host: '127.0.0.1', port, path: '/', headers: { host: 'reviews.default.svc.cluster.local:9080' } }), 200);
      // Through the mesh: nothing to say.
      assert.equal((await mesh.fetch(`http://localhost:${port}/`)).status, 200);
      assert.deepEqual(ours(), []);
      // node:http to the mesh service, twice: said once.
      assert.equal(await get({ host: 'localhost', port, path: '/a' }), 200);
      assert.equal(await get({ host: 'localhost', port, path: '/b' }), 200);
      assert.equal(ours().length, 1, JSON.stringify(warnings));
      assert.match(ours()[0] ?? '', new RegExp(`localhost:${port}`));
      assert.match(ours()[0] ?? '', /adapter: 'fetch', fetchOptions: \{ dispatcher: mesh\.dispatcher \}/);
    } finally {
      await mesh.close();
    }
  });

  it("the OpenTelemetry SDK's OTLP/HTTP exporter sending to a collector that is a mesh service is not warned about; the app's own call there is", async () => {
    // docs/telemetry.md's setup with the collector in the mesh: the exporter (otlp-exporter-base's
    // node:http transport, User-Agent OTel-OTLP-Exporter-JavaScript/<version>) is not the app's call.
    const received: string[] = [];
    const collector = http.createServer((req, res) => {
      received.push(`${req.method} ${req.url}`);
      req.resume();
      req.on('end', () => res.end());
    });
    await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
    const cport = (collector.address() as AddressInfo).port;
    const warnings: string[] = [];
    const mesh = await createMesh({ service: 'productpage', config: config(cport), logger: { warn: (m) => warnings.push(m) } });
    const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: new OTLPTraceExporter({ url: `http://localhost:${cport}/v1/traces` }) })] });
    try {
      const ours = () => warnings.filter((w) => w.includes('node:http'));
      for (let i = 0; i < 2; i++) {
        provider.getTracer('t').startSpan(`s${i}`).end();
        await provider.forceFlush();
      }
      assert.deepEqual(received, ['POST /v1/traces', 'POST /v1/traces']);
      assert.deepEqual(ours(), []);
      // The same host called by the app with node:http is still said.
      assert.equal(await get({ host: 'localhost', port: cport, path: '/' }), 200);
      assert.equal(ours().length, 1, JSON.stringify(warnings));
    } finally {
      await provider.shutdown();
      await mesh.close();
      await new Promise<void>((r) => collector.close(() => r()));
    }
  });

  it('a host called before it became a mesh service (a reload added it) is warned about once it is', async () => {
    // It was remembered as looked at on its first call, and never looked up again.
    const dir = mkdtempSync(join(tmpdir(), 'meshlet-bypass-'));
    const warnings: string[] = [];
    const mesh = await createMesh({ service: 'productpage', config: dir, watch: false, logger: { warn: (m) => warnings.push(m) } });
    try {
      const ours = () => warnings.filter((w) => w.includes('node:http'));
      assert.equal(await get({ host: 'localhost', port, path: '/' }), 200);
      assert.deepEqual(ours(), []);
      writeFileSync(join(dir, 'mesh.yaml'), (config(port) as object[]).map((d) => JSON.stringify(d)).join('\n---\n'));
      assert.equal(await mesh.reload(), true);
      assert.equal(await get({ host: 'localhost', port, path: '/' }), 200);
      assert.equal(ours().length, 1, JSON.stringify(warnings));
    } finally {
      await mesh.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is not watched once the mesh is closed', async () => {
    const warnings: string[] = [];
    const mesh = await createMesh({ service: 'productpage', config: config(port), logger: { warn: (m) => warnings.push(m) } });
    await mesh.close();
    assert.equal(await get({ host: 'localhost', port, path: '/' }), 200);
    assert.deepEqual(warnings.filter((w) => w.includes('node:http')), []);
  });
});
