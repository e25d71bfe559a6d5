/**
 * CONNECT (an authority-form target, `CONNECT host:443`) on a mesh server still reaches the app's
 * 'connect' listeners after admission, as docs/server.md says: the 404 for targets that are not a
 * path (`OPTIONS *`, Envoy's absolute_path_rejected) is not for CONNECT.
 */
import assert from 'node:assert/strict';
import { type AddressInfo, connect } from 'node:net';
import { it } from 'node:test';
import { createMesh } from '../../src/index.ts';

function send(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    let buf = '';
    const c = connect(port, '127.0.0.1', () => c.write(bytes));
    c.setEncoding('latin1');
    c.on('data', (d: string) => {
      buf += d;
      if (buf.includes('\r\n\r\n')) c.destroy();
    });
    c.on('close', () => resolve(buf));
    c.on('error', () => undefined);
  });
}

/** A mesh server in foo/httpbin with a hosts DENY on `hosts`; its 'connect' listener accepts and records each target. */
async function denyHostsServer(name: string, hosts: string[]) {
  const mesh = await createMesh({
    service: 'httpbin',
    namespace: 'foo',
    labels: { app: 'httpbin' },
    config: [{ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name, namespace: 'foo' }, spec: { action: 'DENY', rules: [{ to: [{ operation: { hosts } }] }] } }],
    logger: { warn: () => undefined },
  });
  const server = mesh.createServer((_req, res) => res.end('ok'));
  const seen: string[] = [];
  server.on('connect', (req, sock) => {
    seen.push(req.url ?? '');
    sock.end('HTTP/1.1 200 Connection established\r\n\r\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  const close = async () => {
    server.close();
    await mesh.close();
  };
  return { port, seen, close };
}

it("CONNECT reaches the app's 'connect' listener; OPTIONS * is answered 404 by the mesh", async () => {
  const mesh = await createMesh({ service: 'httpbin', config: [], logger: { warn: () => undefined } });
  const server = mesh.createServer((_req, res) => res.end('ok'));
  const targets: string[] = [];
  server.on('connect', (req, sock) => {
    targets.push(req.url ?? '');
    sock.end('HTTP/1.1 200 Connection established\r\n\r\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  try {
    const connected = await send(port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    assert.match(connected, /^HTTP\/1\.1 200 Connection established\r\n/);
    assert.equal(targets.length, 1);
    const star = await send(port, 'OPTIONS * HTTP/1.1\r\nHost: httpbin\r\n\r\n');
    assert.match(star, /^HTTP\/1\.1 404 /);
  } finally {
    server.close();
    await mesh.close();
  }
});

it("CONNECT's authority-form target is the host judged (Envoy's HTTP/1 codec takes it, not Host) and reaches the 'connect' listener as sent", async () => {
  // A DENY on a host was judged against the Host header, which a caller sets apart from the
  // target the app's 'connect' listener tunnels to; and the target was handed on as a path
  // (`/example.com:443`).
  const mesh = await createMesh({
    service: 'httpbin',
    namespace: 'foo',
    labels: { app: 'httpbin' },
    config: [{ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny-internal', namespace: 'foo' }, spec: { action: 'DENY', rules: [{ to: [{ operation: { hosts: ['internal.example.com:443'] } }] }] } }],
    logger: { warn: () => undefined },
  });
  const server = mesh.createServer((_req, res) => res.end('ok'));
  const seen: string[] = [];
  server.on('connect', (req, sock) => {
    seen.push(`${req.url} ${req.headers.host}`);
    sock.end('HTTP/1.1 200 Connection established\r\n\r\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  try {
    assert.match(await send(port, 'CONNECT internal.example.com:443 HTTP/1.1\r\nHost: svc\r\n\r\n'), /^HTTP\/1\.1 403 /);
    assert.match(await send(port, 'CONNECT internal.example.com:443 HTTP/1.1\r\n\r\n'), /^HTTP\/1\.1 403 /);
    assert.match(await send(port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: internal.example.com:443\r\n\r\n'), /^HTTP\/1\.1 200 /);
    assert.deepEqual(seen, ['example.com:443 example.com:443']);
  } finally {
    server.close();
    await mesh.close();
  }
});

it('a CONNECT has no path (Envoy sets no :path for it): an ALLOW on paths ["/*"] or ["*"] does not admit it, notPaths does', async () => {
  // It was judged with its target as the path (`/example.com:443`), which `/*` admitted.
  const allow = (name: string, operation: object) => ({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name, namespace: 'foo' }, spec: { action: 'ALLOW', rules: [{ to: [{ operation }] }] } });
  const run = async (operation: object): Promise<string[]> => {
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: [allow('paths', operation)], logger: { warn: () => undefined } });
    const server = mesh.createServer((_req, res) => res.end('ok'));
    server.on('connect', (_req, sock) => sock.end('HTTP/1.1 200 Connection established\r\n\r\n'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as AddressInfo).port;
    try {
      const tunnel = await send(port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
      const get = await send(port, 'GET /x HTTP/1.1\r\nHost: httpbin\r\n\r\n');
      return [tunnel, get].map((r) => r.split('\r\n')[0] as string);
    } finally {
      server.close();
      await mesh.close();
    }
  };
  assert.deepEqual(await run({ paths: ['/*'] }), ['HTTP/1.1 403 Forbidden', 'HTTP/1.1 200 OK']);
  assert.deepEqual(await run({ paths: ['*'] }), ['HTTP/1.1 403 Forbidden', 'HTTP/1.1 200 OK']);
  assert.deepEqual(await run({ notPaths: ['/admin'] }), ['HTTP/1.1 200 Connection established', 'HTTP/1.1 200 OK']);
});

it('a CONNECT target that is not plain host:port (userinfo, a scheme, a path, percent-encoding) is answered 400, as Envoy\'s HTTP/1 codec refuses it', async () => {
  // It was judged as the string sent, while the app's listener reads new URL(`http://${req.url}`),
  // whose hostname is internal.example.com for each of these: a hosts DENY was bypassed.
  const { port, seen, close } = await denyHostsServer('deny-internal', ['internal.example.com*']);
  try {
    for (const t of ['u@internal.example.com:443', '[::1]@internal.example.com:443', 'http://internal.example.com:443', 'internal%2eexample.com:443', 'internal.example.com:443/x', 'ok.example.com', '//internal.example.com:443', '/\\internal.example.com:443', 'ok.example.com:99999']) {
      assert.match(await send(port, `CONNECT ${t} HTTP/1.1\r\nHost: ok\r\n\r\n`), /^HTTP\/1\.1 400 /, t);
    }
    assert.match(await send(port, 'CONNECT internal.example.com:443 HTTP/1.1\r\nHost: ok\r\n\r\n'), /^HTTP\/1\.1 403 /);
    for (const t of ['ok.example.com:443', '10.0.0.1:8443', '[::1]:443']) assert.match(await send(port, `CONNECT ${t} HTTP/1.1\r\nHost: ok\r\n\r\n`), /^HTTP\/1\.1 200 /, t);
    assert.deepEqual(seen, ['ok.example.com:443', '10.0.0.1:8443', '[::1]:443']);
  } finally {
    await close();
  }
});

it('a CONNECT to an IP address written in another form than its canonical one (2130706433, 0x7f000001, 127.1, [0:0::1]) or to a bracketed host that is no IPv6 address is answered 400', async () => {
  // They were judged as written — a hosts DENY naming 127.0.0.1 or [::1] did not match them — while
  // the app's new URL(`http://${req.url}`) and net.connect read them as that address. Envoy's codec
  // refuses a bracketed host that is no IPv6 address (utility.cc Url::initialize, parseAuthority).
  const { port, seen, close } = await denyHostsServer('deny-loopback', ['127.0.0.1*', '[::1]*']);
  try {
    for (const t of ['2130706433:443', '0x7f000001:443', '0X7F.1:443', '127.1:443', '0177.0.0.1:443', '127.0.0.1.:443', '010.0.0.1:443', '[0:0:0:0:0:0:0:1]:443', '[::0:1]:443', '[::FFFF:127.0.0.1]:443', '[1.2.3.4]:443', '[:::]:443', '127.0.0.1:0443', '127.0.0.1:00443', '[::1]:0443']) {
      assert.match(await send(port, `CONNECT ${t} HTTP/1.1\r\nHost: ok\r\n\r\n`), /^HTTP\/1\.1 400 /, t);
    }
    for (const t of ['127.0.0.1:443', '[::1]:443']) assert.match(await send(port, `CONNECT ${t} HTTP/1.1\r\nHost: ok\r\n\r\n`), /^HTTP\/1\.1 403 /, t);
    // Canonical addresses and names are judged as written.
    for (const t of ['10.0.0.1:443', '[2001:db8::1]:443', 'Example.COM:443', 'svc.example.com.:443']) assert.match(await send(port, `CONNECT ${t} HTTP/1.1\r\nHost: ok\r\n\r\n`), /^HTTP\/1\.1 200 /, t);
    assert.deepEqual(seen, ['10.0.0.1:443', '[2001:db8::1]:443', 'Example.COM:443', 'svc.example.com.:443']);
  } finally {
    await close();
  }
});
