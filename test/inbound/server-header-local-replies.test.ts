/**
 * Istio's `proxyHeaders.server.value` on every answer a served workload sends, as Envoy's
 * connection manager writes it (`server_header_transformation: OVERWRITE` applies to what it
 * encodes, its own local replies included), read on real sockets by independent clients:
 *
 * - the mesh's own refusals (an AuthorizationPolicy's 403) through every
 *   framework's real entry point, and a refused WebSocket upgrade;
 * - a grpc-js server under `mesh.grpc.serverInterceptors()`: the handler's answer (response
 *   headers) and a refusal (a trailers-only answer), read with node:http2 as they come on the wire;
 * - with no `server` option, the mesh's own answers carry none (meshlet writes no default).
 */
import assert from 'node:assert/strict';
import { connect as h2connect } from 'node:http2';
import { connect as tcpConnect } from 'node:net';
import { describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { frameworks, raw } from '../helpers/frameworks.ts';
import { startMeshGrpcServer } from '../helpers/grpc-server.ts';

const quiet = { warn: () => undefined, error: () => undefined };
const ECHO = '/meshlet.test.Echo';

const denyPaths = (paths: string[]) => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'deny', namespace: 'default' },
  spec: { action: 'DENY', rules: [{ to: [{ operation: { paths } }] }] },
});

function meshWith(server: string | undefined, config: object[]): Promise<Mesh> {
  return createMesh({ service: 'httpbin', namespace: 'default', config: config as never, logger: quiet, ...(server === undefined ? {} : { proxyHeaders: { server: { value: server } } }) });
}

describe('proxyHeaders.server on the mesh’s own answers (HTTP)', () => {
  for (const fw of frameworks) {
    it(`${fw.name}: a refusal (403) carries server.value; none without the option`, async () => {
      for (const value of ['edge/1', undefined]) {
        const mesh = await meshWith(value, [denyPaths(['/denied'])]);
        const server = await fw.start(mesh);
        try {
          const r = await raw(server.port, '/denied');
          assert.equal(r.statusCode, 403, r.text);
          assert.equal(r.headers.server, value);
          const ok = await raw(server.port, '/ok');
          assert.equal(ok.statusCode, 200, ok.text);
          if (value !== undefined) assert.equal(ok.headers.server, value);
        } finally {
          await server.close();
          await mesh.close();
        }
      }
    });
  }

  it('a refused WebSocket upgrade carries server.value', async () => {
    const mesh = await meshWith('edge/1', [denyPaths(['/ws'])]);
    const server = mesh.createServer((_req, res) => res.end('ok'));
    server.on('upgrade', (_req, socket) => socket.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const head = await new Promise<string>((resolve, reject) => {
        const s = tcpConnect(port, '127.0.0.1', () => s.write('GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'));
        let got = '';
        s.on('data', (c) => (got += c.toString('latin1')));
        s.on('end', () => resolve(got));
        s.on('error', reject);
      });
      assert.match(head, /^HTTP\/1\.1 403 /);
      assert.match(head, /\r\nserver: edge\/1\r\n/i);
    } finally {
      await new Promise((r) => server.close(r));
      await mesh.close();
    }
  });
});

describe('proxyHeaders.server on the HTTP/2 bridge’s own answer', () => {
  it('an HTTP/2 OPTIONS * to mesh.createServer: 404 (Envoy’s absolute_path_rejected) with server.value', async () => {
    const mesh = await meshWith('edge/1', []);
    const server = mesh.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const session = h2connect(`http://127.0.0.1:${(server.address() as { port: number }).port}`);
    try {
      const head = await new Promise<Record<string, unknown>>((resolve, reject) => {
        session.on('error', reject);
        const req = session.request({ ':method': 'OPTIONS', ':path': '*' });
        req.on('response', (h) => resolve({ ...h }));
        req.on('error', reject);
        req.end();
      });
      assert.equal(head[':status'], 404);
      assert.equal(head.server, 'edge/1');
    } finally {
      session.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await mesh.close();
    }
  });
});

/** One unary Echo call over node:http2: the response headers and trailers as they came on the wire. */
async function unaryOnWire(port: number, method: string): Promise<{ headers: Record<string, unknown>; trailers: Record<string, unknown> }> {
  const session = h2connect(`http://127.0.0.1:${port}`);
  try {
    return await new Promise((resolve, reject) => {
      session.on('error', reject);
      const req = session.request({ ':method': 'POST', ':path': `${ECHO}/${method}`, 'content-type': 'application/grpc', te: 'trailers' });
      let headers: Record<string, unknown> = {};
      let trailers: Record<string, unknown> = {};
      req.on('response', (h) => (headers = { ...h }));
      req.on('trailers', (t) => (trailers = { ...t }));
      req.on('error', reject);
      req.resume();
      req.on('close', () => resolve({ headers, trailers }));
      // One empty message (flag 0, length 0): an EchoRequest with no fields.
      req.end(Buffer.alloc(5));
    });
  } finally {
    session.close();
  }
}

describe('proxyHeaders.server on a gRPC server’s answers', () => {
  it('the handler’s answer and a refusal (trailers-only) carry server.value; none without the option', async () => {
    for (const value of ['edge/1', undefined]) {
      const mesh = await meshWith(value, [denyPaths([`${ECHO}/ServerStream`])]);
      const server = await startMeshGrpcServer(mesh);
      try {
        const served = await unaryOnWire(server.port, 'Unary');
        assert.equal(served.trailers['grpc-status'], '0', JSON.stringify(served));
        assert.equal(served.headers.server, value);
        const refused = await unaryOnWire(server.port, 'ServerStream');
        // Trailers-only: the status is in the one HEADERS frame.
        assert.equal(refused.headers['grpc-status'], '7', JSON.stringify(refused));
        assert.equal(refused.headers.server, value);
      } finally {
        await server.close();
        await mesh.close();
      }
    }
  });
});
