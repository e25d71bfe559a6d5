/**
 * The trace context the app is handed with a request, as an Envoy sidecar's router injects its
 * span into the request it forwards to the app: the app's `traceparent` names the mesh's server
 * span (the caller's trace, the server span's id, the sampling decision), so the app's own
 * instrumentation's span — made from the request's headers, as @opentelemetry/instrumentation-http
 * makes it — and headers the app forwards by hand are children of the mesh's server span, not its
 * siblings. The app's SDK (in-memory exporter) records the spans; servers: `mesh.createServer`
 * and Express with `mesh.express()`.
 */
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders, RequestListener } from 'node:http';
import { describe, it } from 'node:test';
import express from 'express';
import { request } from 'undici';
import { createMesh, type Mesh } from '../../src/index.ts';
import { listen } from '../helpers/frameworks.ts';
import { exporter, finished, S, server, T, useTracingSdk } from '../helpers/tracing-policy.ts';

useTracingSdk();

const kinds: { name: string; serve(mesh: Mesh, listener: RequestListener): Promise<{ port: number; close(): Promise<void> }> }[] = [
  {
    name: 'mesh.createServer',
    async serve(mesh, listener) {
      const s = mesh.createServer(listener);
      const port = await listen(s);
      return { port, close: () => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); }) };
    },
  },
  {
    name: 'Express with mesh.express()',
    async serve(mesh, listener) {
      const app = express();
      app.use(mesh.express());
      app.use((req, res) => listener(req, res));
      const s = app.listen(0, '127.0.0.1');
      await new Promise((r) => s.once('listening', r));
      const port = (s.address() as { port: number }).port;
      return { port, close: () => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); }) };
    },
  },
];

for (const kind of kinds) {
  describe(`the trace context the app gets (${kind.name})`, () => {
    async function withServer(samplingPercentage: number, fn: (send: (headers: Record<string, string>) => Promise<IncomingHttpHeaders>) => Promise<void>, propagation = true) {
      const mesh = await createMesh({
        service: 'app',
        namespace: 'default',
        logger: { warn: () => {} },
        telemetry: { tracing: { samplingPercentage } },
        config: propagation
          ? []
          : [{ apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetry', metadata: { name: 'mesh-default', namespace: 'istio-system' }, spec: { tracing: [{ randomSamplingPercentage: samplingPercentage, disableContextPropagation: true }] } }],
      });
      let seen: IncomingHttpHeaders = {};
      const s = await kind.serve(mesh, (req, res) => {
        seen = { ...req.headers };
        res.end('ok');
      });
      try {
        await fn(async (headers) => {
          exporter.reset();
          const r = await request(`http://127.0.0.1:${s.port}/up`, { headers });
          assert.equal(await r.body.text(), 'ok');
          return seen;
        });
      } finally {
        await s.close();
        await mesh.close();
      }
    }

    it("sampled: the app's traceparent is the mesh's server span (the caller's trace, the span's id, sampled)", async () => {
      await withServer(100, async (send) => {
        const h = await send({ traceparent: `00-${T}-${S}-01` });
        const span = server(await finished(1));
        assert.ok(span !== undefined, 'the server span');
        assert.equal(span.parentSpanContext?.spanId, S);
        assert.equal(h.traceparent, `00-${T}-${span.spanContext().spanId}-01`);
      });
    });

    it('unsampled: the same trace, a span id of the mesh (not the caller’s), not sampled; a request without context starts one', async () => {
      await withServer(0, async (send) => {
        const h = await send({ traceparent: `00-${T}-${S}-00` });
        const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-00$/.exec(String(h.traceparent));
        assert.ok(m !== null, String(h.traceparent));
        assert.equal(m[1], T);
        assert.notEqual(m[2], S);
        const fresh = await send({});
        assert.match(String(fresh.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
      });
    });

    it('disableContextPropagation: the app gets the caller’s traceparent as sent', async () => {
      await withServer(
        100,
        async (send) => {
          const h = await send({ traceparent: `00-${T}-${S}-01` });
          assert.equal(h.traceparent, `00-${T}-${S}-01`);
        },
        false,
      );
    });
  });
}
