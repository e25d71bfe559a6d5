/**
 * The set-up of the tracing-policy tests: the app's own SDK (sdk-trace's in-memory exporter and
 * the AsyncLocalStorage context manager, installed by {@link useTracingSdk}), a plain sink server
 * recording the headers it got, and a mesh whose server handler calls the sink through `mesh.fetch`.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { after, before } from 'node:test';
import { context, propagation, SpanKind, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { request } from 'undici';
import type { Random } from '../../src/core/clock.ts';
import { createMesh, type Mesh, type MeshOptions } from '../../src/index.ts';
import { listen } from './frameworks.ts';
import { serviceEntry } from './upstreams.ts';

export const exporter = new InMemorySpanExporter();
export const T = '4bf92f3577b34da6a3ce929d0e0e4736';
export const S = '00f067aa0ba902b7';

/** A Random that always draws `v` (the sampling draw is then known whatever else draws). */
export const always = (v: number): Random => ({ next: () => v });

export interface Setup {
  mesh: Mesh;
  port: number;
  sink: IncomingMessage['headers'][];
  close(): Promise<void>;
}

let sinkPort: number;
/** The ServiceEntry of the sink (sink.default.svc.cluster.local:80 → the sink's port). */
export const sinkService = () => serviceEntry('sink', 'sink.default.svc.cluster.local', 80, [{ port: sinkPort }]);
export const sinkSeen: IncomingMessage['headers'][] = [];
const sink = createServer((req, res) => {
  sinkSeen.push(req.headers);
  res.end('sink');
});

export async function setup(o: Partial<MeshOptions> & { telemetryResources?: object[] } = {}): Promise<Setup> {
  const { telemetryResources, ...rest } = o;
  const mesh = await createMesh({
    service: 'app',
    namespace: 'default',
    labels: { app: 'app', version: 'v3' },
    logger: { warn: () => {} },
    ...rest,
    config: [sinkService(), ...(telemetryResources ?? [])],
  });
  const server = mesh.createServer(async (_req, res) => {
    const r = await mesh.fetch('http://sink.default.svc.cluster.local/down', { headers: { 'x-team': 'from-call' } });
    res.end(await r.text());
  });
  const port = await listen(server);
  return {
    mesh,
    port,
    sink: sinkSeen,
    close: async () => {
      await new Promise<void>((r) => server.close(() => r()));
      await mesh.close();
    },
  };
}

export async function get(port: number, headers: Record<string, string> = {}): Promise<void> {
  sinkSeen.length = 0;
  exporter.reset();
  const r = await request(`http://127.0.0.1:${port}/up`, { headers });
  assert.equal(r.statusCode, 200);
  assert.equal(await r.body.text(), 'sink');
}

/** The finished spans, once the server span (ended when its response closed) is among them or `ms` passed. */
export async function finished(n: number): Promise<ReadableSpan[]> {
  for (let i = 0; i < 100 && exporter.getFinishedSpans().length < n; i++) await new Promise((r) => setTimeout(r, 5));
  return exporter.getFinishedSpans();
}

export const server = (spans: ReadableSpan[]) => spans.find((s) => s.kind === SpanKind.SERVER);
export const client = (spans: ReadableSpan[]) => spans.find((s) => s.kind === SpanKind.CLIENT && !s.name.startsWith('router '));
/** The call's (first) attempt span, `router <cluster> egress`: its context is what the request carries (as Envoy's upstream span's). */
export const attempt = (spans: ReadableSpan[]) => spans.find((s) => s.kind === SpanKind.CLIENT && s.name.startsWith('router '));

/** Installs the SDK and starts the sink for the test file (and takes both down after it). */
export function useTracingSdk(): void {
  before(async () => {
    trace.setGlobalTracerProvider(new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }));
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    sinkPort = await listen(sink);
  });
  after(async () => {
    await new Promise<void>((r) => sink.close(() => r()));
    trace.disable();
    context.disable();
    propagation.disable();
  });
}
