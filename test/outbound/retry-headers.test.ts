/**
 * With `trustEnvoyRequestHeaders: true` an app widens its route's retry policy for one call with
 * Envoy's request headers, as behind an Istio sidecar whose istiod runs with
 * PILOT_SIDECAR_USE_REMOTE_ADDRESS=true (the app's x-envoy-* headers trusted): x-envoy-retry-on
 * adds conditions, x-envoy-max-retries sets the number of retries, x-envoy-retriable-status-codes
 * adds status codes; none reaches the upstream (Envoy's RetryStateImpl consumes them).
 */
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { createMesh, type Mesh, seededRandom } from '../../src/index.ts';
import { serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

describe('x-envoy-retry-on and x-envoy-max-retries', () => {
  let up: Upstream;
  let mesh: Mesh;
  /** Per path: how many of its first requests answer 503. */
  const failFirst: Record<string, number> = { '/off': 1, '/widened': 3, '/bogus': 1, '/max-only': 1, '/codes': 1 };
  const hits: Record<string, number> = {};
  const seen: IncomingHttpHeaders[] = [];
  before(async () => {
    up = await startUpstream('u', (req, res) => {
      const path = req.url ?? '/';
      hits[path] = (hits[path] ?? 0) + 1;
      seen.push(req.headers);
      res.statusCode = (hits[path] as number) <= (failFirst[path] ?? 0) ? 503 : 200;
      res.end(String(hits[path]));
    });
    const route = [{ destination: { host: 'svc' } }];
    mesh = await createMesh({
      service: 'client',
      random: seededRandom(3),
      trustEnvoyRequestHeaders: true,
      config: [
        serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }]),
        virtualService('svc', ['svc'], [
          { match: [{ uri: { exact: '/off' } }, { uri: { exact: '/bogus' } }], route, retries: { attempts: 0 } },
          { match: [{ uri: { exact: '/widened' } }], route, retries: { attempts: 1, retryOn: 'connect-failure' } },
          { match: [{ uri: { exact: '/codes' } }], route, retries: { attempts: 1, retryOn: 'retriable-status-codes' } },
          { route },
        ]),
      ],
    });
  });
  after(async () => {
    await mesh.close();
    await up.close();
  });

  async function call(path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
    const res = await mesh.fetch(`http://svc${path}`, { headers });
    return { status: res.status, body: await res.text() };
  }

  test('on a route without retries, x-envoy-retry-on: 5xx gives the call one retry; the header stays here', async () => {
    const from = seen.length;
    assert.deepEqual(await call('/off', { 'x-envoy-retry-on': '5xx' }), { status: 200, body: '2' });
    assert.equal(seen.length - from, 2);
    for (const h of seen.slice(from)) assert.equal(h['x-envoy-retry-on'], undefined);
  });

  test('x-envoy-retry-on adds to the route\'s conditions; x-envoy-max-retries sets the retries', async () => {
    const from = seen.length;
    assert.deepEqual(await call('/widened', { 'x-envoy-retry-on': 'gateway-error', 'x-envoy-max-retries': '3' }), { status: 200, body: '4' });
    for (const h of seen.slice(from)) assert.equal(h['x-envoy-max-retries'], undefined);
  });

  test('x-envoy-retriable-status-codes and x-envoy-retriable-header-names are read, and not sent upstream', async () => {
    const from = seen.length;
    const headers = { 'x-envoy-retriable-status-codes': '503', 'x-envoy-retriable-header-names': 'x-none', 'x-envoy-hedge-on-per-try-timeout': 'true' };
    assert.deepEqual(await call('/codes', headers), { status: 200, body: '2' });
    assert.equal(seen.length - from, 2);
    for (const h of seen.slice(from)) {
      assert.equal(h['x-envoy-retriable-status-codes'], undefined);
      assert.equal(h['x-envoy-retriable-header-names'], undefined);
      // Consumed by Envoy's RetryStateImpl::create with the others; meshlet does not hedge.
      assert.equal(h['x-envoy-hedge-on-per-try-timeout'], undefined);
    }
  });

  test('a condition Envoy does not know adds nothing; x-envoy-max-retries alone does not widen the conditions', async () => {
    assert.deepEqual(await call('/bogus', { 'x-envoy-retry-on': 'bogus' }), { status: 503, body: '1' });
    // Istio's default policy does not retry a 503.
    assert.deepEqual(await call('/max-only', { 'x-envoy-max-retries': '5' }), { status: 503, body: '1' });
  });
});
