/**
 * The server span of a request the mesh refused (AuthorizationPolicy DENY) still names the
 * inbound cluster: Envoy's connection manager attaches the route's cluster when the route
 * resolves (`refreshCachedRoute` → `setUpstreamClusterInfo`; the RBAC filter resolves the route
 * for its per-route config before it denies), and the tracer's `setCommonTags` writes
 * `upstream_cluster` / `upstream_cluster.name` whenever the stream has one — `upstream_address`
 * only once a host was picked (the app was never reached: none).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { request } from 'undici';
import { finished, server, setup, useTracingSdk, exporter } from '../helpers/tracing-policy.ts';

useTracingSdk();

describe('the server span of a denied request', () => {
  it('upstream_cluster is the inbound cluster; no upstream_address', async () => {
    const deny = { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny-up', namespace: 'default' }, spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/up'] } }] }] } };
    const s = await setup({ telemetry: { tracing: { samplingPercentage: 100 } }, telemetryResources: [deny] });
    try {
      exporter.reset();
      const r = await request(`http://127.0.0.1:${s.port}/up`);
      await r.body.text();
      assert.equal(r.statusCode, 403);
      const span = server(await finished(1));
      assert.deepEqual(
        [span?.attributes['http.status_code'], span?.attributes.upstream_cluster, span?.attributes['upstream_cluster.name'], span?.attributes.upstream_address],
        ['403', `inbound|${s.port}||`, `inbound|${s.port}||`, undefined],
      );
    } finally {
      await s.close();
    }
  });
});
