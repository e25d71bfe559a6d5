/**
 * A route rate limit's `hits_addend` with the global rate limit filter (Envoy's
 * route_components.proto `RateLimit.HitsAddend`, sent as the descriptor's `hits_addend`, field 3
 * of `RateLimitDescriptor`, as `GrpcClientImpl::createRequest` does): a fixed `number`, or
 * `format: "%REQ(header)%"`. A real rate limit service (grpc-js on 127.0.0.1) that counts a
 * descriptor's hits_addend as envoyproxy/ratelimit does; calls through `mesh.fetch`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMesh, ManualClock, type Mesh } from '../../src/index.ts';
import { clusterPatch, envoyFilter, filterPatch, SRV, vhostPatch } from '../helpers/global-rate-limit-filters.ts';
import { type RateLimitService, services, startRateLimitService } from '../helpers/rate-limit-service.ts';
import { startUpstream, type Upstream } from '../helpers/upstreams.ts';

const CONFIG = { domain: 'echo-ratelimit', descriptors: [{ key: 'PATH', rate_limit: { unit: 'minute', requests_per_unit: 5 } }] } as const;
const path = (hits_addend: object) => ({ actions: [{ request_headers: { header_name: ':path', descriptor_key: 'PATH' } }], hits_addend });

describe('global rate limit: route hits_addend', () => {
  let rls: RateLimitService;
  let up: Upstream;
  let mesh: Mesh;
  const warnings: string[] = [];

  before(async () => {
    rls = await startRateLimitService(CONFIG, () => 0);
    up = await startUpstream('srv', (_req, res) => {
      res.end('hello');
    });
    mesh = await createMesh({
      service: 'clt',
      namespace: 'echo',
      labels: { app: 'clt' },
      config: [
        ...services(rls.port, up.port),
        envoyFilter('rl', [filterPatch(), clusterPatch()]),
        // One virtual host, two rate limits: a fixed 3 hits, and the hits x-hits holds.
        envoyFilter('rl-vh', [vhostPatch({ rate_limits: [path({ number: 3 }), { actions: [{ generic_key: { descriptor_value: 'by-header' } }], hits_addend: { format: '%REQ(x-hits)%' } }] })]),
      ] as never,
      clock: new ManualClock(0),
      logger: { warn: (m) => warnings.push(m), info: (m) => warnings.push(m) },
    });
  });
  after(async () => {
    await mesh.close();
    await up.close();
    rls.close();
  });

  it('number: the descriptor carries hits_addend 3, and 5 a minute allow one call', async () => {
    const first = await mesh.fetch(`http://${SRV}/n`, { headers: { 'x-hits': '2' } });
    assert.equal(first.status, 200);
    assert.deepEqual(rls.seen.at(-1)?.descriptorHits, [3, 2]);
    assert.equal((await mesh.fetch(`http://${SRV}/n`, { headers: { 'x-hits': '1' } })).status, 429);
  });

  it('format %REQ(x-hits)%: a value that is not a whole number up to 1e9 leaves that descriptor out (Envoy: an error)', async () => {
    for (const bad of ['abc', '-1', '1000000001']) {
      await (await mesh.fetch(`http://${SRV}/f-${bad}`, { headers: { 'x-hits': bad } })).text();
      assert.deepEqual(rls.seen.at(-1)?.descriptors, [[{ key: 'PATH', value: `/f-${bad}` }]], bad);
    }
    await (await mesh.fetch(`http://${SRV}/absent`)).text();
    assert.deepEqual(rls.seen.at(-1)?.descriptors, [[{ key: 'PATH', value: '/absent' }]]);
  });

  it('was applied, not skipped (the config warnings are logged by now)', () => {
    assert.deepEqual(warnings.filter((w) => /EnvoyFilter|skipped/.test(w)), []);
  });
});
