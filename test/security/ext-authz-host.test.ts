/**
 * A CUSTOM AuthorizationPolicy's HTTP check must reach the configured authorizer whatever Host the
 * client sends. The check goes through `mesh.dispatcher`, which routes by Host as a sidecar's
 * outbound listener does; a check that carried the client's Host was routed to the service that
 * Host names — the app itself, or any service answering 200 — so a client could pick who
 * authorized its request and pass without the authorizer ever being asked.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

/** A GET with the given Host (fetch does not let a caller set Host). */
function get(port: number, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
}

describe('CUSTOM (envoyExtAuthzHttp): the check goes to the authorizer whatever the client’s Host', () => {
  const checks: IncomingHttpHeaders[] = [];
  let decoyHits = 0;
  // Istio's sample authorizer: allows `x-ext-authz: allow`, denies the rest.
  const authorizer = createServer((req, res) => {
    checks.push(req.headers);
    if (req.headers['x-ext-authz'] === 'allow') {
      res.end();
      return;
    }
    res.writeHead(403, { 'x-ext-authz-check-result': 'denied' });
    res.end('denied by ext_authz');
  });
  // Another mesh service that answers 200 to anything.
  const decoy = createServer((_req, res) => {
    decoyHits++;
    res.end('ok');
  });
  let mesh: Mesh;
  let app: Server;
  let appPort = 0;

  before(async () => {
    const authzPort = await listen(authorizer);
    const decoyPort = await listen(decoy);
    mesh = await createMesh({
      service: 'httpbin',
      namespace: 'foo',
      labels: { app: 'httpbin' },
      config: [
        {
          apiVersion: 'networking.istio.io/v1',
          kind: 'ServiceEntry',
          metadata: { name: 'ext-authz', namespace: 'foo' },
          spec: {
            hosts: ['ext-authz.foo.svc.cluster.local'],
            location: 'MESH_INTERNAL',
            resolution: 'STATIC',
            ports: [{ number: 8000, name: 'http', protocol: 'HTTP', targetPort: authzPort }],
            endpoints: [{ address: '127.0.0.1' }],
          },
        },
        {
          apiVersion: 'networking.istio.io/v1',
          kind: 'ServiceEntry',
          metadata: { name: 'decoy', namespace: 'foo' },
          spec: {
            hosts: ['decoy.foo.svc.cluster.local'],
            location: 'MESH_INTERNAL',
            resolution: 'STATIC',
            ports: [{ number: 80, name: 'http', protocol: 'HTTP', targetPort: decoyPort }],
            endpoints: [{ address: '127.0.0.1' }],
          },
        },
        {
          apiVersion: 'security.istio.io/v1',
          kind: 'AuthorizationPolicy',
          metadata: { name: 'ext-authz', namespace: 'foo' },
          spec: { action: 'CUSTOM', provider: { name: 'sample-ext-authz-http' }, rules: [{ to: [{ operation: { paths: ['/headers'] } }] }] },
        },
      ] as never,
      extensionProviders: [{ name: 'sample-ext-authz-http', envoyExtAuthzHttp: { service: 'ext-authz.foo.svc.cluster.local', port: 8000, includeRequestHeadersInCheck: ['x-ext-authz'] } }],
      logger: { warn: () => undefined },
    });
    app = mesh.createServer((_req, res) => res.end('app'));
    appPort = await listen(app);
  });

  after(async () => {
    await mesh.close();
    await close(authorizer);
    await close(decoy);
  });

  for (const host of ['decoy.foo.svc.cluster.local', 'decoy.foo.svc.cluster.local:80', 'ext-authz.foo.svc.cluster.local:8000', '127.0.0.1']) {
    it(`Host: ${host} — the authorizer is asked and its denial stands`, async () => {
      checks.length = 0;
      decoyHits = 0;
      const res = await get(appPort, '/headers', { host });
      assert.equal(res.status, 403);
      assert.equal(res.body, 'denied by ext_authz');
      assert.equal(checks.length, 1, 'the authorizer was asked once');
      assert.equal(decoyHits, 0, 'the check never went to the service the client’s Host names');
      assert.equal(checks[0]?.host, 'ext-authz.foo.svc.cluster.local:8000', 'the check’s Host is the authorizer’s');
      assert.equal(checks[0]?.['x-forwarded-host'], host, 'the request’s Host, for the authorizer');
    });
  }

  it('allowed by the authorizer: the app answers', async () => {
    const res = await get(appPort, '/headers', { host: 'decoy.foo.svc.cluster.local', 'x-ext-authz': 'allow' });
    assert.equal(res.status, 200);
    assert.equal(res.body, 'app');
  });
});
