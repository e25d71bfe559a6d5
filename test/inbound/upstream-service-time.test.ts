/**
 * `x-envoy-upstream-service-time` on served responses. Istio's inbound sidecar forwards the app's
 * response through its router, which writes the header on the head over the app's own
 * (source/common/router/router.cc `Filter::onUpstreamHeaders`, `setEnvoyUpstreamServiceTime`);
 * istiod sets the inbound router's `suppress_envoy_headers` only when
 * `proxyHeaders.envoyDebugHeaders` is disabled (pilot/pkg/networking/core/listener_inbound.go →
 * listener_builder.go `BuildRouterFilter`). A local reply (a denial) has no upstream: no header.
 * Through every framework's real entry point and a real grpc-js server and client. The values are
 * checked as whole ms, at least the delay the app took (a lower bound only: no wall-clock upper one).
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { request } from 'undici';
import { createMesh, type ProxyHeadersOptions } from '../../src/index.ts';
import { frameworks, listen, raw } from '../helpers/frameworks.ts';
import { type Echo, grpc, unary } from '../helpers/grpc.ts';
import { plainClient, startMeshGrpcServer } from '../helpers/grpc-server.ts';

const quiet = { warn: () => undefined, error: () => undefined };
const NAME = 'x-envoy-upstream-service-time';
const DENY_ADMIN = {
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'deny-admin', namespace: 'default' },
  spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] },
};

/** A whole number of ms at least `min` (less 2 ms: a timer may fire a ms early by performance.now(), and the value is floored). */
function assertServiceTime(v: unknown, min: number): void {
  assert.equal(typeof v, 'string', `${NAME}: ${String(v)}`);
  assert.match(v as string, /^\d+$/);
  assert.ok(Number(v) >= min - 2, `${NAME} ${String(v)} is at least the app's ${min} ms`);
}

describe('served responses carry x-envoy-upstream-service-time', () => {
  for (const fw of frameworks) {
    it(`${fw.name}: the app's answer has it; a denial (local reply) has none`, async () => {
      const mesh = await createMesh({ service: 'httpbin', config: [DENY_ADMIN] as never, logger: quiet });
      const server = await fw.start(mesh);
      try {
        const ok = await raw(server.port, '/headers');
        assert.equal(ok.statusCode, 200, ok.text);
        assertServiceTime(ok.headers[NAME], 0);
        const denied = await raw(server.port, '/admin');
        assert.equal(denied.statusCode, 403);
        assert.equal(denied.headers[NAME], undefined);
      } finally {
        await server.close();
        await mesh.close();
      }
    });
  }

  /** What a caller gets from an app that takes `delayMs` and sets its own header `how`. */
  async function served(proxyHeaders: ProxyHeadersOptions | undefined, how: 'none' | 'setHeader' | 'object' | 'raw', delayMs: number): Promise<string | string[] | undefined> {
    const mesh = await createMesh({ service: 'httpbin', config: [] as never, logger: quiet, ...(proxyHeaders === undefined ? {} : { proxyHeaders }) });
    const server = mesh.createServer(async (_req: IncomingMessage, res: ServerResponse) => {
      await sleep(delayMs);
      if (how === 'none') res.end('ok');
      else if (how === 'setHeader') {
        res.setHeader('X-Envoy-Upstream-Service-Time', '999999');
        res.end('ok');
      } else if (how === 'object') res.writeHead(200, { 'content-type': 'text/plain', 'X-ENVOY-UPSTREAM-SERVICE-TIME': '999999' }).end('ok');
      else res.writeHead(200, ['Content-Type', 'text/plain', 'x-envoy-upstream-service-time', '999999']).end('ok');
    });
    const port = await listen(server);
    try {
      const r = await request(`http://127.0.0.1:${port}/`);
      assert.equal(await r.body.text(), 'ok');
      return r.headers[NAME];
    } finally {
      await new Promise((resolve) => server.close(resolve));
      await mesh.close();
    }
  }

  it('measured from when the app was handed the request to its head', async () => {
    assertServiceTime(await served(undefined, 'none', 40), 40);
  });

  for (const how of ['setHeader', 'object', 'raw'] as const) {
    it(`replaces the app's own (${how}), as Envoy's router sets it; proxyHeaders.envoyDebugHeaders disabled passes the app's through`, async () => {
      const v = await served(undefined, how, 5);
      assertServiceTime(v, 5);
      assert.notEqual(v, '999999');
      assert.equal(await served({ envoyDebugHeaders: { disabled: true } }, how, 0), '999999');
    });
  }

  it("the app's own writeHead object is left as it was: one shared by its answers, and a frozen one", async () => {
    const mesh = await createMesh({ service: 'httpbin', config: [] as never, logger: quiet });
    const shared = { 'content-type': 'text/plain' };
    const frozen = Object.freeze({ 'content-type': 'text/plain' });
    const server = mesh.createServer((req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(200, req.url === '/frozen' ? frozen : shared).end('ok');
    });
    const port = await listen(server);
    try {
      for (const path of ['/shared', '/shared', '/frozen']) {
        const r = await request(`http://127.0.0.1:${port}${path}`);
        assert.equal(await r.body.text(), 'ok');
        assertServiceTime(r.headers[NAME], 0);
        assert.equal(r.headers['content-type'], 'text/plain');
      }
      assert.deepEqual(Object.keys(shared), ['content-type']);
      assert.deepEqual(Object.keys(frozen), ['content-type']);
    } finally {
      await new Promise((resolve) => server.close(resolve));
      await mesh.close();
    }
  });

  it('disabled: none added', async () => {
    assert.equal(await served({ envoyDebugHeaders: { disabled: true } }, 'none', 0), undefined);
  });
});

describe('gRPC server: x-envoy-upstream-service-time on the handler’s answer', () => {
  async function call(proxyHeaders: ProxyHeadersOptions | undefined, fail: boolean): Promise<{ header: unknown; trailer: unknown; code: number | undefined }> {
    const mesh = await createMesh({ service: 'echo', config: [] as never, logger: quiet, ...(proxyHeaders === undefined ? {} : { proxyHeaders }) });
    const s = await startMeshGrpcServer(mesh, 'insecure', {
      Unary: (c, cb) => {
        void sleep(30).then(() => {
          if (fail) cb({ code: grpc.status.NOT_FOUND, details: 'no such echo', metadata: new grpc.Metadata() } as grpc.ServiceError);
          else {
            const md = new grpc.Metadata();
            md.set(NAME, '999999');
            c.sendMetadata(md);
            cb(null, { text: 'hi', from: 'mesh-server' } as never);
          }
        });
      },
    });
    const client = plainClient(s.port) as unknown as Echo;
    try {
      const r = await unary(client, { text: 'hi' });
      // A trailers-only answer (the failure) carries its headers in the status's metadata.
      return { header: r.metadata?.get(NAME)[0], trailer: r.error?.metadata.get(NAME)[0], code: r.error?.code };
    } finally {
      client.close();
      await s.close();
      await mesh.close();
    }
  }

  it('on the response metadata over the handler’s own, and on a trailers-only answer; none with envoyDebugHeaders disabled', async () => {
    const ok = await call(undefined, false);
    assertServiceTime(ok.header, 30);
    const failed = await call(undefined, true);
    assert.equal(failed.code, grpc.status.NOT_FOUND);
    assertServiceTime(failed.trailer, 30);
    assert.equal((await call({ envoyDebugHeaders: { disabled: true } }, false)).header, '999999');
    assert.equal((await call({ envoyDebugHeaders: { disabled: true } }, true)).trailer, undefined);
  });
});
