/**
 * The rest of Istio's ProxyConfig `proxyHeaders` (`createMesh({ proxyHeaders })`), end to end:
 *
 * - `server.value`: served responses carry it in place of the app's `server` (Envoy's
 *   `server_header_transformation: OVERWRITE`), through every framework's real entry point and
 *   whichever way the app set its own (setHeader, writeHead's object or raw list);
 *   `server.disabled` and no option pass the app's through;
 * - `metadataExchangeHeaders.mode: UNDEFINED` (Istio's default) sends the metadata-exchange
 *   headers on calls to MESH_EXTERNAL services and passthrough calls too;
 *   `IN_MESH` (meshlet's default) only to in-mesh services;
 * - `xForwardedPort` / `xForwardedHost` are taken and write nothing, as in a sidecar;
 *   `preserveHttp1HeaderCase: true` is refused, naming why.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { createMesh, type Mesh, type ProxyHeadersOptions } from '../../src/index.ts';
import { frameworks, listen, raw } from '../helpers/frameworks.ts';
import { call, serviceEntry, startUpstream, type Upstream } from '../helpers/upstreams.ts';

const quiet = { warn: () => undefined, error: () => undefined };

describe('proxyHeaders.server', () => {
  for (const fw of frameworks) {
    it(`${fw.name}: server.value is the server header of served responses`, async () => {
      const mesh = await createMesh({ service: 'httpbin', config: [] as never, logger: quiet, proxyHeaders: { server: { value: 'edge/1' } } });
      const server = await fw.start(mesh);
      try {
        const r = await raw(server.port, '/headers');
        assert.equal(r.statusCode, 200, r.text);
        assert.equal(r.headers.server, 'edge/1');
      } finally {
        await server.close();
        await mesh.close();
      }
    });
  }

  /** A server whose app sets its own `server` header in `how`, and what a caller gets. */
  async function served(proxyHeaders: ProxyHeadersOptions | undefined, how: 'setHeader' | 'object' | 'raw'): Promise<string | string[] | undefined> {
    const mesh = await createMesh({ service: 'httpbin', config: [] as never, logger: quiet, ...(proxyHeaders === undefined ? {} : { proxyHeaders }) });
    const server = mesh.createServer((_req: IncomingMessage, res: ServerResponse) => {
      if (how === 'setHeader') {
        res.setHeader('Server', 'app/1');
        res.end('ok');
      } else if (how === 'object') res.writeHead(200, { 'content-type': 'text/plain', SERVER: 'app/1' }).end('ok');
      else res.writeHead(200, ['Content-Type', 'text/plain', 'Server', 'app/1']).end('ok');
    });
    const port = await listen(server);
    try {
      const r = await request(`http://127.0.0.1:${port}/`);
      assert.equal(await r.body.text(), 'ok');
      return r.headers.server;
    } finally {
      await new Promise((resolve) => server.close(resolve));
      await mesh.close();
    }
  }

  for (const how of ['setHeader', 'object', 'raw'] as const) {
    it(`replaces the app's own server header (${how}); disabled or unset pass it through`, async () => {
      assert.equal(await served({ server: { value: 'edge/1' } }, how), 'edge/1');
      assert.equal(await served({ server: { disabled: true, value: 'edge/1' } }, how), 'app/1');
      assert.equal(await served(undefined, how), 'app/1');
    });
  }
});

describe('proxyHeaders.metadataExchangeHeaders', () => {
  let up: Upstream;
  before(async () => {
    up = await startUpstream('up');
  });
  after(() => up.close());

  async function sent(mode: 'IN_MESH' | 'UNDEFINED' | undefined): Promise<Record<string, boolean>> {
    const config = [
      serviceEntry('internal', 'internal.default.svc.cluster.local', 80, [{ port: up.port }]),
      serviceEntry('external', 'api.example.com', 80, [{ port: up.port }], { location: 'MESH_EXTERNAL' }),
      // An in-mesh service whose cluster sends each call to its original address (resolution NONE: Istio's ORIGINAL_DST
      // cluster outbound|port||localhost, not PassthroughCluster), as a headless Kubernetes Service's is.
      { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'original-dst', namespace: 'default' }, spec: { hosts: ['localhost'], location: 'MESH_INTERNAL', resolution: 'NONE', ports: [{ number: up.port, name: 'http', protocol: 'HTTP' }] } },
    ];
    const mesh: Mesh = await createMesh({ service: 'productpage', namespace: 'default', config, identity: 'none', ...(mode === undefined ? {} : { proxyHeaders: { metadataExchangeHeaders: { mode } } }) });
    try {
      const out: Record<string, boolean> = {};
      for (const [name, url] of [
        ['internal', 'http://internal/x'],
        ['external', 'http://api.example.com/x'],
        ['original-dst', `http://localhost:${up.port}/x`],
        ['passthrough', `http://127.0.0.1:${up.port}/x`],
      ] as const) {
        assert.equal((await call(mesh, url)).status, 200);
        out[name] = typeof up.seen.at(-1)?.headers['x-envoy-peer-metadata'] === 'string';
      }
      return out;
    } finally {
      await mesh.close();
    }
  }

  it("IN_MESH (meshlet's default): in-mesh services only; UNDEFINED (Istio's default): MESH_EXTERNAL services too", async () => {
    // An in-mesh service reached at its original address is in the mesh: the peer_metadata filter's skip_external_clusters
    // skips PassthroughCluster and clusters marked external (MESH_EXTERNAL) only.
    assert.deepEqual(await sent(undefined), { internal: true, external: false, 'original-dst': true, passthrough: false });
    assert.deepEqual(await sent('IN_MESH'), { internal: true, external: false, 'original-dst': true, passthrough: false });
    // Passthrough calls (hosts outside the registry, Istio's PassthroughCluster) too: Istio's peer_metadata filter skips
    // PassthroughCluster only with skip_external_clusters, which IN_MESH sets.
    assert.deepEqual(await sent('UNDEFINED'), { internal: true, external: true, 'original-dst': true, passthrough: true });
  });
});

describe('proxyHeaders: the options a sidecar does not act on, and the one meshlet cannot honour', () => {
  it('xForwardedPort and xForwardedHost are taken and add nothing, as in a sidecar', async () => {
    const mesh = await createMesh({ service: 'httpbin', config: [] as never, logger: quiet, proxyHeaders: { xForwardedPort: { enabled: true }, xForwardedHost: { enabled: true } } });
    const fw = frameworks[0];
    assert.ok(fw !== undefined);
    const server = await fw.start(mesh);
    try {
      const r = await raw(server.port, '/headers');
      const seen = (JSON.parse(r.text) as { headers: Record<string, unknown> }).headers;
      assert.equal(seen['x-forwarded-port'], undefined);
      assert.equal(seen['x-forwarded-host'], undefined);
    } finally {
      await server.close();
      await mesh.close();
    }
  });

  const cases: [string, unknown, RegExp][] = [
    ['preserveHttp1HeaderCase', { preserveHttp1HeaderCase: true }, /`proxyHeaders\.preserveHttp1HeaderCase` is not supported: calls are sent with lower-case header names/],
    ['a server value with a line break', { server: { value: 'a\r\nx-evil: 1' } }, /`proxyHeaders\.server\.value` must be a header value/],
    ['server as a string', { server: 'edge' }, /`proxyHeaders\.server` must be an object/],
    ['an unknown metadata-exchange mode', { metadataExchangeHeaders: { mode: 'ALWAYS' } }, /`proxyHeaders\.metadataExchangeHeaders\.mode` must be IN_MESH or UNDEFINED, got "ALWAYS"/],
    ['xForwardedPort.enabled not a boolean', { xForwardedPort: { enabled: 'yes' } }, /`proxyHeaders\.xForwardedPort\.enabled` must be true or false/],
  ];
  for (const [name, value, message] of cases) {
    it(`refused: ${name}`, async () => {
      await assert.rejects(createMesh({ service: 'a', config: [] as never, logger: quiet, proxyHeaders: value as never }), message);
    });
  }
});
