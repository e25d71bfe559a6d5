/**
 * Istio's `proxyHeaders.envoyDebugHeaders: { disabled: true }` sets Envoy's router
 * `suppress_envoy_headers` on the sidecar's outbound and inbound routers (istiod's
 * `buildSidecarInboundHTTPOpts` and the outbound HCM alike), and under it the router's overflow
 * local reply carries no `x-envoy-overloaded` (router.cc: `if (dropped &&
 * !config_->suppress_envoy_headers_)`; Envoy's RouterTestSuppressEnvoyHeaders.MaintenanceMode).
 * The mesh's own overflow answers follow it: outbound HTTP calls, outbound gRPC calls, and the
 * inbound connection pool of a mesh server — each checked with the switch off (the header is
 * there) and on (it is not), over real sockets.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { createMesh, type Mesh, seededRandom } from '../../src/index.ts';
import { raw } from '../helpers/frameworks.ts';
import { closedAfter, type Echo, EchoClient, grpc, type GrpcUpstream, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';
import { destinationRule, serviceEntry, virtualService } from '../helpers/upstreams.ts';
import { until } from '../helpers/until.ts';

const DISABLED = { proxyHeaders: { envoyDebugHeaders: { disabled: true } } };
const ONE_AT_A_TIME = { connectionPool: { http: { http2MaxRequests: 1 } } };

/** An HTTP server that holds every request until {@link Held.release}. */
interface Held {
  readonly port: number;
  readonly arrived: number;
  release(): void;
  close(): Promise<void>;
}

async function heldServer(): Promise<Held> {
  const waiting: (() => void)[] = [];
  let arrived = 0;
  const server: Server = createServer((_req, res) => {
    arrived++;
    waiting.push(() => res.end('done'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    get arrived() {
      return arrived;
    },
    release: () => {
      for (const w of waiting.splice(0)) w();
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('proxyHeaders.envoyDebugHeaders and the mesh’s overflow answers (x-envoy-overloaded)', () => {
  const { ups, meshes, clients } = closedAfter();
  const servers: Held[] = [];
  after(async () => {
    for (const s of servers) await s.close();
  });

  for (const [name, opts, expected] of [
    ['by default', {}, 'true'],
    ['disabled', DISABLED, undefined],
  ] as const) {
    it(`outbound HTTP: an overflow (503 UO) ${name} ${expected === undefined ? 'has no' : 'has'} x-envoy-overloaded`, async () => {
      const up = await heldServer();
      servers.push(up);
      const mesh = await createMesh({
        service: 'client',
        random: seededRandom(3),
        config: [serviceEntry('svc', 'svc.example.com', 80, [{ port: up.port }]), destinationRule('svc', 'svc.example.com', { trafficPolicy: ONE_AT_A_TIME }), virtualService('svc', ['svc.example.com'], [{ route: [{ destination: { host: 'svc.example.com' } }] }])],
        ...opts,
      });
      meshes.push(mesh);
      const first = mesh.fetch('http://svc.example.com/a');
      await until(() => up.arrived === 1, 'the first call reached the upstream');
      const second = await mesh.fetch('http://svc.example.com/b');
      assert.equal(second.status, 503);
      assert.equal(second.headers.get('x-meshlet-response-flags'), 'UO');
      assert.equal(second.headers.get('x-envoy-overloaded') ?? undefined, expected);
      await second.text();
      up.release();
      assert.equal(await (await first).text(), 'done');
    });

    it(`outbound gRPC: an overflow (UNAVAILABLE, UO) ${name} ${expected === undefined ? 'has no' : 'has'} x-envoy-overloaded`, async () => {
      const up: GrpcUpstream = await startGrpcUpstream('g');
      ups.push(up);
      const held: grpc.sendUnaryData<unknown>[] = [];
      up.behaviour.Unary = ((call: grpc.ServerUnaryCall<{ text: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        held.push(() => cb(null, { text: call.request.text, server: up.name, seen: [] }));
      }) as never;
      const mesh = await createMesh({
        service: 'client',
        random: seededRandom(3),
        config: [grpcServiceEntry('echo', 'echo.default.svc.cluster.local', 9090, [{ port: up.port }]), destinationRule('echo', 'echo', { trafficPolicy: ONE_AT_A_TIME }), virtualService('echo', ['echo'], [{ route: [{ destination: { host: 'echo' } }], retries: { attempts: 0 } }])],
        ...opts,
      });
      meshes.push(mesh);
      const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
      clients.push(client);
      const first = unary(client, { text: '1' });
      await until(() => held.length === 1, 'the first call reached the upstream');
      const second = await unary(client, { text: '2' });
      assert.equal(second.error?.code, grpc.status.UNAVAILABLE);
      assert.equal(second.error?.metadata.get('x-meshlet-response-flags')[0], 'UO');
      assert.equal(second.error?.metadata.get('x-envoy-overloaded')[0], expected);
      for (const cb of held.splice(0)) cb(null);
      assert.equal((await first).reply?.text, '1');
    });

    it(`inbound: the connection pool's overflow (503 UO) ${name} ${expected === undefined ? 'has no' : 'has'} x-envoy-overloaded`, async () => {
      const release: (() => void)[] = [];
      const mesh: Mesh = await createMesh({
        service: 'httpbin',
        namespace: 'foo',
        labels: { app: 'httpbin' },
        config: [{ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'httpbin', namespace: 'foo' }, spec: { host: 'httpbin', trafficPolicy: { connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } } } } }],
        watch: false,
        logger: { warn: () => {} },
        ...opts,
      });
      meshes.push(mesh);
      const server = mesh.createServer((_req, res) => {
        release.push(() => res.end('done'));
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as AddressInfo).port;
      const first = raw(port, '/a');
      await until(() => release.length === 1, 'the first request reached the app');
      const second = raw(port, '/b');
      await until(() => mesh.diagnostics().inboundPools.some((p) => p.pending === 1), 'the second request queued');
      const third = await raw(port, '/c');
      assert.equal(third.statusCode, 503);
      assert.equal(third.headers['x-envoy-overloaded'], expected);
      release.shift()?.();
      assert.equal((await first).text, 'done');
      await until(() => release.length === 1, 'the queued request reached the app');
      release.shift()?.();
      assert.equal((await second).statusCode, 200);
    });
  }
});
