/**
 * Global rate limiting (Envoy's `envoy.filters.http.ratelimit` and a rate limit service) on the
 * calls a workload makes, as Istio's integration test sets it up
 * (tests/integration/telemetry/policy/envoy_ratelimit_test.go, TestRateLimiting): Istio's own
 * EnvoyFilters (testdata/enable_envoy_ratelimit.yaml, copied as test/fixtures/ratelimit/) — the
 * filter `INSERT_BEFORE envoy.filters.http.router` for SIDECAR_OUTBOUND of `app: clt`, the
 * `rate_limit_cluster` CLUSTER ADD (STRICT_DNS `ratelimit.<ns>.svc.cluster.local:8081`), the
 * VIRTUAL_HOST MERGE of a `:path` → `PATH` action — and a rate limit service with Istio's configmap
 * (testdata/rate-limit-configmap.yaml: domain `echo-ratelimit`, `PATH=/` 1 per minute). Calls go
 * through `mesh.fetch` to a real upstream; the service is a grpc-js server on 127.0.0.1 the mesh
 * reaches by its Kubernetes name.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { createMesh, ManualClock, type Mesh } from '../../src/index.ts';
import { ISTIO_CONFIGMAP, type RateLimitService, services, startRateLimitService } from '../helpers/rate-limit-service.ts';
import { startUpstream, type Upstream } from '../helpers/upstreams.ts';
import { until } from '../helpers/until.ts';
import * as grpc from '@grpc/grpc-js';
import { type Echo, EchoClient, type GrpcUpstream, startGrpcUpstream, unary } from '../helpers/grpc.ts';

import { ECHO_NS, RL_NS } from '../helpers/rate-limit-service.ts';
const SRV = `srv.${ECHO_NS}.svc.cluster.local`;

/** Istio's EnvoyFilters with the test's namespaces (its Go template's two values). */
function istioEnvoyFilters(): object[] {
  const text = readFileSync(new URL('../fixtures/ratelimit/enable_envoy_ratelimit.yaml', import.meta.url), 'utf8').replaceAll('{{ .RateLimitNamespace }}', RL_NS).replaceAll('{{ .EchoNamespace }}', ECHO_NS);
  return parseAllDocuments(text).map((d) => d.toJS() as object);
}

describe("global rate limiting: Istio's TestRateLimiting (outbound, app: clt)", () => {
  let rls: RateLimitService;
  let up: Upstream;
  let mesh: Mesh;
  let rlsNow = 0;
  const warnings: string[] = [];
  const infos: string[] = [];
  const upstreamSaw: Record<string, string | string[] | undefined>[] = [];

  before(async () => {
    rls = await startRateLimitService(ISTIO_CONFIGMAP, () => rlsNow);
    up = await startUpstream('srv', (req, res) => {
      upstreamSaw.push(req.headers);
      res.end('hello');
    });
    mesh = await createMesh({
      service: 'clt',
      namespace: ECHO_NS,
      labels: { app: 'clt' },
      config: [...services(rls.port, up.port), ...istioEnvoyFilters()] as never,
      clock: new ManualClock(0),
      logger: { warn: (m) => warnings.push(m), info: (m) => infos.push(m) },
    });
  });
  after(async () => {
    await mesh.close();
    await up.close();
    rls.close();
  });

  it("applies both EnvoyFilters, skipping neither (the one warning: Istio's route match on its VIRTUAL_HOST patch does nothing)", async () => {
    // The config's warnings are logged as it is put in use, on the turn after createMesh resolves.
    await until(() => infos.some((m) => / in use$/.test(m)), 'the config in use');
    const ef = warnings.filter((w) => /EnvoyFilter|skipped/.test(w));
    assert.equal(ef.length, 1, ef.join('\n'));
    assert.match(ef[0] as string, /applied with 1 validation warning\(s\):\n.*filter-ratelimit-svc: .*a route match has no effect on a VIRTUAL_HOST patch/);
    assert.doesNotMatch(ef[0] as string, /skipped/);
  });

  it('5 calls to / in a minute: the first goes through, the others get 429 with x-envoy-ratelimited', async () => {
    const statuses: number[] = [];
    let limited: Response | undefined;
    for (let i = 0; i < 5; i++) {
      const r = await mesh.fetch(`http://${SRV}/`);
      statuses.push(r.status);
      if (r.status === 429) limited ??= r;
      await r.text();
    }
    assert.deepEqual(statuses, [200, 429, 429, 429, 429]);
    assert.equal(limited?.headers.get('x-envoy-ratelimited'), 'true');
    // The service heard the domain and the PATH descriptor, once per call.
    assert.equal(rls.seen.length, 5);
    assert.deepEqual(rls.seen[0], { domain: 'echo-ratelimit', descriptors: [[{ key: 'PATH', value: '/' }]], hits_addend: 0 });
    assert.equal(upstreamSaw.length, 1);
  });

  it('another path has its own limit (100 per minute); a new minute lets / through again', async () => {
    assert.equal((await mesh.fetch(`http://${SRV}/other`)).status, 200);
    rlsNow += 60_000;
    assert.equal((await mesh.fetch(`http://${SRV}/`)).status, 200);
    assert.equal((await mesh.fetch(`http://${SRV}/`)).status, 429);
  });

  it('the service failing: failure_mode_deny (Istio sets it) answers 500, and the upstream is not called', async () => {
    rls.control.mode = 'error';
    try {
      const before = upstreamSaw.length;
      const r = await mesh.fetch(`http://${SRV}/other`);
      assert.equal(r.status, 500);
      assert.equal(r.headers.get('x-envoy-ratelimited'), null);
      await r.text();
      assert.equal(upstreamSaw.length, before);
    } finally {
      rls.control.mode = 'count';
    }
  });

  it('headers from the service: request_headers_to_add reach the upstream, response_headers_to_add the caller', async () => {
    rls.control.requestHeaders = [{ key: 'x-rl-req', value: 'added' }];
    rls.control.responseHeaders = [{ key: 'x-rl-resp', value: 'yes' }];
    try {
      const r = await mesh.fetch(`http://${SRV}/other`);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-rl-resp'), 'yes');
      assert.equal(upstreamSaw.at(-1)?.['x-rl-req'], 'added');
      rls.control.rawBody = 'slow down';
      const limited = await mesh.fetch(`http://${SRV}/`);
      assert.equal(limited.status, 429);
      assert.equal(limited.headers.get('x-rl-resp'), 'yes');
      // The service's raw_body is the refusal's body (Envoy's local reply with response_body).
      assert.equal(await limited.text(), 'slow down');
    } finally {
      rls.control.requestHeaders = [];
      rls.control.responseHeaders = [];
      rls.control.rawBody = '';
    }
  });

  it('the caller going away while the service has not answered cancels the call to the service', async () => {
    rls.control.mode = 'hang';
    try {
      const n = rls.seen.length;
      const ac = new AbortController();
      const pending = mesh.fetch(`http://${SRV}/other`, { signal: ac.signal });
      await until(() => rls.seen.length > n, 'the call to the rate limit service');
      ac.abort();
      await assert.rejects(pending, { name: 'AbortError' });
      await until(() => rls.control.cancelled === 1, 'the call to the service to be cancelled');
    } finally {
      rls.control.mode = 'count';
    }
  });

  it('mesh.explain names the rate limit service and the descriptors a call would be asked about, without asking', () => {
    const n = rls.seen.length;
    assert.deepEqual(mesh.explain({ url: `http://${SRV}/` }).rateLimits, [
      `envoy.filters.http.ratelimit from EnvoyFilter istio-system/filter-ratelimit configPatches[0]: global, asks the rate limit service ratelimit.${RL_NS}.svc.cluster.local:8081 (domain echo-ratelimit) about PATH=/; over the limit 429, service unreachable 500`,
    ]);
    assert.equal(rls.seen.length, n);
  });

  it('a host the VIRTUAL_HOST patch does not name makes no descriptor: no call to the service', async () => {
    const n = rls.seen.length;
    // The rate limit service itself, by its Kubernetes name (a call the app makes, not the filter's).
    const r = await mesh.fetch(`http://127.0.0.1:${up.port}/`);
    assert.equal(r.status, 200);
    assert.equal(rls.seen.length, n);
  });
});

/** A mesh host whose VirtualService answers itself (a direct response: no route entry). */
function directResponse(): object[] {
  const host = `dr.${ECHO_NS}.svc.cluster.local`;
  return [
    { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'dr', namespace: ECHO_NS }, spec: { hosts: [host], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '127.0.0.1', ports: { http: 1 } }] } },
    { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'dr', namespace: ECHO_NS }, spec: { hosts: [host], http: [{ directResponse: { status: 204 } }] } },
  ];
}

describe('global rate limiting: a filter whose own rate_limits describe every call (gRPC callers too)', () => {
  let rls: RateLimitService;
  let up: GrpcUpstream;
  let mesh: Mesh;
  const rlsNow = 0;

  before(async () => {
    rls = await startRateLimitService({ domain: 'everything', descriptors: [{ key: 'generic_key', value: 'all', rate_limit: { unit: 'minute', requests_per_unit: 1 } }] }, () => rlsNow);
    up = await startGrpcUpstream('echo');
    const filter = {
      applyTo: 'HTTP_FILTER',
      match: { context: 'SIDECAR_OUTBOUND', listener: { filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager', subFilter: { name: 'envoy.filters.http.router' } } } } },
      patch: {
        operation: 'INSERT_BEFORE',
        value: {
          name: 'envoy.filters.http.ratelimit',
          typed_config: {
            '@type': 'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit',
            domain: 'everything',
            timeout: '10s',
            rate_limited_as_resource_exhausted: true,
            rate_limit_service: { grpc_service: { envoy_grpc: { cluster_name: `outbound|8081||ratelimit.${RL_NS}.svc.cluster.local` } }, transport_api_version: 'V3' },
            rate_limits: [{ actions: [{ generic_key: { descriptor_value: 'all' } }] }],
          },
        },
      },
    };
    const grpcSe = { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'echo', namespace: ECHO_NS }, spec: { hosts: [`grpc.${ECHO_NS}.svc.cluster.local`], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 9090, name: 'grpc', protocol: 'GRPC' }], endpoints: [{ address: '127.0.0.1', ports: { grpc: up.port } }] } };
    mesh = await createMesh({
      service: 'clt',
      namespace: ECHO_NS,
      labels: { app: 'clt' },
      config: [...services(rls.port, 1), grpcSe, ...directResponse(), { apiVersion: 'networking.istio.io/v1alpha3', kind: 'EnvoyFilter', metadata: { name: 'all', namespace: 'istio-system' }, spec: { configPatches: [filter] } }] as never,
      clock: new ManualClock(0),
      logger: { warn: () => undefined },
    });
  });
  after(async () => {
    await mesh.close();
    await up.close();
    rls.close();
  });

  it('the call to the rate limit service is not itself limited (one call per app call, no loop); a gRPC caller over the limit gets RESOURCE_EXHAUSTED', async () => {
    const client = mesh.grpc.client(EchoClient, `grpc.${ECHO_NS}.svc.cluster.local:9090`) as unknown as Echo;
    try {
      const first = await unary(client, {});
      assert.equal(first.error, undefined);
      const second = await unary(client, {});
      assert.equal(second.error?.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.equal(rls.seen.length, 2);
      assert.deepEqual(rls.seen[0]?.descriptors, [[{ key: 'generic_key', value: 'all' }]]);
      assert.equal(up.hits, 1);
    } finally {
      client.close();
    }
  });

  it('a call its route answers itself (a direct response) is not asked about, even with the filter\'s own rate_limits (Envoy: no route entry, no call)', async () => {
    const n = rls.seen.length;
    const r = await mesh.fetch(`http://dr.${ECHO_NS}.svc.cluster.local/`);
    assert.equal(r.status, 204);
    assert.equal(rls.seen.length, n);
  });
});
