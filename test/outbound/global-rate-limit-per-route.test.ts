/**
 * The global rate limit filter's per-route config, `RateLimitPerRoute` in a route's or virtual
 * host's `typed_per_filter_config` under the filter's name, as Envoy's filter resolves it
 * (ratelimit.cc `populateRateLimitDescriptors`, `initializeVirtualHostRateLimitOption`,
 * `getDomain`): the most specific one (the route's, else the virtual host's); its `rate_limits`,
 * when set, are the only ones read; else `vh_rate_limits` says whether the virtual host's rate
 * limits join the route's; its `domain` replaces the filter's. A real rate limit service (grpc-js
 * on 127.0.0.1); calls through `mesh.fetch`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMesh, ManualClock, type Mesh } from '../../src/index.ts';
import { clusterPatch, envoyFilter, filterPatch, PATH_ACTION, RL_PER_ROUTE, routePatch, SRV, vhostPatch } from '../helpers/global-rate-limit-filters.ts';
import { ISTIO_CONFIGMAP, type RateLimitService, type SeenRequest, services, startRateLimitService } from '../helpers/rate-limit-service.ts';
import { startUpstream, type Upstream } from '../helpers/upstreams.ts';

const NAME = 'envoy.filters.http.ratelimit';
const generic = (value: string) => ({ actions: [{ generic_key: { descriptor_value: value } }] });
const perRoute = (fields: Record<string, unknown>) => ({ typed_per_filter_config: { [NAME]: { '@type': RL_PER_ROUTE, ...fields } } });

describe('global rate limit: RateLimitPerRoute', () => {
  let rls: RateLimitService;
  let up: Upstream;
  const meshes: Mesh[] = [];
  const warnings: string[] = [];

  before(async () => {
    rls = await startRateLimitService(ISTIO_CONFIGMAP, () => 0);
    up = await startUpstream('srv', (_req, res) => {
      res.end('hello');
    });
  });
  after(async () => {
    for (const m of meshes) await m.close();
    await up.close();
    rls.close();
  });

  /** The request the service heard for one call through a mesh with these route / virtual host patches (undefined: no call). */
  async function heard(patches: object[], filter: Record<string, unknown> = {}): Promise<SeenRequest | undefined> {
    const mesh = await createMesh({
      service: 'clt',
      namespace: 'echo',
      labels: { app: 'clt' },
      config: [...services(rls.port, up.port), envoyFilter(`rl-${meshes.length}`, [filterPatch(filter), clusterPatch()]), envoyFilter(`routes-${meshes.length}`, patches)] as never,
      clock: new ManualClock(0),
      logger: { warn: (m) => warnings.push(m), info: (m) => warnings.push(m) },
    });
    meshes.push(mesh);
    const before = rls.seen.length;
    const r = await mesh.fetch(`http://${SRV}/p`);
    assert.equal(r.status, 200);
    await r.text();
    assert.ok(rls.seen.length - before <= 1);
    return rls.seen.length > before ? rls.seen.at(-1) : undefined;
  }

  it("a route's rate_limits and domain replace the filter's, the route's and the virtual host's", async () => {
    const seen = await heard([vhostPatch({ rate_limits: [PATH_ACTION] }), routePatch({ route: { rate_limits: [generic('route')] }, ...perRoute({ rate_limits: [generic('per-route')], domain: 'per-route-domain' }) })], { rate_limits: [generic('filter')] });
    assert.deepEqual(seen, { domain: 'per-route-domain', descriptors: [[{ key: 'generic_key', value: 'per-route' }]], hits_addend: 0 });
  });

  it("vh_rate_limits INCLUDE: the virtual host's rate limits join the route's", async () => {
    const seen = await heard([vhostPatch({ rate_limits: [PATH_ACTION] }), routePatch({ route: { rate_limits: [generic('route')] }, ...perRoute({ vh_rate_limits: 'INCLUDE' }) })]);
    assert.deepEqual(seen?.descriptors, [[{ key: 'generic_key', value: 'route' }], [{ key: 'PATH', value: '/p' }]]);
    assert.equal(seen?.domain, 'echo-ratelimit');
  });

  it("vh_rate_limits IGNORE: a route without rate limits does not use the virtual host's (no call)", async () => {
    assert.equal(await heard([vhostPatch({ rate_limits: [PATH_ACTION] }), routePatch(perRoute({ vh_rate_limits: 'IGNORE' }))]), undefined);
  });

  it("the most specific config wins: the route's over the virtual host's; the virtual host's alone applies", async () => {
    const both = await heard([vhostPatch({ rate_limits: [PATH_ACTION], ...perRoute({ domain: 'vh-domain', rate_limits: [generic('vh')] }) }), routePatch(perRoute({ domain: 'route-domain' }))]);
    // The route's config has no rate_limits: the route's (none), then the virtual host's (OVERRIDE).
    assert.deepEqual(both, { domain: 'route-domain', descriptors: [[{ key: 'PATH', value: '/p' }]], hits_addend: 0 });
    const vh = await heard([vhostPatch({ rate_limits: [PATH_ACTION], ...perRoute({ domain: 'vh-domain', rate_limits: [generic('vh')] }) })]);
    assert.deepEqual(vh, { domain: 'vh-domain', descriptors: [[{ key: 'generic_key', value: 'vh' }]], hits_addend: 0 });
  });

  it("the filter's own rate_limits apply whatever its stage (Envoy ignores their stage)", async () => {
    const seen = await heard([vhostPatch({ rate_limits: [PATH_ACTION] })], { stage: 2, rate_limits: [generic('filter')] });
    assert.deepEqual(seen?.descriptors, [[{ key: 'generic_key', value: 'filter' }]]);
  });

  it('was applied, not skipped (the config warnings are logged by now)', () => {
    assert.deepEqual(warnings.filter((w) => /EnvoyFilter|skipped/.test(w)), []);
  });
});
