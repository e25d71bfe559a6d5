/**
 * A call whose Host header names no port is routed by the port it connects to (the URL's), as a
 * sidecar picks the route configuration of its listener's port and then the virtual host by the
 * Host among that port's services: `Host: svc` on a call to `http://svc:9080/` is svc's port 9080
 * (its routes, its endpoints), not its port 80. The Host goes upstream as given.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { createMesh, type Mesh } from '../../src/index.ts';
import { startUpstream, type Upstream } from '../helpers/upstreams.ts';

describe('a Host header without a port', () => {
  let web: Upstream;
  let admin: Upstream;
  let mesh: Mesh;
  before(async () => {
    web = await startUpstream('web');
    admin = await startUpstream('admin');
    const se = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'ServiceEntry',
      metadata: { name: 'svc', namespace: 'default' },
      spec: {
        hosts: ['svc.default.svc.cluster.local'],
        location: 'MESH_INTERNAL',
        resolution: 'STATIC',
        ports: [
          { number: 80, name: 'http', protocol: 'HTTP', targetPort: web.port },
          { number: 9080, name: 'http-admin', protocol: 'HTTP', targetPort: admin.port },
        ],
        endpoints: [{ address: '127.0.0.1' }],
      },
    };
    const vs = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'svc', namespace: 'default' },
      spec: {
        hosts: ['svc'],
        http: [
          { match: [{ port: 9080 }], route: [{ destination: { host: 'svc', port: { number: 9080 } } }], headers: { response: { set: { 'x-port': '9080' } } } },
          { route: [{ destination: { host: 'svc', port: { number: 80 } } }], headers: { response: { set: { 'x-port': '80' } } } },
        ],
      },
    };
    mesh = await createMesh({ service: 'client', config: [se, vs] });
  });
  after(async () => {
    await mesh.close();
    await web.close();
    await admin.close();
  });

  async function call(url: string, host: string): Promise<{ upstream: unknown; port: unknown; host: unknown }> {
    const upstreams = [web, admin];
    const before = upstreams.map((u) => u.seen.length);
    const res = await request(url, { dispatcher: mesh.dispatcher, headers: { host } });
    await res.body.dump();
    assert.equal(res.statusCode, 200);
    const i = upstreams.findIndex((u, k) => u.seen.length > (before[k] as number));
    return { upstream: res.headers['x-upstream'], port: res.headers['x-port'], host: upstreams[i]?.seen.at(-1)?.headers.host };
  }

  test('Host: svc on a call to http://svc:9080 takes port 9080\'s route and endpoints, and is sent as given', async () => {
    assert.deepEqual(await call('http://svc:9080/', 'svc'), { upstream: 'admin', port: '9080', host: 'svc' });
  });

  test('a Host with a port, and a call to the default port, as before', async () => {
    assert.deepEqual(await call('http://svc:9080/', 'svc:9080'), { upstream: 'admin', port: '9080', host: 'svc:9080' });
    assert.deepEqual(await call('http://svc/', 'svc'), { upstream: 'web', port: '80', host: 'svc' });
  });
});
