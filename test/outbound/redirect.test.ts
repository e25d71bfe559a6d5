/**
 * A redirect's Location as an Istio sidecar writes it: Istio's integration cases ("redirect",
 * "redirect port and scheme", "redirect request port": tests/integration/pilot/common/routing.go)
 * and Envoy's rules for the query (a `uri` with its own query replaces the request's: Envoy's
 * path_redirect) and for the Host's port when the scheme changes (processRequestHost). The mesh
 * answers redirects itself, so no upstream is called.
 *
 * Copyright Istio Authors, Apache License 2.0 (the cases transcribed).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { createMesh, type Mesh } from '../../src/index.ts';

const b = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'ServiceEntry',
  metadata: { name: 'b', namespace: 'default' },
  spec: {
    hosts: ['b.default.svc.cluster.local'],
    location: 'MESH_INTERNAL',
    resolution: 'STATIC',
    ports: [
      { number: 80, name: 'http', protocol: 'HTTP' },
      { number: 85, name: 'http2', protocol: 'HTTP' },
      { number: 9080, name: 'http3', protocol: 'HTTP' },
    ],
    endpoints: [{ address: '127.0.0.1' }],
  },
};

const vs = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'VirtualService',
  metadata: { name: 'b', namespace: 'default' },
  spec: {
    hosts: ['b'],
    http: [
      { match: [{ uri: { exact: '/foo' } }], redirect: { uri: '/new/path' } },
      { match: [{ uri: { exact: '/port-and-scheme' } }], redirect: { derivePort: 'FROM_REQUEST_PORT', scheme: 'https' } },
      { match: [{ uri: { exact: '/request-port' } }], redirect: { derivePort: 'FROM_REQUEST_PORT' } },
      { match: [{ uri: { exact: '/query' } }], redirect: { uri: '/new?x=1' } },
      { match: [{ uri: { exact: '/https' } }], redirect: { scheme: 'https' } },
      { match: [{ uri: { exact: '/port' } }], redirect: { port: 8443, scheme: 'https' } },
      { match: [{ uri: { prefix: '/pre/' } }], redirect: { prefixRewrite: '/new/' } },
    ],
  },
};

describe('redirect Location, as Istio and Envoy write it', () => {
  let mesh: Mesh;
  before(async () => {
    mesh = await createMesh({ service: 'a', config: [b, vs] });
  });
  after(async () => {
    await mesh.close();
  });

  /** The Location of a call to `url` (with `host` as its Host header when given). */
  async function location(url: string, host?: string): Promise<string | undefined> {
    const res = await request(url, { dispatcher: mesh.dispatcher, headers: host === undefined ? {} : { host } });
    await res.body.dump();
    assert.equal(res.statusCode, 301);
    return res.headers.location as string | undefined;
  }

  test('redirect: uri replaces the path and keeps the query (routing.go "redirect")', async () => {
    assert.equal(await location('http://b/foo?key=value'), 'http://b/new/path?key=value');
  });

  test('a uri with its own query replaces the request\'s (Envoy\'s path_redirect)', async () => {
    assert.equal(await location('http://b/query?q=2'), 'http://b/new?x=1');
    assert.equal(await location('http://b/query'), 'http://b/new?x=1');
  });

  test('redirect port and scheme: FROM_REQUEST_PORT with scheme https keeps port 80 (routing.go)', async () => {
    assert.equal(await location('http://b/port-and-scheme'), 'https://b:80/port-and-scheme');
  });

  test('redirect request port: the port the call was made to, left out when it is the default (routing.go)', async () => {
    assert.equal(await location('http://b/request-port', 'b'), 'http://b/request-port', 'to default');
    assert.equal(await location('http://b/request-port', 'b:80'), 'http://b:80/request-port', 'to default with host port');
    assert.equal(await location('http://b:85/request-port', 'b'), 'http://b:85/request-port', 'non-default');
    assert.equal(await location('http://b:85/request-port', 'b:85'), 'http://b:85/request-port', 'non-default with host port');
  });

  test('a scheme change drops only the old scheme\'s default port from the Host; a set port replaces it', async () => {
    assert.equal(await location('http://b:9080/https'), 'https://b:9080/https');
    assert.equal(await location('http://b/https', 'b:80'), 'https://b/https');
    assert.equal(await location('http://b:9080/port'), 'https://b:8443/port');
  });

  test('prefixRewrite replaces the matched prefix and keeps the query (routing.go "redirect prefix_rewrite")', async () => {
    assert.equal(await location('http://b/pre/bar?k=v'), 'http://b/new/bar?k=v');
  });
});
