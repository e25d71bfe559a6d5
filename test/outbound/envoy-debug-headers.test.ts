/**
 * Istio's ProxyConfig `proxyHeaders.envoyDebugHeaders: { disabled: true }` (Envoy's router
 * `suppress_envoy_headers`) leaves out every router header on calls: `x-envoy-expected-rq-timeout-ms`
 * and, on a rewritten call, `x-envoy-original-path` (Envoy's finalizeRequestHeaders inserts it only
 * without suppress_envoy_headers). `x-envoy-attempt-count` has its own switch.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { meshFor } from '../helpers/mesh-calls.ts';
import { startUpstream, type Upstream } from '../helpers/upstreams.ts';

describe('proxyHeaders.envoyDebugHeaders on rewritten calls', () => {
  let up: Upstream;
  before(async () => {
    up = await startUpstream('u');
  });
  after(async () => {
    await up.close();
  });

  const http = [{ match: [{ uri: { prefix: '/old' } }], rewrite: { uri: '/new' }, timeout: '5s', route: [{ destination: { host: 'svc' } }] }];

  async function headersSeen(opts: object): Promise<Record<string, unknown>> {
    const mesh = await meshFor([{ port: up.port }], http, [], opts);
    try {
      const before = up.seen.length;
      const res = await mesh.fetch('http://svc/old/x?q=1');
      await res.text();
      assert.equal(res.status, 200);
      const seen = up.seen[before];
      assert.equal(seen?.url, '/new/x?q=1');
      return seen.headers;
    } finally {
      await mesh.close();
    }
  }

  test('by default a rewritten call carries x-envoy-original-path and x-envoy-expected-rq-timeout-ms', async () => {
    const h = await headersSeen({});
    assert.equal(h['x-envoy-original-path'], '/old/x?q=1');
    assert.ok(h['x-envoy-expected-rq-timeout-ms'] !== undefined);
  });

  test('disabled: neither, as Envoy with suppress_envoy_headers', async () => {
    const h = await headersSeen({ proxyHeaders: { envoyDebugHeaders: { disabled: true } } });
    assert.equal(h['x-envoy-original-path'], undefined);
    assert.equal(h['x-envoy-expected-rq-timeout-ms'], undefined);
    assert.equal(h['x-envoy-attempt-count'], '1', 'attemptCount is its own switch');
  });
});
