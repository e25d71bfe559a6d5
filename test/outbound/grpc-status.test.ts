/**
 * gRPC status through the HTTP path (the kernel review's Appendix A spike): an h2c upstream that
 * answers like a gRPC server, called with `content-type: application/grpc` through
 * mesh.dispatcher. UNAVAILABLE counts as Envoy counts it (503) for outlier detection whether it
 * comes trailers-only or in real trailers; retries act on trailers-only answers only (a
 * response the caller started to receive is never retried, as in Envoy); and the mesh's own
 * answers to a gRPC call are trailers-only gRPC statuses, as Envoy's local replies are.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { request } from 'undici';
import { createMesh, seededRandom } from '../../src/index.ts';
import { destinationRule, serviceEntry, virtualService } from '../helpers/upstreams.ts';

async function grpcLike(mode: 'trailers-only' | 'trailers', c: { hits: number }) {
  const server = createServer((req, res) => {
    c.hits++;
    req.resume();
    req.on('end', () => {
      if (mode === 'trailers-only') {
        res.writeHead(200, { 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': 'down' });
        res.end();
      } else {
        res.writeHead(200, { 'content-type': 'application/grpc' });
        res.addTrailers({ 'grpc-status': '14', 'grpc-message': 'down' });
        res.end(Buffer.alloc(5));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

for (const mode of ['trailers-only', 'trailers'] as const) {
  describe(`UNAVAILABLE ${mode}`, () => {
    it(`${mode === 'trailers-only' ? 'is retried (retryOn: unavailable) and' : 'is not retried (headers were forwarded) but'} ejects the endpoint after consecutive5xxErrors`, async () => {
      const c = { hits: 0 };
      const up = await grpcLike(mode, c);
      const mesh = await createMesh({
        service: 'client',
        random: seededRandom(1),
        config: [
          serviceEntry('svc', 'svc.default.svc.cluster.local', 9090, [{ port: up.port }], { ports: [{ number: 9090, name: 'http', protocol: 'GRPC' }] }),
          virtualService('svc', ['svc'], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 2, retryOn: 'unavailable', retryIgnorePreviousHosts: false } }]),
          destinationRule('svc', 'svc', { trafficPolicy: { outlierDetection: { consecutive5xxErrors: 2, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 100 } } }),
        ],
      });
      try {
        const send = async () => {
          const r = await request('http://svc:9090/pkg.Svc/Get', { method: 'POST', headers: { 'content-type': 'application/grpc', te: 'trailers' }, body: Buffer.alloc(5), dispatcher: mesh.dispatcher });
          await r.body.dump();
          return { status: r.statusCode, grpc: r.headers['grpc-status'] ?? r.trailers['grpc-status'], message: r.headers['grpc-message'], flags: r.headers['x-meshlet-response-flags'] };
        };
        const first = await send();
        assert.equal(first.grpc, '14');
        assert.equal(c.hits, mode === 'trailers-only' ? 2 : 1, 'attempts for the first call');
        if (mode === 'trailers') await send();
        const eps = mesh.diagnostics().clusters[0]?.endpoints ?? [];
        assert.deepEqual(eps.map((e) => e.ejected), [true], 'two consecutive UNAVAILABLE (503) eject');
        // No healthy upstream: the mesh answers as Envoy answers a gRPC call, trailers-only.
        const hits = c.hits;
        const local = await send();
        assert.equal(c.hits, hits, 'nothing sent');
        assert.deepEqual(local, { status: 200, grpc: '14', message: 'no healthy upstream', flags: 'UH' });
      } finally {
        await mesh.close();
        await up.close();
      }
    });
  });
}

describe('mesh-made answers to gRPC calls', () => {
  it('no route is UNIMPLEMENTED (12), a gRPC fault abort its configured status, an HTTP abort status mapped; all trailers-only with the flag', async () => {
    const c = { hits: 0 };
    const up = await grpcLike('trailers-only', c);
    const mesh = await createMesh({
      service: 'client',
      config: [
        serviceEntry('svc', 'svc.default.svc.cluster.local', 9090, [{ port: up.port }], { ports: [{ number: 9090, name: 'http', protocol: 'GRPC' }] }),
        virtualService('svc', ['svc'], [
          { match: [{ uri: { prefix: '/pkg.Svc/Abort' } }], route: [{ destination: { host: 'svc' } }], fault: { abort: { grpcStatus: 'RESOURCE_EXHAUSTED', percentage: { value: 100 } } } },
          { match: [{ uri: { prefix: '/pkg.Svc/Http' } }], route: [{ destination: { host: 'svc' } }], fault: { abort: { httpStatus: 503, percentage: { value: 100 } } } },
        ]),
      ],
    });
    try {
      const send = async (path: string) => {
        const r = await request(`http://svc:9090${path}`, { method: 'POST', headers: { 'content-type': 'application/grpc' }, body: Buffer.alloc(5), dispatcher: mesh.dispatcher });
        await r.body.dump();
        return [r.statusCode, r.headers['content-type'], r.headers['grpc-status'], r.headers['x-meshlet-response-flags']];
      };
      assert.deepEqual(await send('/pkg.Svc/Nope'), [200, 'application/grpc', '12', 'NR']);
      assert.deepEqual(await send('/pkg.Svc/Abort'), [200, 'application/grpc', '8', 'FI']);
      assert.deepEqual(await send('/pkg.Svc/Http'), [200, 'application/grpc', '14', 'FI'], 'an HTTP abort status reaches a gRPC caller mapped (503 → UNAVAILABLE)');
      assert.equal(c.hits, 0);
      // The same abort to a plain HTTP caller stays HTTP.
      const http = await request('http://svc:9090/pkg.Svc/Http', { dispatcher: mesh.dispatcher });
      assert.equal(http.statusCode, 503);
      assert.equal(await http.body.text(), 'fault filter abort');
    } finally {
      await mesh.close();
      await up.close();
    }
  });
});
