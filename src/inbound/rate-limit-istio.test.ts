import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { clt, compile, fixture, load, outcomes, request, srvWorkload } from '../../test/helpers/inbound-rate-limit.ts';
import { validateYaml } from '../../test/helpers/config.ts';
import { ManualClock, } from '../core/clock.ts';
import { compileRateLimit, type RateLimitDenial, rateLimitResponseHeaders, type RateLimitWorkload } from './rate-limit-phase.ts';

describe('rate-limit phase: Istio\'s rate-limit testdata', () => {
  it('enable_envoy_local_ratelimit.yaml: 1 request per 600s for app=clt, answered as Envoy answers', () => {
    const clock = new ManualClock(0);
    const phase = compile(fixture('enable_envoy_local_ratelimit.yaml'), { service: 'clt', namespace: 'echo', labels: { app: 'clt' } }, clock);
    assert.equal(phase.run(request()), undefined);
    const d = phase.run(request()) as RateLimitDenial;
    assert.deepEqual(
      { status: d.status, grpcStatus: d.grpcStatus, body: d.body, headers: { ...d.headers }, phase: d.phase, flag: d.flag },
      { status: 429, grpcStatus: 14, body: 'local_rate_limited', headers: { 'x-local-rate-limit': 'true' }, phase: 'rate-limit', flag: 'RL' },
    );
    assert.match(d.reason, /local rate limit: envoy\.filters\.http\.local_ratelimit from EnvoyFilter istio-system\/filter-local-ratelimit-svc configPatches\[0\]/);
    clock.advance(599_999);
    assert.equal(outcomes(phase, [{}]), 'r');
    clock.advance(1);
    assert.equal(outcomes(phase, [{}, {}]), 'ar');
    assert.deepEqual(phase.stats.get('http_local_rate_limiter'), { enabled: 5, ok: 2, rate_limited: 3, enforced: 3 });
  });

  it('enable_envoy_local_ratelimit.yaml: the filter selects app=clt only', () => {
    assert.equal(compileRateLimit(fixture('enable_envoy_local_ratelimit.yaml'), srvWorkload, 'istio-system', new ManualClock(0)), undefined);
  });

  it('enable_envoy_local_ratelimit_per_route.yaml: the route bucket is for outbound calls (src/outbound/rate-limit.test.ts); the inbound filter has no filter_enabled (0%), so nothing limits inbound requests', () => {
    assert.equal(compileRateLimit(fixture('enable_envoy_local_ratelimit_per_route.yaml'), { service: 'clt', namespace: 'echo', labels: { app: 'clt' } }, 'istio-system', new ManualClock(0)), undefined);
  });

  it('enable_envoy_local_ratelimit_sa.yaml: the client\'s service account (its certificate\'s URI SAN) has 1 per 600s; others share 1000 per second', () => {
    const clock = new ManualClock(0);
    // srv's Service maps port 80 to the workload port 8888, so its virtual host is inbound|http|80.
    const service = load(`apiVersion: v1\nkind: Service\nmetadata:\n  name: srv\n  namespace: echo\nspec:\n  selector:\n    app: srv\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8888\n`);
    const phase = compile([...fixture('enable_envoy_local_ratelimit_sa.yaml'), ...service], srvWorkload, clock);
    const fromClt = { scheme: 'https', peer: clt };
    assert.equal(outcomes(phase, [fromClt, fromClt]), 'ar');
    // Another service account, and plaintext callers (no certificate: no descriptor), take from the 1000/s bucket.
    const other = { scheme: 'https', peer: { ...clt, principal: 'spiffe://cluster.local/ns/echo/sa/other' } };
    assert.equal(outcomes(phase, [other, other, {}, {}]), 'aaaa');
    // clt's allowed request took a default token too (always_consume_default_token_bucket): 1000 - 5 left.
    assert.equal(outcomes(phase, Array(995).fill({})), 'a'.repeat(995));
    assert.equal(outcomes(phase, [{}, other]), 'rr');
    clock.advance(1);
    assert.equal(outcomes(phase, [other, other]), 'ar');
    // clt's own bucket refills only after 600s.
    clock.advance(599_998);
    assert.equal(outcomes(phase, [fromClt]), 'r');
    clock.advance(1);
    assert.equal(outcomes(phase, [fromClt]), 'a');
  });

  it('enable_envoy_local_ratelimit_sa.yaml: without a Service naming port 80, the virtual host inbound|http|80 is not the workload\'s, so only the 1000/s bucket applies', () => {
    const phase = compile(fixture('enable_envoy_local_ratelimit_sa.yaml'), srvWorkload, new ManualClock(0));
    assert.equal(outcomes(phase, Array(3).fill({ scheme: 'https', peer: clt })), 'aaa');
  });

  it('local-rate-limit-service.yaml: /productpage 10 per minute, everything 100 per minute, with x-ratelimit headers', () => {
    const clock = new ManualClock(0);
    // The sample's route patch names virtual host inbound|http|8000.
    const workload: RateLimitWorkload = { service: 'productpage', namespace: 'default', labels: { app: 'productpage' }, servicePorts: new Map([[9080, [8000]]]) };
    const phase = compile(fixture('local-rate-limit-service.yaml'), workload, clock);
    const page = { localPort: 9080, path: '/productpage?u=normal' };
    const first = request(page);
    assert.equal(phase.run(first), undefined);
    assert.deepEqual({ ...rateLimitResponseHeaders(first) }, { 'x-ratelimit-limit': '10', 'x-ratelimit-remaining': '9', 'x-ratelimit-reset': '0' });
    assert.equal(outcomes(phase, Array(9).fill(page)), 'a'.repeat(9));
    const d = phase.run(request({ ...page, path: '/PRODUCTPAGE' })) as RateLimitDenial;
    assert.equal(d.status, 429);
    assert.deepEqual({ ...d.headers }, { 'x-local-rate-limit': 'true', 'x-ratelimit-limit': '10', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '6' });
    // Other paths: the default bucket, which the 10 /productpage requests also drew from.
    const other = { localPort: 9080, path: '/api/v1/products' };
    assert.equal(outcomes(phase, Array(91).fill(other)), `${'a'.repeat(90)}r`);
    // One /productpage token comes back 6 s later.
    clock.advance(6_000);
    assert.equal(outcomes(phase, [page, page]), 'ar');
  });
});

describe('rate-limit phase: the example of docs/rate-limiting.md', () => {
  it('validates with no warning and lets 10 requests a minute through to app=productpage, then refuses as the page says', () => {
    const page = readFileSync(join(import.meta.dirname, '../../docs/rate-limiting.md'), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(page)?.[1];
    assert.ok(yaml !== undefined);
    const { resources, errors, warnings } = validateYaml(yaml);
    assert.deepEqual([...errors, ...warnings], []);
    const clock = new ManualClock(0);
    const phase = compile(resources, { service: 'productpage', namespace: 'default', labels: { app: 'productpage', version: 'v1' } }, clock);
    assert.equal(outcomes(phase, Array(10).fill({ localPort: 9080 })), 'a'.repeat(10));
    const d = phase.run(request({ localPort: 9080 })) as RateLimitDenial;
    assert.deepEqual([d.status, d.body, d.headers?.['x-local-rate-limit']], [429, 'local_rate_limited', 'true']);
  });
});

