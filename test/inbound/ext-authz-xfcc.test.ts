/**
 * An `envoyExtAuthzHttp` check that includes `x-forwarded-client-cert` carries the caller's, as
 * Envoy's ext_authz filter sends it (the check goes to the authorizer's cluster directly, through
 * no connection manager that would sanitize it) — although the mesh removes the header from the
 * app's own calls, as a sidecar's outbound listener does (test/outbound/app-envoy-headers.test.ts).
 * The caller's XFCC reaches the phases here through `forwardedClientCert: ALWAYS_FORWARD_ONLY`
 * (over mTLS, the mesh writes it the same way before the phases run). A real HTTP authorizer and
 * a node:http server on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { raw } from '../helpers/frameworks.ts';

const XFCC = 'By=spiffe://cluster.local/ns/foo/sa/httpbin;Hash=00;URI=spiffe://cluster.local/ns/foo/sa/sleep';

describe('envoyExtAuthzHttp: the caller’s x-forwarded-client-cert on the check', () => {
  let ext: Server;
  let mesh: Mesh;
  let app: Server;
  const checks: IncomingHttpHeaders[] = [];
  const seen: IncomingHttpHeaders[] = [];

  before(async () => {
    ext = createServer((req, res) => {
      checks.push(req.headers);
      res.writeHead(req.headers['x-forwarded-client-cert'] === XFCC ? 200 : 403);
      res.end();
    });
    await new Promise<void>((r) => ext.listen(0, '127.0.0.1', r));
    mesh = await createMesh({
      service: 'httpbin',
      namespace: 'foo',
      proxyHeaders: { forwardedClientCert: 'ALWAYS_FORWARD_ONLY' },
      config: [{ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'ext', namespace: 'foo' }, spec: { action: 'CUSTOM', provider: { name: 'xfcc-authz' }, rules: [{}] } }] as never,
      extensionProviders: [{ name: 'xfcc-authz', envoyExtAuthzHttp: { service: '127.0.0.1', port: (ext.address() as AddressInfo).port, includeRequestHeadersInCheck: ['x-forwarded-client-cert'] } }],
      logger: { warn: () => undefined },
    });
    app = mesh.createServer((req, res) => {
      seen.push(req.headers);
      res.end('ok');
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  });
  after(async () => {
    await new Promise<void>((r) => app.close(() => r()));
    await mesh.close();
    await new Promise<void>((r) => ext.close(() => r()));
  });

  it('the check carries it, so the authorizer can allow on it; the app sees it too', async () => {
    const r = await raw((app.address() as AddressInfo).port, '/', { headers: { 'x-forwarded-client-cert': XFCC } });
    assert.equal(r.statusCode, 200, r.text);
    assert.equal(checks.at(-1)?.['x-forwarded-client-cert'], XFCC);
    assert.equal(seen.at(-1)?.['x-forwarded-client-cert'], XFCC);
  });

  it('without one, the authorizer gets none and denies', async () => {
    const r = await raw((app.address() as AddressInfo).port, '/');
    assert.equal(r.statusCode, 403);
    assert.equal(checks.at(-1)?.['x-forwarded-client-cert'], undefined);
  });
});
