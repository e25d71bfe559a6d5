/**
 * Delegate VirtualServices through a real mesh: a root VirtualService hands the /api prefix to a
 * delegate owned by another team (namespace), as in Istio's "VirtualService delegation"; the
 * child's rules apply inside the root's match, with the root's settings, on real upstreams.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { call, destinationRule, serviceEntry, startUpstream, type Upstream } from '../helpers/upstreams.ts';

const HOST = 'reviews.default.svc.cluster.local';

describe('delegate VirtualServices through real upstreams', () => {
  let v1: Upstream;
  let v2: Upstream;
  let api: Upstream;
  let mesh: Mesh;

  before(async () => {
    v1 = await startUpstream('v1');
    v2 = await startUpstream('v2');
    api = await startUpstream('api');
    mesh = await createMesh({
      service: 'productpage',
      config: [
        serviceEntry('reviews', HOST, 9080, [
          { port: v1.port, labels: { version: 'v1' } },
          { port: v2.port, labels: { version: 'v2' } },
        ]),
        { ...serviceEntry('api', 'api.team.svc.cluster.local', 9080, [{ port: api.port }]), metadata: { name: 'api', namespace: 'team' } },
        destinationRule('reviews', 'reviews', { subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] }),
        {
          apiVersion: 'networking.istio.io/v1',
          kind: 'VirtualService',
          metadata: { name: 'reviews', namespace: 'default' },
          spec: {
            hosts: ['reviews'],
            http: [
              { name: 'api', match: [{ uri: { prefix: '/api' } }], headers: { request: { set: { 'x-root': 'yes' } } }, delegate: { name: 'reviews-api', namespace: 'team' } },
              { name: 'missing', match: [{ uri: { prefix: '/gone' } }], delegate: { name: 'no-such-delegate', namespace: 'team' } },
              { name: 'rest', route: [{ destination: { host: 'reviews', subset: 'v1' } }] },
            ],
          },
        },
        {
          apiVersion: 'networking.istio.io/v1',
          kind: 'VirtualService',
          metadata: { name: 'reviews-api', namespace: 'team' },
          spec: {
            exportTo: ['default'],
            http: [
              { name: 'canary', match: [{ headers: { 'end-user': { exact: 'jason' } } }], route: [{ destination: { host: HOST, subset: 'v2' } }] },
              { name: 'v2', match: [{ uri: { prefix: '/api/v2' } }], route: [{ destination: { host: 'api' } }] },
            ],
          },
        },
      ],
    });
  });

  after(async () => {
    await mesh.close();
    await Promise.all([v1, v2, api].map((u) => u.close()));
  });

  test('a child rule inside the root match goes where the child says, with the root\'s header operations', async () => {
    const before = api.seen.length;
    const r = await call(mesh, 'http://reviews:9080/api/v2/items');
    assert.equal(r.status, 200);
    assert.equal(r.upstream, 'api', 'the short host "api" resolves in the delegate\'s namespace (team)');
    assert.equal(api.seen[before]?.headers['x-root'], 'yes');
  });

  test('a child header match applies only inside the root\'s /api prefix', async () => {
    assert.equal((await call(mesh, 'http://reviews:9080/api/x', { headers: { 'end-user': 'jason' } })).upstream, 'v2');
    assert.equal((await call(mesh, 'http://reviews:9080/web', { headers: { 'end-user': 'jason' } })).upstream, 'v1');
  });

  test('a request the child does not route falls through to the root\'s next rules (no catch-all in the child)', async () => {
    assert.equal((await call(mesh, 'http://reviews:9080/api/v1/x')).upstream, 'v1');
  });

  test('a rule whose delegate is missing is left out, as Istio does', async () => {
    assert.equal((await call(mesh, 'http://reviews:9080/gone/x')).upstream, 'v1');
  });
});
