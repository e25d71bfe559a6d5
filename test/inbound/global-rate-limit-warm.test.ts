/**
 * A global rate limit filter's service is made ready when a config names it, not by the first
 * request: grpc-js loaded, the client made, and one gRPC health check sent through the mesh, which
 * opens the connection and runs the mesh's gRPC path once. On a cold process the first call did
 * all of that inside the filter's `timeout` (20 ms by default) and took longer, so the first
 * requests after start were decided by the failure mode rather than by the service. Envoy's
 * cluster is there before its first request (its call costs about a millisecond).
 *
 * The service is the grpc-js rate limit service of the tests with envoyproxy/ratelimit's health
 * service; the mesh runs on a ManualClock (nothing here waits on a timeout).
 */
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createMesh, ManualClock, type Mesh } from '../../src/index.ts';
import { capture, telemetry } from '../helpers/access-log.ts';
import { clusterPatch, envoyFilter, filterPatch, PATH_ACTION, vhostPatch } from '../helpers/global-rate-limit-filters.ts';
import { ECHO_NS, ISTIO_CONFIGMAP, type RateLimitService, services, startRateLimitService } from '../helpers/rate-limit-service.ts';
import { startUpstream, type Upstream } from '../helpers/upstreams.ts';
import { until } from '../helpers/until.ts';

const RL = 'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit';
const HCM = 'envoy.filters.network.http_connection_manager';

/** Istio's inbound RateLimit filter (SIDECAR_INBOUND, before the router) for `app: srv`, its service an Istio cluster name. */
const INBOUND = {
  apiVersion: 'networking.istio.io/v1alpha3',
  kind: 'EnvoyFilter',
  metadata: { name: 'inbound-ratelimit', namespace: ECHO_NS },
  spec: {
    workloadSelector: { labels: { app: 'srv' } },
    configPatches: [
      {
        applyTo: 'HTTP_FILTER',
        match: { context: 'SIDECAR_INBOUND', listener: { filterChain: { filter: { name: HCM, subFilter: { name: 'envoy.filters.http.router' } } } } },
        patch: {
          operation: 'INSERT_BEFORE',
          value: {
            name: 'envoy.filters.http.ratelimit',
            typed_config: { '@type': RL, domain: 'echo-ratelimit', rate_limit_service: { grpc_service: { envoy_grpc: { cluster_name: 'outbound|8081||ratelimit.istio-ratelimit.svc.cluster.local' } }, transport_api_version: 'V3' } },
          },
        },
      },
      { applyTo: 'VIRTUAL_HOST', match: { context: 'SIDECAR_INBOUND' }, patch: { operation: 'MERGE', value: { rate_limits: [PATH_ACTION] } } },
    ],
  },
};

describe('a global rate limit service is made ready when the config names it', () => {
  let rls: RateLimitService;
  let up: Upstream;
  const meshes: Mesh[] = [];
  const servers: Server[] = [];

  before(async () => {
    rls = await startRateLimitService(ISTIO_CONFIGMAP, () => 0, { health: true });
    up = await startUpstream('srv', (_req, res) => {
      res.end('up');
    });
  });
  after(async () => {
    for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
    for (const m of meshes) await m.close();
    await up.close();
    rls.close();
  });

  it('inbound: before any request the service gets one health check through the mesh (not logged), then the first request is judged by it', async () => {
    const checks = rls.healthChecks;
    const seen = rls.seen.length;
    const log = capture();
    const mesh = await createMesh({
      service: 'srv',
      namespace: ECHO_NS,
      labels: { app: 'srv' },
      clock: new ManualClock(0),
      logger: log.logger,
      extensionProviders: [{ name: 'l', envoyFileAccessLog: { logFormat: { text: '%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS%' } } }],
      config: [...services(rls.port, up.port), INBOUND, telemetry('mesh-default', { accessLogging: [{ providers: [{ name: 'l' }] }] })] as never,
    });
    meshes.push(mesh);
    await until(() => rls.healthChecks > checks, 'the health check of the rate limit service');
    assert.equal(rls.healthChecks, checks + 1);
    assert.equal(rls.seen.length, seen, 'no ShouldRateLimit before a request');
    const server = mesh.createServer((_req, res) => res.end('app'));
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const r = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/first`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'app');
    assert.equal(rls.seen.length, seen + 1);
    assert.deepEqual(rls.seen.at(-1)?.descriptors, [[{ key: 'PATH', value: '/first' }]]);
    await until(() => log.lines().length >= 1, 'the access log line');
    assert.deepEqual(log.lines(), ['/first 200 -'], 'the warm-up call is the mesh’s own: not in the access log');
    assert.deepEqual(log.warnings, []);
  });

  it('outbound: the service of a SIDECAR_OUTBOUND filter (a CLUSTER ADD cluster) gets its health check before any call', async () => {
    const checks = rls.healthChecks;
    const seen = rls.seen.length;
    const mesh = await createMesh({
      service: 'clt',
      namespace: ECHO_NS,
      labels: { app: 'clt' },
      clock: new ManualClock(0),
      config: [...services(rls.port, up.port), envoyFilter('outbound-ratelimit', [filterPatch(), clusterPatch(), vhostPatch({ rate_limits: [PATH_ACTION] })])] as never,
    });
    meshes.push(mesh);
    await until(() => rls.healthChecks > checks, 'the health check of the rate limit service');
    assert.equal(rls.seen.length, seen);
    const r = await mesh.fetch(`http://srv.${ECHO_NS}/call`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'up');
    assert.deepEqual(rls.seen.at(-1)?.descriptors, [[{ key: 'PATH', value: '/call' }]]);
  });
});
