/**
 * The OTel access log exporter on a ManualClock with a fake gRPC client: Envoy's batching
 * (grpc_access_logger.h: the flush timer, a batch reaching buffer_size_bytes sent at once,
 * canLogMore dropping when the batch stays full), meshlet's bound on exports in flight, failed
 * exports dropped, and close.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { context as otelContext, createContextKey, ROOT_CONTEXT } from '@opentelemetry/api';
import { AsyncLocalStorage } from 'node:async_hooks';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { ManualClock, systemClock } from '../../core/clock.ts';
import { currentContext, type MeshContext, runInContext } from '../../core/context.ts';
import type { UnaryRequester } from '../../core/unary-call.ts';
import { otlpCodec } from '../../../test/helpers/otel-collector.ts';
import { DEFAULT_BUFFER_BYTES, EXPORT_TIMEOUT_MS, MAX_EXPORTS_IN_FLIGHT, OtelLogExporter } from './otel-exporter.ts';
import { encodeLogRecord } from './otlp-wire.ts';

const codec = otlpCodec();
/** An app's OpenTelemetry context value (its active span, say). */
const APP_KEY = createContextKey('app span');

/** A client whose calls wait until answered by the test. */
function fakeClient() {
  const calls: { method: string; bodies: string[]; answer(err?: Error | Buffer): void; cancelled: boolean; mesh: MeshContext; otel: unknown }[] = [];
  const client: UnaryRequester = {
    makeUnaryRequest(method, _s, _d, argument, _o, callback) {
      const req = codec.requestDeserialize(argument);
      const c = {
        method,
        bodies: req.resource_logs.flatMap((rl) => rl.scope_logs.flatMap((s) => s.log_records.map((r) => r.body?.string_value ?? ''))),
        answer: (err?: Error | Buffer) => (err === undefined ? callback(null, Buffer.alloc(0)) : Buffer.isBuffer(err) ? callback(null, err) : callback(err)),
        cancelled: false,
        // The async context the call is made in.
        mesh: currentContext(),
        otel: otelContext.active().getValue(APP_KEY),
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
    assert.deepEqual(ex.stats, { written: 2, dropped: 0 });
    // Nothing batched: no timer runs.
    assert.equal(clock.pending, 0);
  });

  test('flushed(): the batch goes out now, not at the interval, and it resolves once the export is answered', async () => {
    const { clock, calls, ex } = setup();
    ex.log(rec('a'));
    let done = false;
    const flushed = ex.flushed().then(() => {
      done = true;
    });
    assert.deepEqual(
      calls.map((c) => c.bodies),
      [['a']],
      'sent at once, the clock not moved',
    );
    await tick();
    assert.equal(done, false, 'waits for the answer');
    calls[0]?.answer();
    await flushed;
    assert.deepEqual(ex.stats, { written: 1, dropped: 0 });
    clock.advance(1000);
    assert.equal(calls.length, 1, 'nothing left for the interval');
    await ex.flushed(); // nothing batched: resolves
  });

  test('flushed() with exports in flight at the bound: the partial batch goes out as a call ends, and is waited for', async () => {
    const { calls, ex } = setup();
    const big = 'x'.repeat(DEFAULT_BUFFER_BYTES);
    for (let i = 0; i < MAX_EXPORTS_IN_FLIGHT; i++) ex.log(rec(big));
    await tick();
    assert.equal(calls.length, MAX_EXPORTS_IN_FLIGHT);
    ex.log(rec('small'));
    let done = false;
    const flushed = ex.flushed().then(() => {
      done = true;
    });
    await tick();
    assert.equal(calls.length, MAX_EXPORTS_IN_FLIGHT, 'no call may start yet');
    calls[0]?.answer();
    await tick();
    assert.deepEqual(calls[MAX_EXPORTS_IN_FLIGHT]?.bodies, ['small'], 'the partial batch, as soon as a call ended');
    for (const c of calls.slice(1, MAX_EXPORTS_IN_FLIGHT)) c.answer();
    await tick();
    assert.equal(done, false, 'the flushed batch is not answered yet');
    calls[MAX_EXPORTS_IN_FLIGHT]?.answer();
    await flushed;
    assert.deepEqual(ex.stats, { written: MAX_EXPORTS_IN_FLIGHT + 1, dropped: 0 });
  });

  test('a batch reaching 16 KiB is sent at once: on the next turn of the loop, not inside log()', async () => {
    const { calls, ex } = setup();
    const big = 'x'.repeat(4000);
    for (let i = 0; i < 4; i++) ex.log(rec(big));
    assert.equal(calls.length, 0, '4 × ~4 KB: under 16384 bytes');
    ex.log(rec(big));
    assert.equal(calls.length, 0, 'not in the log() of the request that filled it');
    await tick();
    assert.equal(calls.length, 1);
    assert.equal(calls[0]?.bodies.length, 5);
    assert.ok(DEFAULT_BUFFER_BYTES === 16384);
  });

  test('exports in flight at the bound: the batch fills up, then records are dropped (buffer-full), never blocking', async () => {
    const { calls, dropped, ex } = setup();
    const big = 'x'.repeat(DEFAULT_BUFFER_BYTES);
    for (let i = 0; i < MAX_EXPORTS_IN_FLIGHT; i++) ex.log(rec(big));
    await tick();
    assert.equal(calls.length, MAX_EXPORTS_IN_FLIGHT);
    assert.equal(ex.inFlight, MAX_EXPORTS_IN_FLIGHT);
    ex.log(rec(big)); // fills the batch; cannot be sent
    ex.log(rec('dropped'));
    ex.log(rec('dropped too'));
    await tick();
    assert.equal(calls.length, MAX_EXPORTS_IN_FLIGHT);
    assert.deepEqual(dropped, [
      [1, 'buffer-full'],
      [1, 'buffer-full'],
    ]);
    assert.deepEqual(ex.stats, { written: 0, dropped: 2 });
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
    const { calls, dropped, ex } = setup();
    ex.log(rec('a'));
    let closed = false;
    const p = ex.close(5000).then(() => (closed = true));
    assert.deepEqual(calls[0]?.bodies, ['a']);
    await tick();
    assert.equal(closed, false);
    calls[0]?.answer();
    await p;
    ex.log(rec('late'));
    assert.deepEqual(ex.stats, { written: 1, dropped: 1 });
    assert.deepEqual(dropped, [[1, 'closed']], 'a record after close: closed, not buffer-full');
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
    assert.deepEqual(ex.stats, { written: 0, dropped: 1 });
  });

  test('exports run in no request: neither its mesh context (deadline, x-request-id) nor the app OpenTelemetry context reach the call', async () => {
    const manager = new AsyncLocalStorageContextManager().enable();
    otelContext.setGlobalContextManager(manager);
    try {
      const { clock, calls, ex } = setup();
      const inRequest = (fn: () => void): void =>
        otelContext.with(ROOT_CONTEXT.setValue(APP_KEY, 'request span'), () => runInContext({ deadline: performance.now() + 5, trace: { 'x-request-id': 'rid' } }, fn));
      // The flush timer, made due by a request and fired while another runs.
      inRequest(() => ex.log(rec('a')));
      inRequest(() => clock.advance(1000));
      // A batch filled by a request's record.
      inRequest(() => ex.log(rec('x'.repeat(DEFAULT_BUFFER_BYTES))));
      await tick();
      assert.equal(calls.length, 2);
      for (const c of calls) {
        assert.equal(c.mesh.deadline, Number.POSITIVE_INFINITY);
        assert.equal(c.mesh.trace, undefined);
        assert.equal(c.otel, undefined);
      }
      // With the system clock: the timer armed inside a request fires in the exporter's context.
      const { calls: calls2, client } = fakeClient();
      const real = new OtelLogExporter({ provider: 'otel', target: 'c:4317', clock: systemClock, client: () => client, warn: () => undefined, flushIntervalMs: 1 });
      inRequest(() => real.log(rec('b')));
      while (calls2.length === 0) await new Promise((r) => setTimeout(r, 5));
      assert.equal(calls2[0]?.mesh.trace, undefined);
      assert.equal(calls2[0]?.mesh.deadline, Number.POSITIVE_INFINITY);
      assert.equal(calls2[0]?.otel, undefined);
      calls2[0]?.answer();
      await real.close(0);
    } finally {
      otelContext.disable();
    }
  });

  test("exports carry none of the app's own AsyncLocalStorage values, not even those where the exporter was built (config applied inside a request)", async () => {
    const app = new AsyncLocalStorage<string>();
    const seen: (string | undefined)[] = [];
    const client: UnaryRequester = {
      makeUnaryRequest(_m, _s, _d, _a, _o, callback) {
        seen.push(app.getStore());
        callback(null, Buffer.alloc(0));
        return { cancel: () => undefined };
      },
    };
    const clock = new ManualClock(0);
    const ex = app.run('where it was built', () => new OtelLogExporter({ provider: 'otel', target: 'c:4317', clock, client: () => client, warn: () => undefined }));
    app.run('request B', () => ex.log(rec('a')));
    app.run('request C', () => clock.advance(1000));
    await tick();
    assert.deepEqual(seen, [undefined]);
    await ex.close(0);
  });

  test('a flapping collector: at most one warning per 30 s (and the recovery once), saying how many failed since', async () => {
    const { clock, calls, warnings, ex } = setup();
    for (let i = 0; i < 10; i++) {
      ex.log(rec(`r${i}`));
      clock.advance(1000);
      calls[i]?.answer(i % 2 === 0 ? new Error('14 UNAVAILABLE: down') : undefined);
      await tick();
    }
    assert.equal(warnings.length, 2, warnings.join('\n'));
    assert.match(warnings[0] as string, /export to c:4317 failed: .*down; its 1 record\(s\) are dropped/);
    assert.match(warnings[1] as string, /succeed again/);
    clock.advance(30_000); // WARN_INTERVAL_MS
    ex.log(rec('later'));
    clock.advance(1000);
    calls[10]?.answer(new Error('14 UNAVAILABLE: down'));
    await tick();
    assert.equal(warnings.length, 3);
    assert.match(warnings[2] as string, /\(5 export\(s\), 5 record\(s\) failed since the last warning\)/);
    assert.equal(ex.stats.dropped, 6);
  });

  test('close with MAX_EXPORTS_IN_FLIGHT calls in flight: the waiting batch goes out when a call ends within the grace time', async () => {
    const { calls, dropped, ex } = setup();
    for (let i = 0; i < MAX_EXPORTS_IN_FLIGHT; i++) ex.log(rec('x'.repeat(DEFAULT_BUFFER_BYTES)));
    await tick();
    ex.log(rec('waiting'));
    const closing = ex.close(5000);
    await tick();
    assert.equal(calls.length, MAX_EXPORTS_IN_FLIGHT);
    calls[0]?.answer();
    await tick();
    assert.deepEqual(calls[MAX_EXPORTS_IN_FLIGHT]?.bodies, ['waiting']);
    for (const c of calls.slice(1)) c.answer();
    await closing;
    assert.deepEqual(dropped, []);
    assert.deepEqual(ex.stats, { written: MAX_EXPORTS_IN_FLIGHT + 1, dropped: 0 });
  });

  test('records the collector rejects (partial_success) are dropped, the rest written (OTelLogRequestCallbacks::onSuccess)', async () => {
    const { clock, calls, dropped, ex } = setup();
    for (const b of ['a', 'b', 'c']) ex.log(rec(b));
    clock.advance(1000);
    calls[0]?.answer(codec.responseSerialize({ partial_success: { rejected_log_records: 1, error_message: 'one bad' } }));
    await tick();
    assert.deepEqual(ex.stats, { written: 2, dropped: 1 });
    assert.deepEqual(dropped, [[1, 'rejected']]);
  });
});
