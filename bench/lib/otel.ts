/**
 * The "telemetry on" set-up of the benchmarks, as an app without its own SDK would run meshlet:
 * `startTelemetry()` from `meshlet/telemetry` — the OpenTelemetry Node SDK with the Prometheus
 * scrape endpoint (metrics recorded on every request) and OTLP/HTTP span export to a local sink
 * that accepts and drops what it gets (so exporting costs what it costs, without a collector).
 * Tracing is sampled at Istio's default, 1 % (meshlet's default: the benchmarks' requests carry
 * no trace context, so the mesh draws).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface BenchTelemetry {
  shutdown(): Promise<void>;
}

export async function startBenchTelemetry(moduleUrl = new URL('../../src/telemetry/sdk/index.ts', import.meta.url).href): Promise<BenchTelemetry> {
  const sink: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
  const { startTelemetry } = (await import(moduleUrl)) as typeof import('../../src/telemetry/sdk/index.ts');
  const t = await startTelemetry({
    serviceName: 'bench',
    prometheus: { port: 0, host: '127.0.0.1' },
    otlp: { endpoint: `http://127.0.0.1:${(sink.address() as AddressInfo).port}`, metrics: false, traces: true },
  });
  return {
    async shutdown() {
      await t.shutdown();
      await new Promise<void>((r) => sink.close(() => r()));
    },
  };
}
