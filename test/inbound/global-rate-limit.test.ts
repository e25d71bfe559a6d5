/**
 * Global rate limiting on a workload's inbound side: Istio's RateLimit filter inserted for
 * SIDECAR_INBOUND (before the router), its rate limit service named as an Istio cluster
 * (`outbound|8081||ratelimit.<ns>.svc.cluster.local`), a VIRTUAL_HOST MERGE of `:path` → `PATH`,
 * and the rate limit service of Istio's configmap on grpc-js. Requests come over real sockets to
 * `mesh.createServer`; the mesh runs on a ManualClock (the filter's timeout), the service counts on
 * its own clock.
 *
 * - OVER_LIMIT: 429, `x-envoy-ratelimited: true`, the `x-ratelimit-*` headers of
 *   `enable_x_ratelimit_headers: DRAFT_VERSION_03` (Envoy's XRateLimitHeaderUtils), flag `RL`;
 * - OK: the app runs, the response has the `x-ratelimit-*` headers;
 * - the filter's `timeout` (and no `failure_mode_deny`): the request goes on when it passes;
 * - with `failure_mode_deny` and `status_on_error`, a service that is down answers that status, flag `RLSE`.
 */
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createMesh, ManualClock, type Mesh } from '../../src/index.ts';
import { capture, telemetry } from '../helpers/access-log.ts';
import { ISTIO_CONFIGMAP, type RateLimitService, services, startRateLimitService } from '../helpers/rate-limit-service.ts';
import { until } from '../helpers/until.ts';

const RL = 'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit';
const HCM = 'envoy.filters.network.http_connection_manager';

function envoyFilter(config: Record<string, unknown>): object {
  return {
    apiVersion: 'networking.istio.io/v1alpha3',
    kind: 'EnvoyFilter',
    metadata: { name: 'inbound-ratelimit', namespace: 'echo' },
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
              typed_config: {
                '@type': RL,
                domain: 'echo-ratelimit',
                rate_limit_service: { grpc_service: { envoy_grpc: { cluster_name: 'outbound|8081||ratelimit.istio-ratelimit.svc.cluster.local' } }, transport_api_version: 'V3' },
                ...config,
              },
            },
          },
        },
        { applyTo: 'VIRTUAL_HOST', match: { context: 'SIDECAR_INBOUND' }, patch: { operation: 'MERGE', value: { rate_limits: [{ actions: [{ request_headers: { header_name: ':path', descriptor_key: 'PATH' } }] }] } } },
      ],
    },
  };
}

describe('global rate limiting on the inbound side (mesh.createServer)', () => {
  let rls: RateLimitService;
  let rlsNow = 0;
  const clock = new ManualClock(0);
  const meshes: Mesh[] = [];
  const servers: Server[] = [];
  let appHits = 0;

  before(async () => {
    rls = await startRateLimitService(ISTIO_CONFIGMAP, () => rlsNow);
  });
  after(async () => {
    for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
    for (const m of meshes) await m.close();
    rls.close();
  });

  async function serve(config: Record<string, unknown>): Promise<{ url: string; log: ReturnType<typeof capture> }> {
    const log = capture();
    const mesh = await createMesh({
      service: 'srv',
      namespace: 'echo',
      labels: { app: 'srv' },
      clock,
      logger: log.logger,
      extensionProviders: [{ name: 'l', envoyFileAccessLog: { logFormat: { text: '%RESPONSE_CODE% %RESPONSE_FLAGS%' } } }],
      config: [...services(rls.port, 1), envoyFilter(config), telemetry('mesh-default', { accessLogging: [{ providers: [{ name: 'l' }] }] })] as never,
    });
    meshes.push(mesh);
    const server = mesh.createServer((_req, res) => {
      appHits++;
      res.end('app');
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, log };
  }

  it('OVER_LIMIT: 429 with x-envoy-ratelimited and x-ratelimit-* headers, flag RL; OK: the app answers with the headers', async () => {
    const { url, log } = await serve({ timeout: '10s', enable_x_ratelimit_headers: 'DRAFT_VERSION_03' });
    rlsNow = 0;
    const first = await fetch(`${url}/`);
    assert.equal(first.status, 200);
    assert.equal(await first.text(), 'app');
    assert.deepEqual(
      ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'].map((h) => first.headers.get(h)),
      ['1, 1;w=60', '0', '60'],
    );
    const second = await fetch(`${url}/`);
    assert.equal(second.status, 429);
    await second.text();
    assert.equal(second.headers.get('x-envoy-ratelimited'), 'true');
    assert.equal(second.headers.get('x-ratelimit-remaining'), '0');
    assert.equal(appHits, 1);
    await until(() => log.lines().length >= 2, 'two access log lines');
    assert.deepEqual(log.lines().slice(0, 2), ['200 -', '429 RL']);
  });

  it('the timeout passes (service hanging, no failure_mode_deny): the request goes on to the app', async () => {
    const { url } = await serve({ timeout: '0.05s' });
    rls.control.mode = 'hang';
    try {
      const n = rls.seen.length;
      const hits = appHits;
      const pending = fetch(`${url}/other`);
      await until(() => rls.seen.length > n, 'the call to the rate limit service');
      clock.advance(49);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(appHits, hits, 'still waiting for the service before the timeout');
      clock.advance(1);
      const r = await pending;
      assert.equal(r.status, 200);
      assert.equal(await r.text(), 'app');
    } finally {
      rls.control.mode = 'count';
    }
  });

  it('failure_mode_deny with status_on_error: the service down answers that status, flag RLSE, and the app never runs', async () => {
    const { url, log } = await serve({ timeout: '10s', failure_mode_deny: true, status_on_error: { code: 503 } });
    rls.control.mode = 'error';
    try {
      const hits = appHits;
      const r = await fetch(`${url}/other`);
      assert.equal(r.status, 503);
      await r.text();
      assert.equal(appHits, hits);
      await until(() => log.lines().length >= 1, 'the access log line');
      assert.deepEqual(log.lines(), ['503 RLSE']);
    } finally {
      rls.control.mode = 'count';
    }
  });

  it('mesh.explainInbound names the service and what it would be asked about', async () => {
    const log = capture();
    const mesh = await createMesh({ service: 'srv', namespace: 'echo', labels: { app: 'srv' }, clock, logger: log.logger, config: [...services(rls.port, 1), envoyFilter({ failure_mode_deny: true })] as never });
    meshes.push(mesh);
    const x = await mesh.explainInbound({ url: 'http://srv.echo:8080/' });
    assert.deepEqual(
      x.rateLimits?.map((r) => [r.filter, r.rateLimitService, r.descriptors]),
      [['envoy.filters.http.ratelimit', 'ratelimit.istio-ratelimit.svc.cluster.local:8081 (domain echo-ratelimit)', [['PATH=/']]]],
    );
    assert.ok(x.assumes.some((a) => a.includes('is answered OK by the rate limit service ratelimit.istio-ratelimit.svc.cluster.local:8081 (domain echo-ratelimit) for PATH=/ (else 429; 500 if it cannot be asked (failure_mode_deny))')), x.assumes.join('\n'));
  });

  it("request_type: a caller's own x-envoy-internal: true is removed, so it neither skips an external limit nor reaches an internal one (Envoy's connection manager removes it and a sidecar's inbound listener sees no internal request)", async () => {
    const internal = await serve({ timeout: '10s', request_type: 'internal' });
    const n = rls.seen.length;
    await (await fetch(`${internal.url}/other`)).text();
    await (await fetch(`${internal.url}/other`, { headers: { 'x-envoy-internal': 'true' } })).text();
    assert.equal(rls.seen.length, n);
    const external = await serve({ timeout: '10s', request_type: 'external' });
    rlsNow = 0;
    const r = await fetch(`${external.url}/other`, { headers: { 'x-envoy-internal': 'true' } });
    await r.text();
    assert.equal(rls.seen.length, n + 1);
  });

  it('a request with no descriptor (disable the actions with a stage of another number) makes no call', async () => {
    const { url } = await serve({ timeout: '10s', stage: 1 });
    const n = rls.seen.length;
    const r = await fetch(`${url}/`);
    assert.equal(r.status, 200);
    await r.text();
    assert.equal(rls.seen.length, n);
  });
});
