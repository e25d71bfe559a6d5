/**
 * Telemetry and context for grpc-js servers under `mesh.grpc.serverInterceptors()`, with the
 * app's own OpenTelemetry SDK (sdk-trace's in-memory exporter, sdk-metrics with a reader the test
 * collects from): a SERVER span per call continuing the caller's trace, the handler's outbound
 * gRPC call a child of it carrying the trace and the caller's deadline, an outbound HTTP call from
 * a handler cut at the caller's deadline, `istio_requests_total{reporter="destination",
 * request_protocol="grpc", grpc_response_status}` for answered, denied and expired calls, access
 * log lines — and on the client side, `grpc_response_status` of a call that failed after its
 * response metadata, and request / response sizes as on the wire (5-byte prefixes counted).
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer, type Server } from 'node:http';
import { connect as connectH2 } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { context, propagation, SpanKind, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { createMesh, type Mesh } from '../../src/index.ts';
import type { CallEndMessage } from '../../src/core/observe.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { capture, until } from '../helpers/access-log.ts';
import { sdk } from '../helpers/metric-reader.ts';
import { serviceEntry } from '../helpers/upstreams.ts';
import { collect, type Echo, EchoClient, grpc, type GrpcUpstream, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';
import { md, type MeshGrpcServer, plainClient, startMeshGrpcServer } from '../helpers/grpc-server.ts';

const exporter = new InMemorySpanExporter();
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';

async function spans(n: number): Promise<ReadableSpan[]> {
  for (let i = 0; i < 200 && exporter.getFinishedSpans().length < n; i++) await new Promise((r) => setTimeout(r, 5));
  return exporter.getFinishedSpans();
}

describe('gRPC server telemetry and context', () => {
  let mesh: Mesh;
  let server: MeshGrpcServer;
  let client: Echo;
  let up: GrpcUpstream;
  let hang: Server;
  const log = capture();
  const metrics = sdk();
  /** What the upstream saw of the handler's outbound call. */
  const upstream: { deadline: number; traceparent: unknown }[] = [];
  /** How the handler's outbound HTTP call to a server that never answers ended. */
  let httpOutcome: { status: number; flags: string | null } | undefined;

  before(async () => {
    trace.setGlobalTracerProvider(new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }));
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    up = await startGrpcUpstream('up', {
      Unary: (call, cb) => {
        const d = call.getDeadline();
        upstream.push({ deadline: d instanceof Date ? d.getTime() : Number(d), traceparent: call.metadata.get('traceparent')[0] });
        cb(null, { text: `up:${call.request.text}`, server: 'up', seen: [] });
      },
    });
    hang = createServer(() => undefined);
    await new Promise<void>((r) => hang.listen(0, '127.0.0.1', () => r()));
    mesh = await createMesh({
      service: 'echo',
      namespace: 'foo',
      labels: { app: 'echo', version: 'v1' },
      logger: log.logger,
      telemetry: { tracing: { samplingPercentage: 100 }, metrics: { meterProvider: metrics.provider }, accessLog: { file: '/dev/stdout' } },
      config: [
        grpcServiceEntry('up', 'up.default.svc.cluster.local', 9090, [{ port: up.port }]),
        serviceEntry('hang', 'hang.default.svc.cluster.local', 8080, [{ port: (hang.address() as AddressInfo).port }]),
        { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny-bidi', namespace: 'foo' }, spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/meshlet.test.Echo/Bidi'] } }] }] } },
      ],
    });
    const upClient = mesh.grpc.client(EchoClient, 'up.default.svc.cluster.local:9090') as unknown as Echo;
    server = await startMeshGrpcServer(mesh, 'mesh', {
      // The handler calls the upstream through the mesh and answers with its reply.
      Unary: (call, cb) => upClient.Unary({ text: call.request.text }, new grpc.Metadata(), {}, (err, res) => cb(err, res)),
      // The handler calls a server that never answers, through the mesh.
      ServerStream: () => {
        mesh.fetch('http://hang.default.svc.cluster.local:8080/').then(
          (r) => (httpOutcome = { status: r.status, flags: r.headers.get('x-meshlet-response-flags') }),
          () => (httpOutcome = { status: -1, flags: null }),
        );
      },
    });
    client = plainClient(server.port) as Echo;
  });
  after(async () => {
    client.close();
    await server.close();
    await mesh.close();
    await up.close();
    hang.closeAllConnections();
    hang.close();
    await metrics.shutdown();
    trace.disable();
    context.disable();
    propagation.disable();
  });

  it('a SERVER span continues the caller’s trace; the handler’s outbound call is its child and carries the trace and the caller’s deadline', async () => {
    exporter.reset();
    const deadline = Date.now() + 5000;
    const r = await unary(client, { text: 't' }, { deadline, metadata: md({ traceparent: `00-${TRACE_ID}-${CLIENT_SPAN}-01` }) });
    assert.equal(r.reply?.text, 'up:t', r.error?.details);
    const all = await spans(3);
    const srv = all.find((s) => s.kind === SpanKind.SERVER);
    // The call's span (its attempts are spans of their own, `router <cluster> egress`, below it).
    const cli = all.find((s) => s.kind === SpanKind.CLIENT && s.name === 'up.default.svc.cluster.local:9090/*');
    const attempt = all.find((s) => s.kind === SpanKind.CLIENT && s.name.startsWith('router '));
    assert.ok(srv !== undefined && cli !== undefined, all.map((s) => `${s.kind} ${s.name}`).join(', '));
    assert.equal(srv.spanContext().traceId, TRACE_ID);
    assert.equal(srv.parentSpanContext?.spanId, CLIENT_SPAN);
    assert.equal(srv.name, `echo.foo.svc.cluster.local:${server.port}/*`);
    assert.equal(srv.attributes['grpc.status_code'], '0');
    assert.equal(srv.attributes['http.method'], 'POST');
    assert.match(String(srv.attributes['http.url']), /\/meshlet\.test\.Echo\/Unary$/);
    // Envoy's gRPC request tags (HttpTracerUtility::addGrpcRequestTags), on both spans of a sidecar.
    for (const [s, authority] of [
      [srv, `127.0.0.1:${server.port}`],
      [cli, 'up.default.svc.cluster.local:9090'],
    ] as const) {
      assert.deepEqual([s.attributes['grpc.path'], s.attributes['grpc.authority'], s.attributes['grpc.content_type']], ['/meshlet.test.Echo/Unary', authority, 'application/grpc'], s.name);
    }
    // The caller's deadline, as it arrived (the handler's own call carries it on as its deadline, not a header the app wrote).
    assert.match(String(srv.attributes['grpc.timeout']), /^\d+[HMSmun]$/);
    assert.equal(cli.parentSpanContext?.spanId, srv.spanContext().spanId);
    const seen = upstream.at(-1);
    assert.equal(attempt?.parentSpanContext?.spanId, cli.spanContext().spanId);
    // The attempt's own context is what the upstream received (Envoy's upstream span injects it).
    assert.match(String(seen?.traceparent), new RegExp(`^00-${TRACE_ID}-${attempt?.spanContext().spanId}-01$`));
    // grpc-timeout is relative: each hop's receiver counts it from when the call arrived, so the
    // upstream's deadline is the caller's plus the transit times (not Infinity: it was passed on).
    assert.ok(seen !== undefined && Number.isFinite(seen.deadline) && Math.abs(seen.deadline - deadline) < 1000, `upstream deadline ${seen?.deadline} vs the caller's ${deadline}`);
  });

  it('istio_requests_total{reporter="destination"}: request_protocol grpc, grpc_response_status of the answer and of a denial', async () => {
    await unary(client, { text: 'm' });
    const bidi = client.Bidi();
    const done = collect(bidi);
    bidi.end();
    assert.equal((await done).status.code, grpc.status.PERMISSION_DENIED);
    const dest = (await metrics.points('istio_requests_total')).filter((p) => p.attributes['reporter'] === 'destination');
    const ok = dest.find((p) => p.attributes['grpc_response_status'] === '0');
    const denied = dest.find((p) => p.attributes['grpc_response_status'] === '7');
    assert.equal(ok?.attributes['request_protocol'], 'grpc');
    assert.equal(ok?.attributes['response_code'], '200');
    assert.equal(ok?.attributes['destination_workload'], 'echo');
    assert.ok((ok?.value ?? 0) >= 2);
    assert.equal(denied?.attributes['request_protocol'], 'grpc');
    assert.equal(denied?.value, 1);
  });

  it('access log lines for the answered and the denied call', async () => {
    await until(() => log.lines().some((l) => l.includes('/meshlet.test.Echo/Bidi')), 'the Bidi line');
    const unaryLine = log.lines().find((l) => l.includes('"POST /meshlet.test.Echo/Unary HTTP/2"'));
    assert.ok(unaryLine !== undefined, log.lines().join('\n'));
    assert.match(unaryLine, /" 200 - via_upstream /);
    const bidiLine = log.lines().find((l) => l.includes('/meshlet.test.Echo/Bidi')) ?? '';
    assert.match(bidiLine, /rbac_access_denied_matched_policy\[ns\[foo\]-policy\[deny-bidi\]-rule\[0\]\]/);
  });

  it('a handler’s outbound HTTP call is cut at the caller’s deadline (504, UT); the call grpc-js ends at its deadline is counted DEADLINE_EXCEEDED', async () => {
    // A raw HTTP/2 caller that sends grpc-timeout but never cancels on its own, so the server's deadline is what ends the call.
    const session = connectH2(`http://127.0.0.1:${server.port}`);
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/meshlet.test.Echo/ServerStream', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '150m' });
      // EchoRequest { text: "h", count: 1 }.
      stream.end(Buffer.from([0, 0, 0, 0, 5, 0x0a, 0x01, 0x68, 0x10, 0x01]));
      const status = await new Promise<string>((resolve) => {
        stream.on('trailers', (t) => resolve(String(t['grpc-status'])));
        stream.on('response', (h) => h['grpc-status'] !== undefined && resolve(String(h['grpc-status'])));
        stream.resume();
      });
      assert.equal(status, String(grpc.status.DEADLINE_EXCEEDED));
    } finally {
      session.close();
    }
    await until(() => httpOutcome !== undefined, 'the outbound HTTP call to end');
    assert.deepEqual(httpOutcome, { status: 504, flags: 'UT' });
    await until(() => log.lines().some((l) => l.includes('/meshlet.test.Echo/ServerStream')), 'the ServerStream line');
    const dest = (await metrics.points('istio_requests_total')).filter((p) => p.attributes['reporter'] === 'destination' && p.attributes['grpc_response_status'] === '4');
    assert.equal(dest.length, 1);
  });

  it('a caller that cancels before any status: response_flags DC, no grpc_response_status', async () => {
    const call = client.ServerStream({ text: 'c', count: 1 });
    const done = collect(call);
    while (!server.seen.some((c) => c.method === 'ServerStream' && c.context.deadline === Number.POSITIVE_INFINITY)) await new Promise((r) => setTimeout(r, 2));
    call.cancel();
    assert.equal((await done).status.code, grpc.status.CANCELLED);
    await until(() => log.lines().filter((l) => l.includes('/meshlet.test.Echo/ServerStream')).length === 2, 'the second ServerStream line');
    const dc = (await metrics.points('istio_requests_total')).find((p) => p.attributes['reporter'] === 'destination' && p.attributes['response_flags'] === 'DC');
    assert.equal(dc?.attributes['grpc_response_status'], '');
    assert.equal(dc?.attributes['response_code'], '0');
  });
});

describe('gRPC client: grpc_response_status of a call that failed after its response metadata', () => {
  let up: GrpcUpstream;
  let mesh: Mesh;
  let client: Echo;
  const ends: CallEndMessage[] = [];
  // The route timeout runs on this clock: it passes when the test says, after the first message.
  const clock = new ManualClock();
  const onEnd = (m: unknown) => ends.push(m as CallEndMessage);
  before(async () => {
    subscribe('meshlet:call:end', onEnd);
    // Metadata and one message, then nothing.
    up = await startGrpcUpstream('slow', {
      ServerStream: (call) => {
        call.sendMetadata(new grpc.Metadata());
        call.write({ text: 'first', server: 'slow', seen: [] });
      },
    });
    mesh = await createMesh({
      service: 'client',
      config: [
        grpcServiceEntry('echo', 'echo.default.svc.cluster.local', 9090, [{ port: up.port }]),
        { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'echo', namespace: 'default' }, spec: { hosts: ['echo'], http: [{ route: [{ destination: { host: 'echo' } }], timeout: '10s' }] } },
      ],
      clock,
    });
    client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
  });
  after(async () => {
    unsubscribe('meshlet:call:end', onEnd);
    client.close();
    await mesh.close();
    await up.close();
  });

  it('request and response sizes count each message as on the wire: the message and its 5-byte gRPC prefix', async () => {
    const svc = EchoClient.service as unknown as Record<'Unary' | 'ClientStream', { requestSerialize(m: object): Buffer; responseSerialize(m: unknown): Buffer }>;
    const req = { text: 'abcdefgh' };
    const r = await unary(client, req);
    assert.equal(r.reply?.server, 'slow');
    const end = ends.findLast((e) => e.workload === mesh.identity && e.path === '/meshlet.test.Echo/Unary');
    assert.equal(end?.requestBytes, svc.Unary.requestSerialize(req).length + 5);
    assert.equal(end?.responseBytes, svc.Unary.responseSerialize(r.reply).length + 5);
    // A client stream of three messages, one of them empty: three prefixes.
    const msgs = [{ text: 'a' }, {}, { text: 'ccc' }];
    await new Promise<void>((resolve, reject) => {
      const w = client.ClientStream(new grpc.Metadata(), {}, (e) => (e === null ? resolve() : reject(e)));
      for (const m of msgs) w.write(m);
      w.end();
    });
    const cs = ends.findLast((e) => e.workload === mesh.identity && e.path === '/meshlet.test.Echo/ClientStream');
    assert.equal(cs?.requestBytes, msgs.reduce((n, m) => n + svc.ClientStream.requestSerialize(m).length + 5, 0));
  });

  it('a route timeout after the first message: the caller gets DEADLINE_EXCEEDED and call:end says 4 (not -1)', async () => {
    const call = client.ServerStream({ text: 'x', count: 1 });
    const done = collect(call);
    await new Promise((r) => call.once('data', r));
    clock.advance(10_000);
    const r = await done;
    assert.deepEqual(r.messages.map((m) => m.text), ['first']);
    assert.equal(r.status.code, grpc.status.DEADLINE_EXCEEDED);
    const end = ends.find((e) => e.workload === mesh.identity && e.path === '/meshlet.test.Echo/ServerStream');
    assert.equal(end?.grpcStatus, grpc.status.DEADLINE_EXCEEDED);
    assert.equal(end?.status, 200);
  });

  it('the caller cancels after the first message: call:end says CANCELLED', async () => {
    const call = client.ServerStream({ text: 'x', count: 1 });
    const done = collect(call);
    await new Promise((r) => call.once('data', r));
    call.cancel();
    assert.equal((await done).status.code, grpc.status.CANCELLED);
    const end = ends.filter((e) => e.workload === mesh.identity).at(-1);
    assert.equal(end?.grpcStatus, grpc.status.CANCELLED);
  });
});
