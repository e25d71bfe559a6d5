/**
 * A collector that refuses every export (here: 400, which the OTLP exporters do not retry) must
 * not fail the app's code that awaits telemetry: `telemetry.flush()` (a Lambda handler's, at every
 * invocation) and `telemetry.shutdown()` (the docs' SIGTERM handler, `await mesh.close(); await
 * telemetry.shutdown();`) resolve, and say once what was lost; repeated failing flushes are not
 * warned about one by one.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { trace } from '@opentelemetry/api';
import { createMesh } from '../../src/index.ts';
import { startTelemetry } from '../../src/telemetry/sdk/index.ts';

test('flush() and shutdown() resolve when the collector refuses the exports, with one warning each', async () => {
  let requests = 0;
  const collector = createServer((req, res) => {
    requests++;
    req.resume();
    req.on('end', () => res.writeHead(400, { 'content-type': 'text/plain' }).end('no'));
  });
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (m: unknown) => warnings.push(String(m));
  try {
    const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
    const telemetry = await startTelemetry({ serviceName: 'web', prometheus: false, otlp: { endpoint, protocol: 'http/json' } });
    const mesh = await createMesh({ service: 'web', config: [], logger: { warn: () => undefined } });
    trace.getTracer('t').startSpan('one').end();
    await telemetry.flush();
    trace.getTracer('t').startSpan('two').end();
    await telemetry.flush();
    assert.ok(requests >= 2, `the exports reached the collector (${requests})`);
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0] as string, /^meshlet: telemetry\.flush\(\): an export failed: .+; what it carried is lost$/);
    await mesh.close();
    trace.getTracer('t').startSpan('three').end();
    await telemetry.shutdown();
    assert.equal(warnings.length, 2, warnings.join('\n'));
    assert.match(warnings[1] as string, /^meshlet: telemetry\.shutdown\(\): an export failed: .+; what it carried is lost( \(\d+ more failed since the last warning\))?$/);
  } finally {
    console.warn = warn;
    await new Promise((resolve) => collector.close(resolve));
  }
});
