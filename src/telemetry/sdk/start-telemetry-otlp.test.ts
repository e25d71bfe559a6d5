import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { metrics, trace } from '@opentelemetry/api';
import protobuf from 'protobufjs';
import { InvalidArgumentError } from '../../core/errors.ts';
import { loadPeer, type OtlpProtocol } from './otlp-exporters.ts';
import { startTelemetry, type StartTelemetryOptions } from './start-telemetry.ts';

// The parts of OTLP's messages the tests read (opentelemetry-proto's field numbers).
const OTLP = protobuf.parse(`
syntax = "proto3";
message AnyValue { oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; } }
message KeyValue { string key = 1; AnyValue value = 2; }
message Resource { repeated KeyValue attributes = 1; }
message Span { bytes trace_id = 1; bytes span_id = 2; string name = 5; repeated KeyValue attributes = 9; }
message ScopeSpans { repeated Span spans = 2; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message Metric { string name = 1; }
message ScopeMetrics { repeated Metric metrics = 2; }
message ResourceMetrics { Resource resource = 1; repeated ScopeMetrics scope_metrics = 2; }
message ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1; }
`).root;

interface KeyValue {
  key: string;
  value?: { stringValue?: string };
}
interface Exported {
  spans: { name: string; attributes: KeyValue[]; service: string | undefined }[];
  metrics: string[];
}

/** What one export request carried, from its decoded (protobuf) or parsed (JSON) body: both use the same camelCase names. */
function exported(kind: 'traces' | 'metrics', body: unknown): Exported {
  const service = (r: { resource?: { attributes?: KeyValue[] } }) => r.resource?.attributes?.find((a) => a.key === 'service.name')?.value?.stringValue;
  if (kind === 'traces') {
    const { resourceSpans = [] } = body as { resourceSpans?: { resource?: { attributes?: KeyValue[] }; scopeSpans?: { spans?: { name: string; attributes?: KeyValue[] }[] }[] }[] };
    return { spans: resourceSpans.flatMap((r) => (r.scopeSpans ?? []).flatMap((s) => (s.spans ?? []).map((span) => ({ name: span.name, attributes: span.attributes ?? [], service: service(r) })))), metrics: [] };
  }
  const { resourceMetrics = [] } = body as { resourceMetrics?: { scopeMetrics?: { metrics?: { name: string }[] }[] }[] };
  return { spans: [], metrics: resourceMetrics.flatMap((r) => (r.scopeMetrics ?? []).flatMap((s) => (s.metrics ?? []).map((m) => m.name))) };
}

function decode(kind: 'traces' | 'metrics', bytes: Uint8Array): unknown {
  const type = OTLP.lookupType(kind === 'traces' ? 'ExportTraceServiceRequest' : 'ExportMetricsServiceRequest');
  return type.toObject(type.decode(bytes));
}

interface Received {
  kind: 'traces' | 'metrics';
  /** The request's content-type (HTTP) or `application/grpc`. */
  contentType: string;
  /** The `x-tenant` header or metadata. */
  tenant: string | undefined;
  exported: Exported;
}

/** A local OTLP/HTTP receiver: decodes protobuf or JSON bodies by their content-type, answers an empty success of the same kind. */
async function httpReceiver(): Promise<{ endpoint: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const kind = req.url === '/v1/traces' ? 'traces' : req.url === '/v1/metrics' ? 'metrics' : undefined;
      const contentType = req.headers['content-type'] ?? '';
      if (kind === undefined) {
        res.writeHead(404).end();
        return;
      }
      const body = Buffer.concat(chunks);
      const json = contentType === 'application/json';
      received.push({ kind, contentType, tenant: req.headers['x-tenant'] as string | undefined, exported: exported(kind, json ? JSON.parse(body.toString('utf8')) : decode(kind, body)) });
      res.writeHead(200, { 'content-type': contentType }).end(json ? '{}' : '');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** A local OTLP/gRPC receiver: the collector's two Export methods, bytes in, an empty message out. */
async function grpcReceiver(): Promise<{ endpoint: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const server = new grpc.Server();
  const bytes = (b: Buffer) => b;
  for (const [kind, service] of [
    ['traces', 'opentelemetry.proto.collector.trace.v1.TraceService'],
    ['metrics', 'opentelemetry.proto.collector.metrics.v1.MetricsService'],
  ] as const) {
    const definition = { Export: { path: `/${service}/Export`, requestStream: false, responseStream: false, requestSerialize: bytes, requestDeserialize: bytes, responseSerialize: bytes, responseDeserialize: bytes } };
    server.addService(definition, {
      Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        received.push({ kind, contentType: 'application/grpc', tenant: call.metadata.get('x-tenant')[0] as string | undefined, exported: exported(kind, decode(kind, call.request)) });
        callback(null, Buffer.alloc(0));
      },
    });
  }
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { endpoint: `http://127.0.0.1:${port}`, received, close: () => new Promise<void>((r) => server.tryShutdown(() => r())) };
}

const ENV = ['OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_METRICS_PROTOCOL', 'OTEL_EXPORTER_OTLP_ENDPOINT'];

/** Starts telemetry against `endpoint`, records one span and one counter through the global API, and shuts down (which flushes both). */
async function exportOnce(endpoint: string, otlp: NonNullable<Exclude<StartTelemetryOptions['otlp'], boolean>> = {}): Promise<void> {
  const t = await startTelemetry({ serviceName: 'reviews', prometheus: false, otlp: { endpoint, exportIntervalMs: 3_600_000, headers: { 'x-tenant': 'team-a' }, ...otlp } });
  trace.getTracer('meshlet').startSpan('reviews.default.svc.cluster.local:9080/*', { attributes: { upstream_cluster: 'outbound|9080||reviews.default.svc.cluster.local' } }).end();
  metrics.getMeter('meshlet').createCounter('istio_requests_total').add(1, { reporter: 'source' });
  await t.shutdown();
}

function checkExported(received: Received[], contentType: { traces: string; metrics: string }): void {
  const traces = received.filter((r) => r.kind === 'traces');
  const metricsIn = received.filter((r) => r.kind === 'metrics');
  assert.ok(traces.length > 0 && metricsIn.length > 0, `spans and metrics arrived (got ${received.map((r) => r.kind).join(', ') || 'nothing'})`);
  for (const r of traces) assert.equal(r.contentType, contentType.traces);
  for (const r of metricsIn) assert.equal(r.contentType, contentType.metrics);
  for (const r of received) assert.equal(r.tenant, 'team-a', 'the headers option went with every export');
  const spans = traces.flatMap((r) => r.exported.spans);
  assert.deepEqual(
    spans.map((s) => [s.name, s.service, s.attributes.find((a) => a.key === 'upstream_cluster')?.value?.stringValue]),
    [['reviews.default.svc.cluster.local:9080/*', 'reviews', 'outbound|9080||reviews.default.svc.cluster.local']],
  );
  assert.ok(
    metricsIn.some((r) => r.exported.metrics.includes('istio_requests_total')),
    'the counter was exported',
  );
}

describe('startTelemetry() OTLP protocols', () => {
  const saved = new Map<string, string | undefined>();
  before(() => {
    for (const name of ENV) saved.set(name, process.env[name]);
  });
  beforeEach(() => {
    for (const name of ENV) delete process.env[name];
  });
  afterEach(() => {
    // Nothing else: each test starts telemetry again, which works only because Telemetry.shutdown()
    // unregisters the tracer provider, context manager and propagator it registered.
    for (const name of ENV) delete process.env[name];
  });
  after(() => {
    for (const [name, value] of saved) if (value !== undefined) process.env[name] = value;
  });

  it('http/protobuf by default (the spec\'s default): protobuf bodies to <endpoint>/v1/traces and /v1/metrics', async () => {
    const sink = await httpReceiver();
    try {
      await exportOnce(`${sink.endpoint}/`);
      checkExported(sink.received, { traces: 'application/x-protobuf', metrics: 'application/x-protobuf' });
    } finally {
      await sink.close();
    }
  });

  for (const [protocol, contentType] of [
    ['http/protobuf', 'application/x-protobuf'],
    ['http/json', 'application/json'],
  ] as const) {
    it(`protocol '${protocol}': ${contentType} bodies`, async () => {
      const sink = await httpReceiver();
      try {
        await exportOnce(sink.endpoint, { protocol, temporality: 'delta' });
        checkExported(sink.received, { traces: contentType, metrics: contentType });
      } finally {
        await sink.close();
      }
    });
  }

  it("protocol 'grpc': the collector's Export methods at the endpoint as it is, headers as metadata", async () => {
    const receiver = await grpcReceiver();
    try {
      await exportOnce(receiver.endpoint, { protocol: 'grpc' });
      checkExported(receiver.received, { traces: 'application/grpc', metrics: 'application/grpc' });
    } finally {
      await receiver.close();
    }
  });

  // Which protocol each signal speaks: the option, else the signal's variable, else the general one.
  const precedence: [title: string, env: Record<string, string>, protocol: OtlpProtocol | undefined, want: { traces: string; metrics: string }][] = [
    ['OTEL_EXPORTER_OTLP_PROTOCOL chooses the protocol when the option is not given', { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }, undefined, { traces: 'application/json', metrics: 'application/json' }],
    ["a signal's own variable wins over OTEL_EXPORTER_OTLP_PROTOCOL", { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf' }, undefined, { traces: 'application/x-protobuf', metrics: 'application/json' }],
    ['the option wins over the variables', { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'grpc' }, 'http/json', { traces: 'application/json', metrics: 'application/json' }],
  ];
  for (const [title, env, protocol, want] of precedence) {
    it(title, async () => {
      const sink = await httpReceiver();
      try {
        Object.assign(process.env, env);
        await exportOnce(sink.endpoint, protocol === undefined ? {} : { protocol });
        checkExported(sink.received, want);
      } finally {
        await sink.close();
      }
    });
  }

  const bad: [string, Record<string, string>, StartTelemetryOptions['otlp'], RegExp][] = [
    ['the option', {}, { protocol: 'thrift' as 'grpc' }, /otlp\.protocol must be 'http\/protobuf', 'http\/json' or 'grpc', got "thrift"/],
    ['the option, with nothing exported', {}, { protocol: 'http' as 'grpc', traces: false, metrics: false }, /otlp\.protocol must be/],
    ['OTEL_EXPORTER_OTLP_PROTOCOL', { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/xml' }, { endpoint: 'http://127.0.0.1:9' }, /OTEL_EXPORTER_OTLP_PROTOCOL must be 'http\/protobuf', 'http\/json' or 'grpc', got "http\/xml"/],
    ['OTEL_EXPORTER_OTLP_METRICS_PROTOCOL', { OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'protobuf' }, { endpoint: 'http://127.0.0.1:9' }, /OTEL_EXPORTER_OTLP_METRICS_PROTOCOL must be .*got "protobuf"/],
  ];
  for (const [name, env, otlp, message] of bad) {
    it(`refuses a bad protocol in ${name}, naming it and the allowed values`, async () => {
      Object.assign(process.env, env);
      await assert.rejects(startTelemetry({ prometheus: false, otlp }), (e: unknown) => e instanceof InvalidArgumentError && message.test(e.message));
    });
  }

  it('a bad protocol variable is not read when OTLP is off', async () => {
    process.env['OTEL_EXPORTER_OTLP_PROTOCOL'] = 'http/xml';
    const t = await startTelemetry({ prometheus: false, otlp: false });
    await t.shutdown();
  });

  it('a missing exporter package: an error naming the package to install and how to choose another protocol', async () => {
    const name = '@opentelemetry/exporter-trace-otlp-none-such';
    await assert.rejects(
      loadPeer(name, 'grpc', () => import(name)),
      (e: unknown) => e instanceof InvalidArgumentError && e.message.includes(`OTLP over grpc needs ${name}`) && e.message.includes(`npm install ${name}`) && e.message.endsWith("or choose another protocol ('http/protobuf' or 'http/json') with otlp.protocol or OTEL_EXPORTER_OTLP_PROTOCOL"),
    );
    // Something else missing (a dependency of an installed package) is not blamed on the package.
    const other = '@opentelemetry/none-such-dependency';
    await assert.rejects(loadPeer(name, 'grpc', () => import(other)), (e: unknown) => (e as { code?: string }).code === 'ERR_MODULE_NOT_FOUND' && !(e instanceof InvalidArgumentError));
  });
});
