/**
 * Without an OpenTelemetry SDK (the API's no-op provider), tracing costs nothing: the mesh does
 * not subscribe to the observation channels (so nothing is even published), and requests and
 * calls carry no trace headers (an `x-request-id` still, as Envoy's connection manager generates
 * it whether or not tracing is on). Once the app registers an SDK, the
 * mesh starts tracing (checked at each config, and once a second).
 *
 * Its own file: the global tracer provider is per process.
 */
import assert from 'node:assert/strict';
import { hasSubscribers } from 'node:diagnostics_channel';
import { createServer, type IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { createMesh, type Mesh } from '../../src/index.ts';
import { listen } from '../helpers/frameworks.ts';
import { serviceEntry } from '../helpers/upstreams.ts';

const CHANNELS = ['meshlet:inbound:start', 'meshlet:inbound:end', 'meshlet:call:start', 'meshlet:call:end', 'meshlet:attempt:start', 'meshlet:attempt:end'];

describe('tracing without an SDK', () => {
  let mesh: Mesh;
  let sinkPort: number;
  const seen: IncomingMessage['headers'][] = [];
  const sink = createServer((req, res) => {
    seen.push(req.headers);
    res.end('ok');
  });
  before(async () => {
    sinkPort = await listen(sink);
    mesh = await createMesh({ service: 'app', config: [serviceEntry('sink', 'sink.default.svc.cluster.local', 80, [{ port: sinkPort }])], telemetry: { tracing: { samplingPercentage: 100 } }, logger: { warn: () => {} } });
  });
  after(async () => {
    await mesh.close();
    await new Promise<void>((r) => sink.close(() => r()));
    trace.disable();
    context.disable();
    propagation.disable();
  });

  it('subscribes to nothing: no channel has a subscriber, calls go out untouched', async () => {
    // attempt:start alone carries the Istio metrics' peer metadata exchange, which a sidecar
    // always sends (the destination's metrics name their source from it); tracing adds nothing.
    for (const name of CHANNELS) assert.equal(hasSubscribers(name), name === 'meshlet:attempt:start', name);
    const r = await mesh.fetch('http://sink.default.svc.cluster.local/x');
    assert.equal(await r.text(), 'ok');
    const h = seen.at(-1) ?? {};
    assert.deepEqual([h.traceparent, h['x-b3-traceid']], [undefined, undefined]);
    // x-request-id is not tracing's: Envoy's connection manager generates it either way (request-id.test.ts).
    assert.match(String(h['x-request-id']), /^[0-9a-f-]{36}$/);
  });

  it('starts once the app registers an SDK (at the next config, or within a second)', async () => {
    const exporter = new InMemorySpanExporter();
    trace.setGlobalTracerProvider(new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }));
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    // The mesh's check runs on a timer: wait for it (bounded), then call.
    for (let i = 0; i < 300 && !hasSubscribers('meshlet:call:start'); i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(hasSubscribers('meshlet:call:start'), true);
    const r = await mesh.fetch('http://sink.default.svc.cluster.local/y');
    assert.equal(await r.text(), 'ok');
    assert.match(String(seen.at(-1)?.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.equal(exporter.getFinishedSpans().length, 2, 'the call and its attempt');
  });

  it("follows the app's SDK when it is replaced (startTelemetry()'s shutdown, then another): spans go to the one registered now", async () => {
    trace.disable();
    const next = new InMemorySpanExporter();
    trace.setGlobalTracerProvider(new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: next })] }));
    const r = await eventually(async () => {
      const res = await mesh.fetch('http://sink.default.svc.cluster.local/z');
      await res.text();
      return next.getFinishedSpans().length > 0;
    });
    assert.ok(r, 'spans reached the newly registered provider');
    assert.equal(next.getFinishedSpans().length, 2, 'the call and its attempt');
  });

  it('lets go of the channels once no SDK is registered', async () => {
    trace.disable();
    await eventually(async () => !hasSubscribers('meshlet:call:start'));
    for (const name of CHANNELS) assert.equal(hasSubscribers(name), name === 'meshlet:attempt:start', name);
    const r = await mesh.fetch('http://sink.default.svc.cluster.local/w');
    assert.equal(await r.text(), 'ok');
    assert.equal(seen.at(-1)?.traceparent, undefined);
  });
});

/** Polls `check` (up to ~3 s: the mesh looks at the global SDK once a second) until it says true; what it last said. */
async function eventually(check: () => Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 60; i++) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}
