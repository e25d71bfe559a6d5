/**
 * CONNECT on an HTTP/2 server of the app's own, through mesh.protect(): node:http2 gives the
 * 'connect' listeners a request and a response. It was judged as an HTTP/1 CONNECT: the host was
 * req.url (`:path`, or undefined) instead of `:authority` — a hosts DENY never matched —, an
 * extended CONNECT (RFC 8441) was judged as method CONNECT where Envoy's codec makes it a GET with
 * `upgrade` (utility.cc transformUpgradeRequestFromH2toH1), a refusal was HTTP/1.1 bytes in the
 * body of a 200, and the listener got the raw path with a consumed access_token.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createMesh, type Mesh } from '../../src/index.ts';

const ISSUER = 'testing@secure.istio.io';
const pol = (name: string, action: string, operation: object) => ({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name, namespace: 'foo' }, spec: { action, rules: [{ to: [{ operation }] }] } });

describe('HTTP/2 CONNECT through mesh.protect(http2.createServer(…))', () => {
  let mesh: Mesh;
  let token: string;
  let server: http2.Http2Server;
  let client: http2.ClientHttp2Session;
  const seen: string[] = [];
  before(async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256' }] });
    token = await new SignJWT({ iss: ISSUER, sub: 'alice', exp: Math.floor(Date.now() / 1000) + 3600 }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(privateKey);
    const ra = { apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: { name: 'jwt', namespace: 'foo' }, spec: { jwtRules: [{ issuer: ISSUER, jwks }] } };
    mesh = await createMesh({
      service: 'httpbin',
      namespace: 'foo',
      labels: { app: 'httpbin' },
      config: [ra, pol('deny-admin', 'DENY', { paths: ['/admin*'] }), pol('deny-internal', 'DENY', { hosts: ['internal*'] }), pol('deny-get-ws', 'DENY', { methods: ['GET'], paths: ['/ws*'] })],
      logger: { warn: () => undefined },
    });
    server = mesh.protect(http2.createServer({ settings: { enableConnectProtocol: true } }, (_q, r) => r.end('request')));
    server.on('connect', (q: http2.Http2ServerRequest, r: http2.Http2ServerResponse) => {
      const principal = (q as unknown as { meshlet?: { requestPrincipal?: string } }).meshlet?.requestPrincipal;
      seen.push(JSON.stringify({ method: q.method, url: q.url, authority: q.authority, protocol: q.headers[':protocol'], upgrade: q.headers.upgrade, rawPath: q.rawHeaders.includes(':path') ? q.rawHeaders[q.rawHeaders.indexOf(':path') + 1] : undefined, principal }));
      r.writeHead(200);
      r.end('tunnel');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    await new Promise((r) => client.once('remoteSettings', r));
  });
  after(async () => {
    client.close();
    await new Promise((r) => server.close(r));
    await mesh.close();
  });

  function send(headers: http2.OutgoingHttpHeaders): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const s = client.request(headers, { endStream: false });
      let status = 0;
      let body = '';
      s.on('response', (h) => (status = Number(h[':status'])));
      s.setEncoding('latin1');
      s.on('data', (d: string) => (body += d));
      s.on('end', () => {
        s.close();
        resolve({ status, body });
      });
      s.on('error', reject);
    });
  }
  const ext = (path: string, authority = 'httpbin') => ({ ':method': 'CONNECT', ':protocol': 'websocket', ':path': path, ':authority': authority });

  it('a refusal is an HTTP/2 response with its status; :authority is the host judged', async () => {
    seen.length = 0;
    assert.deepEqual(await send(ext('/admin')), { status: 403, body: 'RBAC: access denied' });
    assert.deepEqual(await send(ext('/x', 'internal.example.com')), { status: 403, body: 'RBAC: access denied' });
    assert.deepEqual(await send({ ':method': 'CONNECT', ':authority': 'internal.example.com:443' }), { status: 403, body: 'RBAC: access denied' });
    assert.deepEqual(seen, []);
    assert.deepEqual(await send({ ':method': 'CONNECT', ':authority': 'ok.example.com:443' }), { status: 200, body: 'tunnel' });
    assert.deepEqual(seen.map((s) => JSON.parse(s)), [{ method: 'CONNECT', authority: 'ok.example.com:443' }]);
  });

  it('an extended CONNECT is judged as Envoy forwards it, GET with upgrade (methods rules apply), and reaches the listener as sent', async () => {
    seen.length = 0;
    assert.equal((await send(ext('/ws'))).status, 403);
    assert.deepEqual(await send(ext('/chat')), { status: 200, body: 'tunnel' });
    assert.deepEqual(JSON.parse(seen[0] as string), { method: 'CONNECT', url: '/chat', authority: 'httpbin', protocol: 'websocket', rawPath: '/chat' });
  });

  it("an admitted extended CONNECT's listener reads the normalized path, a consumed access_token removed", async () => {
    seen.length = 0;
    assert.deepEqual(await send(ext(`/public/../chat?access_token=${token}&a=1`)), { status: 200, body: 'tunnel' });
    assert.deepEqual(JSON.parse(seen[0] as string), { method: 'CONNECT', url: '/chat?a=1', authority: 'httpbin', protocol: 'websocket', rawPath: '/chat?a=1', principal: `${ISSUER}/alice` });
    assert.equal((await send(ext('/public/../admin'))).status, 403);
    // A consumed Authorization header: the listener's headers are rebuilt from the judged view,
    // and keep the request's own form (CONNECT, :protocol, no upgrade).
    seen.length = 0;
    assert.deepEqual(await send({ ...ext('/chat'), authorization: `Bearer ${token}` }), { status: 200, body: 'tunnel' });
    assert.deepEqual(JSON.parse(seen[0] as string), { method: 'CONNECT', url: '/chat', authority: 'httpbin', protocol: 'websocket', rawPath: '/chat', principal: `${ISSUER}/alice` });
  });
});
