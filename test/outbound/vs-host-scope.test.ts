/**
 * Calls through `mesh.fetch` to hosts a VirtualService names without a service behind them, with
 * no Sidecar: routed as istiod's default scope (a `*` / `*` Sidecar) routes them — on port 80, or
 * beside a service the VirtualService names — and a `<name>.<namespace>` host (which Istio does
 * not expand) leaves the service's own ports to the service's routes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { call, serviceEntry, startUpstream, type Upstream } from '../helpers/upstreams.ts';

const NET = 'networking.istio.io/v1';
const inNamespace = (o: object, namespace: string) => ({ ...o, metadata: { ...(o as { metadata: object }).metadata, namespace } });
const vs = (name: string, hosts: string[], destination: object, namespace = 'frontend') => ({
  apiVersion: NET,
  kind: 'VirtualService',
  metadata: { name, namespace },
  spec: { hosts, http: [{ name: 'r', route: [{ destination }] }] },
});

describe('VirtualService hosts without a service, no Sidecar (istiod’s default scope)', () => {
  let reviews: Upstream;
  let ratings: Upstream;
  let web: Upstream;
  const meshes: Mesh[] = [];
  before(async () => {
    reviews = await startUpstream('reviews');
    ratings = await startUpstream('ratings');
    web = await startUpstream('web');
  });
  after(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    await Promise.all([reviews, ratings, web].map((u) => u.close()));
  });

  const REVIEWS = () => inNamespace(serviceEntry('reviews', 'reviews.backend.svc.cluster.local', 9080, [{ port: reviews.port }]), 'backend');
  const RATINGS = () => inNamespace(serviceEntry('ratings', 'ratings.backend.svc.cluster.local', 9080, [{ port: ratings.port }]), 'backend');
  /** An HTTP service on port 80: a sidecar then has port-80 routes (its 0.0.0.0:80 listener). */
  const WEB = () => inNamespace(serviceEntry('web', 'web.frontend.svc.cluster.local', 80, [{ port: web.port }]), 'frontend');
  const toRatings = { host: 'ratings.backend.svc.cluster.local', port: { number: 9080 } };

  async function mesh(config: object[]): Promise<Mesh> {
    const m = await createMesh({ service: 'frontend', namespace: 'frontend', config });
    meshes.push(m);
    return m;
  }

  it('reviews.backend:9080 reaches the reviews service, not the VirtualService written for host reviews.backend', async () => {
    const m = await mesh([REVIEWS(), RATINGS(), vs('partial', ['reviews.backend'], toRatings)]);
    const r = await call(m, 'http://reviews.backend:9080/x');
    assert.equal(r.status, 200);
    assert.equal(r.upstream, 'reviews');
    assert.equal(m.explain({ url: 'http://reviews.backend:9080/x' }).virtualHost, 'reviews.backend.svc.cluster.local:9080');
  });

  it('with a port-80 route table, the VirtualService routes reviews.backend on port 80 only', async () => {
    const m = await mesh([REVIEWS(), RATINGS(), WEB(), vs('partial', ['reviews.backend'], toRatings)]);
    assert.equal((await call(m, 'http://reviews.backend/x')).upstream, 'ratings');
    assert.equal((await call(m, 'http://reviews.backend:9080/x')).upstream, 'reviews');
    // The full name is the service on every port.
    const full = await mesh([REVIEWS(), RATINGS(), WEB(), vs('full', ['reviews.backend.svc.cluster.local'], toRatings)]);
    assert.equal((await call(full, 'http://reviews.backend:9080/x')).upstream, 'ratings');
  });

  it('an external name is routed on port 80, or beside a service of its VirtualService; elsewhere it passes through, and explain says why', async () => {
    const m = await mesh([REVIEWS(), RATINGS(), WEB(), vs('api', ['api.example.com'], toRatings)]);
    assert.equal((await call(m, 'http://api.example.com/x')).upstream, 'ratings');
    // Port 9080: not routed (passthrough to the URL's address, reviews here, with Host api.example.com:9080).
    const r = await call(m, `http://127.0.0.1:${reviews.port}/x`, { headers: { host: 'api.example.com:9080' } });
    assert.equal(r.upstream, 'reviews');
    const e = m.explain({ url: 'http://api.example.com:9080/x' });
    assert.equal(e.outcome, 'passthrough');
    assert.match(e.notInMesh ?? '', /^api\.example\.com is not in the registry .*; VirtualService frontend\/api routes api\.example\.com on port 80 only: a host with no service behind it is routed, as istiod routes it, only on port 80 or on the ports of the services its VirtualService also names$/);
    // Beside a service the VirtualService names, on that service's port.
    const beside = await mesh([REVIEWS(), RATINGS(), vs('api', ['api.example.com', 'reviews.backend.svc.cluster.local'], toRatings)]);
    assert.equal((await call(beside, 'http://api.example.com:9080/x')).upstream, 'ratings');
  });
});
