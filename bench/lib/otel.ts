/**
 * The "telemetry on" set-up of the benchmarks, as an app without its own SDK would run meshlet:
 * `startTelemetry()` from `meshlet/telemetry` — the OpenTelemetry Node SDK with the Prometheus
 * scrape endpoint (metrics recorded on every request) and OTLP span export (its default protocol,
 * http/protobuf) to a local sink that accepts and drops what it gets (so exporting costs what it
 * costs, without a collector).
 * Tracing is sampled at Istio's default, 1 % (meshlet's default: the benchmarks' requests carry
 * no trace context, so the mesh draws).
 *
 * Warm-up exports: the first OTLP exports of a process run Node's socket, stream and timer code
 * (node:http's POST to the sink, the exporter's timeouts) with objects of other shapes than the
 * requests' own, so V8 throws away its optimised code for those hot functions and compiles it
 * again, three or four times before it settles (≈ 0.2–0.3 s of CPU once per process; seen with
 * `--trace-deopt --trace-opt`). At 1 % the batch processor's first export comes 5 s or 512 spans
 * after the first sampled call — inside the measured window, after the benchmarks' 4 s warm-up —
 * so most of the one-off cost was reported as a per-request cost of sampling. So the spans
 * recorded so far are exported every {@link WARMUP_EXPORT_EVERY_MS} ms from the start until the
 * sink has received {@link WARMUP_EXPORTS} exports (or {@link WARMUP_EXPORT_LIMIT_MS} ms after the
 * first); after that the batch processor exports on its own schedule (5 s / 512 spans) as it
 * would for a user. This takes most of the re-optimisation out of the measured window, not all:
 * the first two full (512-span) exports still deoptimise a few timer functions (≈ 0.1 s of
 * compiling, against ≈ 0.2–0.3 s without the warm-up exports). Only a warm-up past three or four
 * full exports (≈ 130 000 requests at 1 %) measures the steady state exactly.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ProxyTracerProvider, trace } from '@opentelemetry/api';

/** How often spans are exported while the process warms up. */
export const WARMUP_EXPORT_EVERY_MS = 250;
/** How many exports (that carried spans) the warm-up makes before leaving it to the batch processor. */
export const WARMUP_EXPORTS = 8;
/**
 * The warm-up exports stop this long after the first one even if fewer were made. (With nothing
 * sampled there is no export and nothing to settle: the timer keeps asking an empty batch
 * processor, four promises a second.)
 */
export const WARMUP_EXPORT_LIMIT_MS = 10_000;

export interface BenchTelemetry {
  shutdown(): Promise<void>;
}

export async function startBenchTelemetry(moduleUrl = new URL('../../src/telemetry/sdk/index.ts', import.meta.url).href): Promise<BenchTelemetry> {
  let exports = 0;
  const sink: Server = createServer((req, res) => {
    exports++;
    req.resume();
    req.on('end', () => {
      // An empty success in the request's encoding (http/protobuf by default: the empty message is no bytes).
      const json = req.headers['content-type'] === 'application/json';
      res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' });
      res.end(json ? '{}' : '');
    });
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
  const { startTelemetry } = (await import(moduleUrl)) as typeof import('../../src/telemetry/sdk/index.ts');
  const t = await startTelemetry({
    serviceName: 'bench',
    prometheus: { port: 0, host: '127.0.0.1' },
    otlp: { endpoint: `http://127.0.0.1:${(sink.address() as AddressInfo).port}`, metrics: false, traces: true },
  });
  // The SDK's provider behind the API's proxy (sdk-trace's TracerProvider has forceFlush()).
  const provider = (trace.getTracerProvider() as ProxyTracerProvider).getDelegate() as { forceFlush?: () => Promise<void> };
  let flushing = false;
  // From the first export: bench/inbound starts every server, then warms them up one after the other.
  let warmUntil = Number.POSITIVE_INFINITY;
  const warm = setInterval(() => {
    if (exports > 0 && warmUntil === Number.POSITIVE_INFINITY) warmUntil = performance.now() + WARMUP_EXPORT_LIMIT_MS;
    if (exports >= WARMUP_EXPORTS || performance.now() > warmUntil || provider.forceFlush === undefined) {
      clearInterval(warm);
      return;
    }
    if (flushing) return;
    flushing = true;
    provider.forceFlush().then(
      () => (flushing = false),
      () => (flushing = false),
    );
  }, WARMUP_EXPORT_EVERY_MS);
  warm.unref();
  return {
    async shutdown() {
      clearInterval(warm);
      await t.shutdown();
      await new Promise<void>((r) => sink.close(() => r()));
    },
  };
}
