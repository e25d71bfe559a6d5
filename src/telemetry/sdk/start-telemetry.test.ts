import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { metrics, trace } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { TracerProvider } from '@opentelemetry/sdk-trace';
import { InvalidArgumentError } from '../../core/errors.ts';
import { startTelemetry } from './start-telemetry.ts';

describe('startTelemetry()', () => {
  const bad: [string, Parameters<typeof startTelemetry>[0], RegExp][] = [
    ['a port out of range', { prometheus: { port: 70000 } }, /prometheus\.port must be a port number.*70000/],
    ['a fractional port', { prometheus: { port: 1.5 } }, /prometheus\.port/],
    ['a bad export interval', { otlp: { exportIntervalMs: 0 } }, /otlp\.exportIntervalMs must be a positive number/],
    // 0 dropped every counter that did not move since the last scrape; less than 0, every series at every scrape.
    ['an idle time of 0', { otlp: false, prometheus: { port: 0, host: '127.0.0.1', idleSeriesMs: 0 } }, /prometheus\.idleSeriesMs must be a number of milliseconds of at least 1, got 0$/],
    ['a negative idle time', { otlp: false, prometheus: { port: 0, host: '127.0.0.1', idleSeriesMs: -1 } }, /prometheus\.idleSeriesMs must be .*, got -1$/],
    ['an idle time as text', { otlp: false, prometheus: { port: 0, host: '127.0.0.1', idleSeriesMs: '10m' as never } }, /prometheus\.idleSeriesMs must be .*, got "10m"$/],
    ['an idle time NaN', { otlp: false, prometheus: { port: 0, host: '127.0.0.1', idleSeriesMs: Number.NaN } }, /prometheus\.idleSeriesMs must be .*, got NaN$/],
    ['a bad temporality', { otlp: { temporality: 'sideways' as 'delta' } }, /otlp\.temporality must be 'cumulative' or 'delta', got "sideways"/],
    ['a misspelt option', { serviceNam: 'x' } as never, /^startTelemetry: unknown option "serviceNam" \(did you mean "serviceName"\?\)$/],
    ['a misspelt otlp option', { otlp: { endpont: 'http://c:4318' } } as never, /^startTelemetry: unknown option "otlp\.endpont" \(did you mean "otlp\.endpoint"\?\)$/],
    ['a misspelt prometheus option', { prometheus: { prot: 1 } } as never, /^startTelemetry: unknown option "prometheus\.prot" \(did you mean "prometheus\.port"\?\)$/],
  ];
  for (const [name, options, message] of bad) {
    it(`refuses ${name}, naming the option`, async () => {
      // The error every meshlet API throws for a bad argument: a MeshletError with its code.
      // Started after all (a check missing): stopped again, so the test fails rather than hangs.
      const started = startTelemetry(options).then(async (t) => {
        await t.shutdown();
        return t;
      });
      await assert.rejects(started, (e: unknown) => e instanceof InvalidArgumentError && e.code === 'MESHLET_ERR_INVALID_ARG' && message.test(e.message));
    });
  }

  it('starts the SDK with a Prometheus endpoint, records through the global API, and shuts down', async () => {
    const t = await startTelemetry({ serviceName: 'reviews', prometheus: { port: 0, host: '127.0.0.1' }, otlp: false });
    try {
      assert.match(t.prometheusUrl ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
      metrics.getMeter('meshlet').createCounter('istio_requests_total').add(2, { reporter: 'source' });
      const text = await (await fetch(`${t.prometheusUrl}/stats/prometheus`)).text();
      assert.match(text, /^istio_requests_total\{reporter="source"\} 2$/m);
      assert.match(text, /^target_info\{.*service_name="reviews"/m);
    } finally {
      await t.shutdown();
    }
    await assert.rejects(fetch(`${t.prometheusUrl}/metrics`), 'the endpoint is closed');
  });

  it("tracers require('@opentelemetry/api') gave out before it started record spans (auto-instrumentations registered with --require)", async () => {
    // The API's CommonJS build is another copy than this ES module's import, with its own
    // ProxyTracerProvider; the SDK is started through the ES build.
    const cjs = createRequire(import.meta.url)('@opentelemetry/api') as typeof import('@opentelemetry/api');
    assert.notEqual(cjs.trace, trace, 'two copies of the API');
    const early = cjs.trace.getTracer('@opentelemetry/instrumentation-http');
    assert.equal(early.startSpan('before').isRecording(), false);
    const t = await startTelemetry({ prometheus: false, otlp: { endpoint: 'http://127.0.0.1:1', metrics: false } });
    try {
      // Not ended: nothing is exported.
      assert.equal(early.startSpan('GET').isRecording(), true);
      assert.equal(trace.getTracer('meshlet').startSpan('GET').isRecording(), true);
    } finally {
      await t.shutdown();
    }
    // Taken back: a tracer the CommonJS build gives out now does not record into the shut-down SDK.
    assert.equal(cjs.trace.getTracer('after-shutdown').startSpan('GET').isRecording(), false);
  });

  it("the SDK's own PrometheusExporter writes the same names (for applications with their own SDK)", async () => {
    const exporter = new PrometheusExporter({ preventServerStart: true });
    const provider = new MeterProvider({ readers: [exporter] });
    const meter = provider.getMeter('meshlet');
    meter.createCounter('istio_requests_total').add(1, { reporter: 'destination' });
    meter.createHistogram('istio_request_duration_milliseconds', { unit: 'ms', advice: { explicitBucketBoundaries: [0.5, 1] } }).record(0.7, { reporter: 'destination' });
    const text = await new Promise<string>((resolve) => {
      const res = { statusCode: 200, setHeader: () => undefined, end: (b: string) => resolve(b) } as unknown as ServerResponse;
      exporter.getMetricsRequestHandler({} as IncomingMessage, res);
    });
    await provider.shutdown();
    assert.match(text, /^istio_requests_total\{[^}]*reporter="destination"[^}]*\} 1$/m);
    assert.match(text, /^istio_request_duration_milliseconds_bucket\{[^}]*le="1"\} 1$/m);
    assert.match(text, /^istio_request_duration_milliseconds_count\{[^}]*\} 1$/m);
    assert.doesNotMatch(text, /_total_total|milliseconds_milliseconds/);
  });

  it("shutdown() takes back only what it registered: providers the app registered before it stay", async () => {
    const meters = new MeterProvider();
    const tracers = new TracerProvider();
    metrics.setGlobalMeterProvider(meters);
    trace.setGlobalTracerProvider(tracers);
    try {
      const t = await startTelemetry({ prometheus: false, otlp: false });
      await t.shutdown();
      assert.equal(metrics.getMeterProvider(), meters);
      assert.equal((trace.getTracerProvider() as unknown as { getDelegate(): unknown }).getDelegate(), tracers);
    } finally {
      metrics.disable();
      trace.disable();
      await meters.shutdown();
      await tracers.shutdown();
    }
  });
});
