/**
 * The OTel access log exporter on a ManualClock with a fake gRPC client: Envoy's batching
 * (grpc_access_logger.h: the flush timer, a batch reaching buffer_size_bytes sent at once,
 * canLogMore dropping when the batch stays full), meshlet's bound on exports in flight, failed
 * exports dropped, and close.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ManualClock } from '../../core/clock.ts';
import type { UnaryRequester } from '../../core/unary-call.ts';
import { otlpCodec } from '../../../test/helpers/otel-collector.ts';
import { DEFAULT_BUFFER_BYTES, EXPORT_TIMEOUT_MS, MAX_EXPORTS_IN_FLIGHT, OtelLogExporter } from './otel-exporter.ts';
import { encodeLogRecord } from './otlp-wire.ts';

const codec = otlpCodec();

/** A client whose calls wait until answered by the test. */
function fakeClient() {
  const calls: { method: string; bodies: string[]; answer(err?: Error): void; cancelled: boolean }[] = [];
  const client: UnaryRequester = {
    makeUnaryRequest(method, _s, _d, argument, _o, callback) {
      const req = codec.requestDeserialize(argument);
      const c = {
        method,
        bodies: req.resource_logs.flatMap((rl) => rl.scope_logs.flatMap((s) => s.log_records.map((r) => r.body?.string_value ?? ''))),
        answer: (err?: Error) => (err === undefined ? callback(null, Buffer.alloc(0)) : callback(err)),
        cancelled: false,
      };
      calls.push(c);
      return {
        cancel: () => {
          c.cancelled = true;
          callback(new Error('cancelled'));
        },
      };
    },
  };
  return { calls, client };
}

const rec = (body: string) => encodeLogRecord({ startTimeMs: 0, body, attributes: [] });
const tick = () => new Promise((r) => setImmediate(r));

function setup() {
  const clock = new ManualClock(0);
  const { calls, client } = fakeClient();
  const warnings: string[] = [];
  const dropped: [number, string][] = [];
  const ex = new OtelLogExporter({ provider: 'otel', target: 'c:4317', clock, client: () => client, warn: (m) => warnings.push(m), onDropped: (n, r) => dropped.push([n, r]) });
  return { clock, calls, warnings, dropped, ex };
}

describe('OtelLogExporter', () => {
  test('a batch goes out on the 1 s flush interval, as one Export call', async () => {
    const { clock, calls, ex } = setup();
    ex.log(rec('a'));
    clock.advance(500);
    ex.log(rec('b'));
    clock.advance(499);
    assert.equal(calls.length, 0);
    clock.advance(1);
    assert.deepEqual(
      calls.map((c) => [c.method, c.bodies]),
      [['/opentelemetry.proto.collector.logs.v1.LogsService/Export', ['a', 'b']]],
    );
    calls[0]?.answer();
    await tick();
    assert.deepEqual(ex.stats, { written: 2, dropped: 0, exported: 2 });
    // Nothing batched: no timer runs.
    assert.equal(clock.pending, 0);
  });

  test('a batch reaching 16 KiB is sent at once', () => {
    const { calls, ex } = setup();
    const big = 'x'.repeat(4000);
    for (let i = 0; i < 4; i++) ex.log(rec(big));
    assert.equal(calls.length, 0, '4 × ~4 KB: under 16384 bytes');
    ex.log(rec(big));
    assert.equal(calls.length, 1);
    assert.equal(calls[0]?.bodies.length, 5);
    assert.ok(DEFAULT_BUFFER_BYTES === 16384);
  });

  test('exports in flight at the bound: the batch fills up, then records are dropped (buffer-full), never blocking', async () => {
    const { calls, dropped, ex } = setup();
    const big = 'x'.repeat(DEFAULT_BUFFER_BYTES);
    for (let i = 0; i < MAX_EXPORTS_IN_FLIGHT; i++) ex.log(rec(big));
    assert.equal(calls.length, MAX_EXPORTS_IN_FLIGHT);
    assert.equal(ex.inFlight, MAX_EXPORTS_IN_FLIGHT);
    ex.log(rec(big)); // fills the batch; cannot be sent
    ex.log(rec('dropped'));
    ex.log(rec('dropped too'));
    assert.equal(calls.length, MAX_EXPORTS_IN_FLIGHT);
    assert.deepEqual(dropped, [
      [1, 'buffer-full'],
      [1, 'buffer-full'],
    ]);
    assert.deepEqual(ex.stats, { written: MAX_EXPORTS_IN_FLIGHT + 1, dropped: 2, exported: 0 });
    // A call ends: the full batch goes out then, not at the next interval.
    calls[0]?.answer();
    await tick();
    assert.equal(calls.length, MAX_EXPORTS_IN_FLIGHT + 1);
    assert.equal(calls[MAX_EXPORTS_IN_FLIGHT]?.bodies.length, 1);
  });

  test('a failed export drops its records (export-failed) and warns once until exports succeed again', async () => {
    const { clock, calls, warnings, dropped, ex } = setup();
    ex.log(rec('a'));
    clock.advance(1000);
    calls[0]?.answer(new Error('14 UNAVAILABLE: down'));
    await tick();
    ex.log(rec('b'));
    clock.advance(1000);
    calls[1]?.answer(new Error('14 UNAVAILABLE: down'));
    await tick();
    assert.deepEqual(dropped, [
      [1, 'export-failed'],
      [1, 'export-failed'],
    ]);
    assert.equal(warnings.length, 1);
    ex.log(rec('c'));
    clock.advance(1000);
    calls[2]?.answer();
    await tick();
    assert.equal(warnings.length, 2);
    assert.match(warnings[1] as string, /succeed again \(2 record\(s\) dropped so far\)/);
  });

  test('an export with no answer fails after its timeout', async () => {
    const { clock, calls, ex } = setup();
    ex.log(rec('a'));
    clock.advance(1000);
    clock.advance(EXPORT_TIMEOUT_MS);
    await tick();
    assert.equal(calls[0]?.cancelled, true);
    assert.equal(ex.stats.dropped, 1);
  });

  test('close sends the batch and waits for the answer; records after close are dropped', async () => {
    const { calls, ex } = setup();
    ex.log(rec('a'));
    let closed = false;
    const p = ex.close(5000).then(() => (closed = true));
    assert.deepEqual(calls[0]?.bodies, ['a']);
    await tick();
    assert.equal(closed, false);
    calls[0]?.answer();
    await p;
    ex.log(rec('late'));
    assert.deepEqual(ex.stats, { written: 1, dropped: 1, exported: 1 });
  });

  test('close cancels what has no answer after the grace time', async () => {
    const { clock, calls, ex } = setup();
    ex.log(rec('a'));
    let closed = false;
    const p = ex.close(5000).then(() => (closed = true));
    clock.advance(4999);
    await tick();
    assert.equal(closed, false);
    clock.advance(1);
    await p;
    assert.equal(calls[0]?.cancelled, true);
    assert.equal(ex.stats.dropped, 1);
  });

  test('close with no grace time cancels the exports in flight at once (no timer on the clock)', async () => {
    const { clock, calls, ex } = setup();
    ex.log(rec('a'));
    clock.advance(1000);
    await ex.close(0);
    assert.equal(calls[0]?.cancelled, true);
    assert.deepEqual(ex.stats, { written: 1, dropped: 1, exported: 0 });
  });
});
