/**
 * The global rate limit filter's runtime fractions (Envoy's `rate_limit.proto`: `filter_enabled`,
 * `filter_enforced`, `failure_mode_deny_percent`, each a RuntimeFractionalPercent whose
 * `default_value` applies, meshlet having no runtime), drawn with the mesh's `random`. A real
 * rate limit service (grpc-js on 127.0.0.1) and upstream; calls through `mesh.fetch`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMesh, ManualClock, type Mesh } from '../../src/index.ts';
import { clusterPatch, envoyFilter, filterPatch, PATH_ACTION, SRV, vhostPatch } from '../helpers/global-rate-limit-filters.ts';
import { ISTIO_CONFIGMAP, type RateLimitService, services, startRateLimitService } from '../helpers/rate-limit-service.ts';
import { startUpstream, type Upstream } from '../helpers/upstreams.ts';

const pct = (n: number) => ({ default_value: { numerator: n, denominator: 'HUNDRED' }, runtime_key: 'ratelimit.x' });

describe('global rate limit: filter_enabled, filter_enforced, failure_mode_deny_percent', () => {
  let rls: RateLimitService;
  let up: Upstream;
  const meshes: Mesh[] = [];

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

  /** A mesh whose every draw is `draw` (the mesh draws for other things too: a constant keeps the test exact). */
  async function meshWith(extra: Record<string, unknown>, draw = 0.99): Promise<Mesh> {
    const mesh = await createMesh({
      service: 'clt',
      namespace: 'echo',
      labels: { app: 'clt' },
      config: [...services(rls.port, up.port), envoyFilter(`rl-${meshes.length}`, [filterPatch(extra), clusterPatch(), vhostPatch({ rate_limits: [PATH_ACTION] })])] as never,
      clock: new ManualClock(0),
      random: { next: () => draw },
      logger: { warn: () => undefined },
    });
    meshes.push(mesh);
    return mesh;
  }

  it('filter_enabled: a request the draw leaves out is not asked about (floor(random × 100) < numerator)', async () => {
    const out = await meshWith({ filter_enabled: pct(50) }, 0.7); // 70 ≥ 50: not enabled
    const into = await meshWith({ filter_enabled: pct(50) }, 0.2); // 20 < 50: enabled
    const seen = rls.seen.length;
    assert.equal((await out.fetch(`http://${SRV}/a`)).status, 200);
    assert.equal(rls.seen.length, seen);
    assert.equal((await into.fetch(`http://${SRV}/a`)).status, 200);
    assert.equal(rls.seen.length, seen + 1);
  });

  it('filter_enforced 0%: an over-limit answer lets the request through, x-envoy-ratelimited on its response', async () => {
    const mesh = await meshWith({ filter_enforced: pct(0) });
    // PATH=/ allows 1 a minute: the second call is over the limit.
    const first = await mesh.fetch(`http://${SRV}/`);
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('x-envoy-ratelimited'), null);
    const second = await mesh.fetch(`http://${SRV}/`);
    assert.equal(second.status, 200);
    assert.equal(await second.text(), 'hello');
    assert.equal(second.headers.get('x-envoy-ratelimited'), 'true');
  });

  it('filter_enforced 50%: the draw decides which over-limit answers refuse', async () => {
    // PATH=/ is over its limit by now (the test before used it up).
    const enforced = await meshWith({ filter_enforced: pct(50) }, 0.1);
    const not = await meshWith({ filter_enforced: pct(50) }, 0.9);
    assert.equal((await enforced.fetch(`http://${SRV}/`)).status, 429);
    assert.equal((await not.fetch(`http://${SRV}/`)).status, 200);
  });

  it('failure_mode_deny_percent replaces failure_mode_deny: 0% lets through despite failure_mode_deny, 100% refuses without it', async () => {
    const open = await meshWith({ failure_mode_deny: true, failure_mode_deny_percent: pct(0) });
    const closed = await meshWith({ failure_mode_deny_percent: pct(100) });
    rls.control.mode = 'error';
    try {
      assert.equal((await open.fetch(`http://${SRV}/b`)).status, 200);
      assert.equal((await closed.fetch(`http://${SRV}/b`)).status, 500);
    } finally {
      rls.control.mode = 'count';
    }
  });
});
