/**
 * The client span's name is the route's decorator, which istiod sets on every route it builds
 * from a VirtualService or for a service (`route.GetRouteOperation`: `host:port/*`). A call with
 * no route (NR) or through Istio's catch-all routes (`allow_any` to PassthroughCluster,
 * `block_all`: `buildCatchAllVirtualHost` sets no decorator) keeps the name Envoy's tracer gave
 * the span when it started it: `egress <host>` (`Tracing::TracerImpl::startSpan`).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SpanKind } from '@opentelemetry/api';
import { createMesh } from '../../src/index.ts';
import { exporter, finished, useTracingSdk } from '../helpers/tracing-policy.ts';
import { serviceEntry, startUpstream, virtualService } from '../helpers/upstreams.ts';

useTracingSdk();

describe('the client span of a call without a route decorator', () => {
  it('passthrough and NR: egress <host>; a routed call: host:port/*', async () => {
    const up = await startUpstream('outside');
    const mesh = await createMesh({
      service: 'productpage',
      identity: 'none',
      logger: { warn: () => undefined },
      telemetry: { tracing: { samplingPercentage: 100 } },
      config: [serviceEntry('ratings', 'ratings.default.svc.cluster.local', 9080, [{ port: up.port }]), virtualService('ratings', ['ratings.default.svc.cluster.local'], [{ match: [{ uri: { prefix: '/r' } }], route: [{ destination: { host: 'ratings.default.svc.cluster.local' } }] }])],
    });
    try {
      exporter.reset();
      for (const url of [`http://127.0.0.1:${up.port}/x`, 'http://ratings.default.svc.cluster.local:9080/nomatch', 'http://ratings.default.svc.cluster.local:9080/r']) await (await mesh.fetch(url)).text();
      const names = (await finished(4)).filter((s) => s.kind === SpanKind.CLIENT && !s.name.startsWith('router ')).map((s) => s.name);
      assert.deepEqual(names, [`egress 127.0.0.1:${up.port}`, 'egress ratings.default.svc.cluster.local:9080', 'ratings.default.svc.cluster.local:9080/*']);
    } finally {
      await mesh.close();
      await up.close();
    }
  });
});
