/**
 * An `envoyOtelAls` record carries the trace and span ids of the request's span, as Envoy's
 * OpenTelemetry access logger sets them from the request's active span
 * (`access_loggers/open_telemetry/access_log_impl.cc` `emitLog` → `otlp_log_utils.cc`
 * `populateTraceContext`): `trace_id` 16 bytes, `span_id` 8 bytes. On the server side the span is
 * the one the mesh made for the request (the one handed to the app); on the client side the
 * call's own span (Envoy's egress span of the outbound connection manager), not an attempt's.
 * Unsampled requests have ids too (Envoy's span exists either way). Without an OpenTelemetry SDK
 * the mesh makes no span: the record has neither id (Envoy's null span when tracing is off).
 *
 * Its own file: the global tracer provider is per process.
 */
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { context, propagation, SpanKind, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { until } from '../helpers/access-log.ts';
import { otelAlsFixture, otelAlsMesh } from '../helpers/otel-access-log.ts';
import { type DecodedLogRecord, RATINGS } from '../helpers/otel-collector.ts';

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const PARENT = 'b7ad6b7169203331';
const exporter = new InMemorySpanExporter();

/** The headers each request reached ratings with. */
const atRatings: IncomingHttpHeaders[] = [];
const f = otelAlsFixture((req, res) => {
  atRatings.push(req.headers);
  res.end('ratings');
});
after(() => {
  trace.disable();
  context.disable();
  propagation.disable();
});

/** The hex ids of a traceparent. */
const idsOf = (tp: unknown): [string, string] => [String(tp).slice(3, 35), String(tp).slice(36, 52)];

/**
 * A served request (`/outer`, with `traceparent`) whose handler calls ratings through the mesh:
 * the two records (by body), the traceparent handed to the app, and the one ratings got.
 */
async function run(samplingPercentage: number, traceparent: string, tracing?: object, tracestate?: string): Promise<{ inbound: DecodedLogRecord; outbound: DecodedLogRecord; app: string | undefined; sent: string | undefined }> {
  const { collector } = f;
  collector.exports.length = 0;
  atRatings.length = 0;
  const { mesh, clock, log } = await otelAlsMesh(f, { accessLogging: [{ providers: [{ name: 'otel' }] }], ...(tracing === undefined ? {} : { tracing: [tracing] }) }, {
    envoyOtelAls: { logFormat: { text: '%REQ(:PATH)%' } },
    mesh: { telemetry: { tracing: { samplingPercentage } } },
  });
  let app: string | undefined;
  const server = mesh.createServer(async (req, res) => {
    app = String(req.headers.traceparent);
    await (await mesh.fetch(`http://${RATINGS}:9080/inner`)).text();
    res.end('in');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as AddressInfo).port;
    await (await fetch(`http://127.0.0.1:${port}/outer`, { headers: { traceparent, ...(tracestate === undefined ? {} : { tracestate }) } })).text();
    clock.advance(1000);
    await until(() => collector.records().length === 2, 'both records at the collector');
    const by = (body: string) => collector.records().find((r) => r.body?.string_value === body) as DecodedLogRecord;
    assert.deepEqual(log.warnings, []);
    return { inbound: by('/outer'), outbound: by('/inner'), app, sent: atRatings[0]?.traceparent as string | undefined };
  } finally {
    server.close();
    await mesh.close();
  }
}

describe('envoyOtelAls records: trace_id and span_id of the request span', () => {
  test('without an OpenTelemetry SDK the mesh makes no span: no trace_id, no span_id', async () => {
    const r = await run(100, `00-${TRACE}-${PARENT}-01`);
    for (const rec of [r.inbound, r.outbound]) assert.deepEqual([rec.trace_id.length, rec.span_id.length], [0, 0]);
  });

  test('sampled: the server span (the one handed to the app) and the call span (not its attempt span), 16 and 8 bytes', async () => {
    trace.setGlobalTracerProvider(new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }));
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    exporter.reset();
    const r = await run(100, `00-${TRACE}-${PARENT}-01`);
    const spans = exporter.getFinishedSpans();
    const server = spans.find((s) => s.kind === SpanKind.SERVER && s.name.startsWith('reviews.default.svc.cluster.local:'));
    const client = spans.find((s) => s.kind === SpanKind.CLIENT && s.name === `${RATINGS}:9080/*`);
    assert.ok(server !== undefined && client !== undefined, spans.map((s) => s.name).join(', '));
    assert.equal(r.inbound.trace_id.length, 16);
    assert.equal(r.inbound.span_id.length, 8);
    assert.deepEqual([r.inbound.trace_id.toString('hex'), r.inbound.span_id.toString('hex')], [TRACE, server.spanContext().spanId]);
    assert.deepEqual(idsOf(r.app), [TRACE, server.spanContext().spanId]);
    assert.deepEqual([r.outbound.trace_id.toString('hex'), r.outbound.span_id.toString('hex')], [TRACE, client.spanContext().spanId]);
    // Ratings got the attempt's span: not the one in the record.
    assert.notEqual(idsOf(r.sent)[1], client.spanContext().spanId);
  });

  test('unsampled: the ids of the spans the request and the call carry on (the app saw, ratings got)', async () => {
    const r = await run(0, `00-${TRACE}-${PARENT}-00`);
    assert.ok(r.app !== undefined && r.sent !== undefined);
    assert.deepEqual([r.inbound.trace_id.toString('hex'), r.inbound.span_id.toString('hex')], idsOf(r.app));
    assert.deepEqual([r.outbound.trace_id.toString('hex'), r.outbound.span_id.toString('hex')], idsOf(r.sent));
    assert.equal(idsOf(r.sent)[0], TRACE);
    assert.notEqual(idsOf(r.app)[1], PARENT);
  });

  test('unsampled, the caller sent a tracestate (the call writes its headers through the propagators): the ids ratings got', async () => {
    const r = await run(0, `00-${TRACE}-${PARENT}-00`, undefined, 'vendor=x');
    assert.ok(r.sent !== undefined);
    assert.equal(idsOf(r.sent)[0], TRACE);
    assert.deepEqual([r.outbound.trace_id.toString('hex'), r.outbound.span_id.toString('hex')], idsOf(r.sent));
  });

  test('tracing disabled for the server side (disableSpanReporting): no span, no ids there; the client side keeps its own', async () => {
    const r = await run(100, `00-${TRACE}-${PARENT}-01`, { match: { mode: 'SERVER' }, disableSpanReporting: true });
    assert.deepEqual([r.inbound.trace_id.length, r.inbound.span_id.length], [0, 0]);
    assert.deepEqual([r.outbound.trace_id.toString('hex'), r.outbound.span_id.length], [TRACE, 8]);
  });
});
