import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe, it } from 'node:test';
import type { Headers } from '../../core/handler.ts';
import { inject } from './propagation.ts';
import { POOL_SIZE } from './random-pool.ts';
import { newIds, newSpanId, newTraceId, newUnsampledTraceparent } from './span-context.ts';

/** Ids of 24 bytes (a trace and a span id) enough to pass the next refill of the pool, and 400 after it. */
const PAST_REFILL = Math.ceil(POOL_SIZE / 24) + 400;

describe('ids cut from the random pool', () => {
  it('trace and span ids: 32 and 16 hex digits, every byte value used, unique', () => {
    const traces = new Set<string>();
    const digits = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const { traceId, spanId } = newIds();
      assert.match(traceId, /^[0-9a-f]{32}$/);
      assert.match(spanId, /^[0-9a-f]{16}$/);
      traces.add(traceId);
      for (let j = 0; j < 32; j += 2) digits.add(traceId.slice(j, j + 2));
    }
    assert.equal(traces.size, 2000);
    assert.equal(digits.size, 256);
  });

  it('never an all-zero id (invalid in W3C trace context): a zero draw becomes 1, as the SDK does', (t) => {
    // Every draw zero from the next refill of the pool on.
    t.mock.method(crypto, 'randomFillSync', (b: Buffer) => b.fill(0));
    const seen: string[] = [];
    for (let i = 0; i < PAST_REFILL; i++) seen.push(newTraceId(), newSpanId());
    const zeros = seen.filter((id) => /^0+$/.test(id));
    assert.deepEqual(zeros, []);
    assert.ok(seen.includes(`${'0'.repeat(31)}1`), 'a zero trace id drawn and made 1');
    assert.ok(seen.includes(`${'0'.repeat(15)}1`), 'a zero span id drawn and made 1');
  });

  it('an unsampled traceparent: version 00, new trace and span ids from the pool, flags 00; each one new', () => {
    // Past what is left of a pool filled while randomFillSync was mocked (the test before).
    for (let i = 0; i < POOL_SIZE / 8; i++) newSpanId();
    const seen = new Set<string>();
    const digits = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const tp = newUnsampledTraceparent();
      const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-00$/.exec(tp);
      assert.ok(m, tp);
      seen.add(tp);
      for (let j = 0; j < 32; j += 2) digits.add((m[1] as string).slice(j, j + 2));
      for (let j = 0; j < 16; j += 2) digits.add((m[2] as string).slice(j, j + 2));
    }
    assert.equal(seen.size, 2000);
    assert.equal(digits.size, 256);
  });

  it("an unsampled traceparent under a trace: that trace id as given, a new span id each time, what inject() writes", () => {
    const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const tp = newUnsampledTraceparent(trace);
      const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-00$/.exec(tp);
      assert.equal(m?.[1], trace, tp);
      const h: Headers = {};
      inject(h, { traceId: trace, spanId: m?.[2] as string, parentSpanId: undefined, sampled: false, traceState: undefined }, ['w3c']);
      assert.deepEqual(h, { traceparent: tp });
      seen.add(tp);
    }
    assert.equal(seen.size, 100);
    // The buffer is reused: a new trace after one under a given trace id does not keep it.
    assert.notEqual(newUnsampledTraceparent().slice(3, 35), trace);
  });

  it('an unsampled traceparent never carries an all-zero id', (t) => {
    t.mock.method(crypto, 'randomFillSync', (b: Buffer) => b.fill(0));
    const seen: string[] = [];
    for (let i = 0; i < PAST_REFILL; i++) seen.push(newUnsampledTraceparent());
    assert.ok(seen.includes(`00-${'0'.repeat(31)}1-${'0'.repeat(15)}1-00`), 'zero ids drawn and made 1');
    assert.deepEqual(
      seen.filter((tp) => /^00-0{32}-|-0{16}-00$/.test(tp)),
      [],
    );
  });
});
