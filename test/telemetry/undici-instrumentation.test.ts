/**
 * The app's own HTTP client instrumentation (`@opentelemetry/instrumentation-undici`, part of
 * `auto-instrumentations-node`) with calls through the mesh. With a sidecar, the instrumentation's
 * span for the app's request is the parent of the sidecar's span, and the sidecar rewrites
 * `traceparent`: one value on the wire, one trace. In process it saw the mesh's own requests to
 * the endpoints instead and appended its `traceparent` to the mesh's (two values: the next hop
 * read neither and started a new trace; one call made three traces). Now the app's call is
 * published as undici would publish it, the mesh's own requests are sent with tracing suppressed.
 *
 * Its own file: the global tracer provider, propagator and instrumentation are per process.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { context, propagation, SpanKind, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { request } from 'undici';
import { createMesh, type Mesh } from '../../src/index.ts';
import { listen } from '../helpers/frameworks.ts';
import { serviceEntry, virtualService } from '../helpers/upstreams.ts';

const exporter = new InMemorySpanExporter();
const HOST = 'ratings.default.svc.cluster.local';
const SCOPE = '@opentelemetry/instrumentation-undici';

/** Spans are exported when they end; the server span ends when the response closed, just after the client read it (waits up to ~10 s: only a hang fails on a loaded machine). */
async function spans(n: number): Promise<ReadableSpan[]> {
  for (let i = 0; i < 2000 && exporter.getFinishedSpans().length < n; i++) await new Promise((r) => setTimeout(r, 5));
  return exporter.getFinishedSpans();
}

const id = (s: ReadableSpan | undefined) => s?.spanContext().spanId;
const parent = (s: ReadableSpan | undefined) => s?.parentSpanContext?.spanId;

describe("the app's @opentelemetry/instrumentation-undici with calls through the mesh", () => {
  let instrumentation: UndiciInstrumentation;
  let server: Mesh;
  let client: Mesh;
  let close: () => Promise<void>;
  /** `traceparent` as each request reached the server's handler (Node joins repeated values with ", "). */
  const wire: (string | undefined)[] = [];
  let hits = 0;
  let ratingsPort: number;

  before(async () => {
    const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
    trace.setGlobalTracerProvider(provider);
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }));
    instrumentation = new UndiciInstrumentation();
    instrumentation.setTracerProvider(provider);
    instrumentation.enable();
    const tracing = { tracing: { samplingPercentage: 100 } };
    server = await createMesh({ service: 'ratings', config: [], telemetry: tracing, logger: { warn: () => {} } });
    const http = server.createServer((req: IncomingMessage, res: ServerResponse) => {
      wire.push(req.headers.traceparent as string | undefined);
      if (req.url === '/slow') {
        // A body that arrives in two packets: the second is read in the connection's own callback.
        res.write('a');
        setTimeout(() => res.end('b'), 20);
        return;
      }
      // /flaky fails its first hit (the client retries it).
      res.statusCode = req.url === '/flaky' && ++hits === 1 ? 503 : 200;
      res.end('ok');
    });
    const port = await listen(http);
    ratingsPort = port;
    client = await createMesh({
      service: 'productpage',
      telemetry: tracing,
      logger: { warn: () => {} },
      config: [serviceEntry('ratings', HOST, 9080, [{ port }]), virtualService('ratings', [HOST], [{ route: [{ destination: { host: HOST } }], retries: { attempts: 2, retryOn: '5xx' } }])],
    });
    close = async () => {
      await client.close();
      await new Promise<void>((r) => http.close(() => r()));
      await server.close();
    };
  });

  after(async () => {
    await close();
    instrumentation.disable();
    trace.disable();
    context.disable();
    propagation.disable();
  });

  it('mesh.fetch outside any span: one traceparent on the wire (the attempt’s), the instrumentation’s span for the app’s request is the call span’s parent, one trace', async () => {
    exporter.reset();
    const r = await client.fetch(`http://${HOST}:9080/a`);
    assert.equal(await r.text(), 'ok');
    const all = await spans(4);
    const app = all.filter((s) => s.instrumentationScope.name === SCOPE);
    const call = all.find((s) => s.kind === SpanKind.CLIENT && s.name === `${HOST}:9080/*`);
    const attempt = all.find((s) => s.name.startsWith('router '));
    const served = all.find((s) => s.kind === SpanKind.SERVER);
    // One span of the instrumentation: the app's request (none for the mesh's own request to the endpoint).
    assert.equal(app.length, 1, all.map((s) => `${s.instrumentationScope.name} ${s.name}`).join(', '));
    assert.deepEqual([app[0]?.kind, app[0]?.attributes['url.full'], app[0]?.attributes['http.response.status_code']], [SpanKind.CLIENT, `http://${HOST}:9080/a`, 200]);
    assert.equal(parent(app[0]), undefined, 'the app made the call outside any span: its request is the root');
    assert.equal(parent(call), id(app[0]), "the mesh's client span is the child of the app's request span, as a sidecar's");
    assert.equal(parent(attempt), id(call));
    assert.equal(parent(served), id(attempt));
    const traceId = app[0]?.spanContext().traceId;
    assert.ok(
      all.every((s) => s.spanContext().traceId === traceId),
      'one trace',
    );
    // The upstream got one traceparent, the attempt's (its server span's parent); the app behind it is handed its server span's.
    assert.equal(wire.at(-1), `00-${traceId}-${id(served)}-01`, 'one value: the server span’s context, under the attempt’s');
  });

  it('Node’s fetch with mesh.dispatcher inside an app span, retried: each attempt sends one traceparent, its own', async () => {
    exporter.reset();
    hits = 0;
    const tracer = trace.getTracer('app');
    const appSpanId = await tracer.startActiveSpan('app work', async (span) => {
      const r = await fetch(`http://${HOST}:9080/flaky`, { dispatcher: client.dispatcher } as RequestInit);
      assert.equal(r.status, 200);
      await r.text();
      span.end();
      return span.spanContext().spanId;
    });
    const all = await spans(7);
    const app = all.filter((s) => s.instrumentationScope.name === SCOPE);
    const call = all.find((s) => s.kind === SpanKind.CLIENT && s.name === `${HOST}:9080/*`);
    const attempts = all.filter((s) => s.name.startsWith('router ')).sort((x, y) => Number(x.attributes['meshlet.attempt']) - Number(y.attributes['meshlet.attempt']));
    assert.equal(app.length, 1, all.map((s) => `${s.instrumentationScope.name} ${s.name}`).join(', '));
    assert.equal(parent(app[0]), appSpanId);
    assert.equal(parent(call), id(app[0]));
    assert.equal(attempts.length, 2);
    const traceId = app[0]?.spanContext().traceId;
    // Each attempt reached a server span of its own (its child), whose context the app behind it was handed.
    const servedBy = (a: ReadableSpan | undefined) => all.find((s) => s.kind === SpanKind.SERVER && parent(s) === id(a));
    assert.deepEqual(wire.slice(-2), [`00-${traceId}-${id(servedBy(attempts[0]))}-01`, `00-${traceId}-${id(servedBy(attempts[1]))}-01`]);
  });

  it("an HTTP/2 caller of the mesh's server: the hop to the app is not the app's call (no instrumentation span), the server span is the caller's child and the app's code traces", async () => {
    exporter.reset();
    const callerTrace = '0af7651916cd43dd8448eb211c80319c';
    const callerSpan = 'b7ad6b7169203331';
    const session = h2connect(`http://127.0.0.1:${ratingsPort}`);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ':method': 'GET', ':path': '/h2', traceparent: `00-${callerTrace}-${callerSpan}-01` });
        let st = 0;
        req.on('response', (h) => (st = Number(h[':status'])));
        req.on('data', () => undefined);
        req.on('end', () => resolve(st));
        req.on('error', reject);
      });
      assert.equal(status, 200);
      const all = await spans(1);
      const served = all.find((s) => s.kind === SpanKind.SERVER);
      assert.deepEqual(
        all.filter((s) => s.instrumentationScope.name === SCOPE).map((s) => s.name),
        [],
        'the bridge to the app made no span of the instrumentation',
      );
      assert.deepEqual([served?.spanContext().traceId, parent(served)], [callerTrace, callerSpan]);
      // The app's handler saw one traceparent: its server span's (the caller's child).
      assert.equal(wire.at(-1), `00-${callerTrace}-${id(served)}-01`);
    } finally {
      session.close();
    }
  });

  it("the mesh's connections are not opened with tracing suppressed: the app's code in their callbacks (a response body's listeners) still traces", async () => {
    // A mesh of its own: its first call opens a new connection.
    const fresh = await createMesh({ service: 'reviews', config: [serviceEntry('ratings', HOST, 9080, [{ port: ratingsPort }])], logger: { warn: () => {} } });
    try {
      const r = await request(`http://${HOST}:9080/slow`, { dispatcher: fresh.dispatcher });
      const recording = await new Promise<boolean[]>((resolve) => {
        const seen: boolean[] = [];
        r.body.on('data', () => {
          const span = trace.getTracer('app').startSpan('in a body listener');
          seen.push(span.isRecording());
          span.end();
        });
        r.body.on('end', () => resolve(seen));
      });
      assert.deepEqual(recording, [true, true]);
    } finally {
      await fresh.close();
    }
  });
});
