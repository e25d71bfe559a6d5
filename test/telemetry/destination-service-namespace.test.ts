/**
 * `destination_service_namespace` on the client side of a call that reached no endpoint (no
 * healthy upstream, a fault abort): the namespace of the service the route named. The proxy's
 * stats filter reads it from the cluster's `istio` metadata (`services[0].namespace`, istiod's
 * `buildServiceMetadata`), which the connection manager attaches as soon as the route is resolved
 * — before any filter answers and whether or not an endpoint is picked (Envoy
 * `ConnectionManagerImpl::ActiveStream::refreshCachedRoute` → `setUpstreamClusterInfo`; istio/proxy
 * `istio_stats.cc` `populatePeerInfo`: `service_namespace`, else the peer's namespace). Kiali's
 * per-namespace service queries select on it, so a failure must not fall into `unknown`.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { sdk } from '../helpers/metric-reader.ts';

describe('destination_service_namespace of a call that reached no endpoint', () => {
  test("UH and FI: the service's namespace, not unknown", async () => {
    const m = sdk();
    const se = (name: string) => ({
      apiVersion: 'networking.istio.io/v1',
      kind: 'ServiceEntry',
      metadata: { name, namespace: 'shop' },
      spec: { hosts: [`${name}.shop.svc.cluster.local`], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }], endpoints: [] },
    });
    const abort = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'cart', namespace: 'shop' },
      spec: { hosts: ['cart.shop.svc.cluster.local'], http: [{ fault: { abort: { httpStatus: 418, percentage: { value: 100 } } }, route: [{ destination: { host: 'cart.shop.svc.cluster.local' } }] }] },
    };
    const mesh = await createMesh({ service: 'productpage', logger: { warn: () => undefined }, telemetry: { metrics: { meterProvider: m.provider } }, config: [se('ratings'), se('cart'), abort] });
    try {
      for (const url of ['http://ratings.shop.svc.cluster.local:9080/', 'http://cart.shop.svc.cluster.local:9080/']) await (await mesh.fetch(url)).text();
      const points = (await m.points('istio_requests_total')).map((p) => [p.attributes['response_flags'], p.attributes['destination_service'], p.attributes['destination_service_namespace'], p.attributes['destination_workload_namespace']]);
      assert.deepEqual(
        points.sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
        [
          ['FI', 'cart.shop.svc.cluster.local', 'shop', 'unknown'],
          ['UH', 'ratings.shop.svc.cluster.local', 'shop', 'unknown'],
        ],
      );
    } finally {
      await mesh.close();
      await m.shutdown();
    }
  });
});
