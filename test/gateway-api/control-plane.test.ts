/**
 * An HTTPRoute served by `meshlet control-plane`: a producer route in the Service's namespace
 * reaches a client mesh of another namespace and routes its calls (the route goes to every
 * workload; the client makes the VirtualService of it, as in embedded mode).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { startUpstream } from '../helpers/upstreams.ts';
import { quietLogger, startTestControlPlane } from '../control-plane/client-helpers.ts';

describe('an HTTPRoute through the control plane', () => {
  it('routes a client in another namespace by the producer route', async () => {
    const v1 = await startUpstream('v1');
    const v2 = await startUpstream('v2');
    const svc = (name: string, selector: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'shop' }, spec: { selector, ports: [{ name: 'http', port: 9080 }] } });
    const we = (name: string, labels: Record<string, string>, port: number) => ({ apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name, namespace: 'shop' }, spec: { address: '127.0.0.1', ports: { http: port }, labels } });
    const t = await startTestControlPlane({
      shop: [
        svc('reviews', { app: 'reviews' }),
        svc('reviews-v2', { app: 'reviews', version: 'v2' }),
        we('r1', { app: 'reviews', version: 'v1' }, v1.port),
        we('r2', { app: 'reviews', version: 'v2' }, v2.port),
        {
          apiVersion: 'gateway.networking.k8s.io/v1',
          kind: 'HTTPRoute',
          metadata: { name: 'reviews', namespace: 'shop' },
          spec: { parentRefs: [{ group: '', kind: 'Service', name: 'reviews' }], rules: [{ backendRefs: [{ name: 'reviews-v2', port: 9080 }] }] },
        },
      ],
    });
    const token = await t.cp.mintToken({ service: 'web', namespace: 'frontend' });
    const mesh = await createMesh({ service: 'web', namespace: 'frontend', controlPlane: t.cp.url, token, logger: quietLogger, drainMs: 0 });
    try {
      for (let i = 0; i < 10; i++) assert.equal(await (await mesh.fetch('http://reviews.shop:9080/')).text(), 'v2');
    } finally {
      await mesh.close();
      await t.close();
      await v1.close();
      await v2.close();
    }
  });
});
