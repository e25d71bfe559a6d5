import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../../core/clock.ts';
import { type AlsCall, AlsStreamer, type ClientStreamRequester, INITIAL_BACKOFF_MS, MAX_BACKOFF_MS } from './als-streamer.ts';
import { ALS_STREAM_METHOD } from './als-wire.ts';
import type { AccessLogDropReason } from './otel-exporter.ts';

/** A grpc-js client stand-in: each stream keeps its messages; the test ends streams and makes writes block. */
class FakeCall implements AlsCall {
  readonly messages: Buffer[] = [];
  readonly callbacks: ((e?: Error | null) => void)[] = [];
  ended = false;
  cancelled = false;
  /** `write` returns false (the stream is above its high watermark). */
  full = false;
  /** Write callbacks are held until {@link release}. */
  hold = false;
  readonly #listeners = new Map<string, ((...a: unknown[]) => void)[]>();
  readonly done: (error: Error | null) => void;
  constructor(done: (error: Error | null) => void) {
    this.done = done;
  }
  write(message: Buffer, cb: (e?: Error | null) => void): boolean {
    this.messages.push(message);
    if (this.hold) this.callbacks.push(cb);
    else queueMicrotask(() => cb());
    return !this.full;
  }
  release(): void {
    for (const cb of this.callbacks.splice(0)) cb();
  }
  end(): void {
    this.ended = true;
  }
  cancel(): void {
    this.cancelled = true;
    this.done(Object.assign(new Error('1 CANCELLED: Cancelled on client'), { code: 1 }));
  }
  on(event: string, l: (...a: never[]) => void): this {
    this.#listeners.set(event, [...(this.#listeners.get(event) ?? []), l as (...a: unknown[]) => void]);
    return this;
  }
  emit(event: string): void {
    for (const l of this.#listeners.get(event) ?? []) l();
  }
}

function setup(o: { bufferBytes?: number } = {}) {
  const clock = new ManualClock(1000);
  const calls: FakeCall[] = [];
  const warnings: string[] = [];
  const drops: [number, AccessLogDropReason][] = [];
  const client: ClientStreamRequester = {
    makeClientStreamRequest(method, _s, _d, cb) {
      assert.equal(method, ALS_STREAM_METHOD);
      const c = new FakeCall((e) => cb(e));
      calls.push(c);
      return c;
    },
  };
  const s = new AlsStreamer({
    provider: 'als',
    target: 'als.obs.svc.cluster.local:15000',
    clock,
    client: () => client,
    identifier: Buffer.from('ID'),
    warn: (m) => warnings.push(m),
    onDropped: (n, r) => drops.push([n, r]),
    bufferBytes: o.bufferBytes,
  });
  return { clock, calls, warnings, drops, s };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
/** Whether a StreamAccessLogsMessage carries the identifier (field 1 first). */
const identified = (m: Buffer | undefined): boolean => m?.[0] === 0x0a;
const entry = (n: number): Buffer => Buffer.alloc(n, 1);

describe('AlsStreamer', () => {
  it('one stream: the identifier in its first message only; a batch after the flush interval, or at once when full', async () => {
    const { clock, calls, s } = setup({ bufferBytes: 100 });
    s.log(entry(10));
    s.log(entry(10));
    assert.equal(calls.length, 0, 'nothing before the interval');
    clock.advance(1000);
    assert.equal(calls.length, 1);
    assert.equal(calls[0]?.messages.length, 1);
    assert.ok(identified(calls[0]?.messages[0]));
    s.log(entry(100));
    assert.equal(calls[0]?.messages.length, 1, 'a full batch is not sent inside log()');
    await tick();
    assert.equal(calls[0]?.messages.length, 2);
    assert.ok(!identified(calls[0]?.messages[1]));
    await tick();
    assert.deepEqual(s.stats, { written: 3, dropped: 0 });
    assert.equal(s.opened, 1);
  });

  it('a slow service (write returns false): nothing is written until it drains; the batch fills and later entries are dropped', async () => {
    const { clock, calls, drops, s } = setup({ bufferBytes: 30 });
    s.log(entry(10));
    clock.advance(1000);
    const call = calls[0] as FakeCall;
    call.full = true;
    s.log(entry(10));
    clock.advance(1000);
    assert.equal(call.messages.length, 2, 'written, and write said the buffer is full');
    s.log(entry(15));
    s.log(entry(15));
    s.log(entry(15));
    clock.advance(1000);
    await tick();
    assert.equal(call.messages.length, 2, 'nothing more until it drains');
    assert.deepEqual(drops, [[1, 'buffer-full']]);
    call.full = false;
    call.emit('drain');
    await tick();
    assert.equal(call.messages.length, 3, 'the batch goes out once it drains');
    await tick();
    assert.deepEqual(s.stats, { written: 4, dropped: 1 });
  });

  it('a failed stream is opened again after a backoff that doubles (1 s, 2 s, …, 30 s), with the identifier again; one warning', async () => {
    const { clock, calls, warnings, s } = setup();
    s.log(entry(10));
    clock.advance(1000);
    const unavailable = (): Error => new Error('14 UNAVAILABLE: No connection established');
    (calls[0] as FakeCall).done(unavailable());
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /access log "als": the stream to als\.obs\.svc\.cluster\.local:15000 failed: 14 UNAVAILABLE: No connection established; opened again in 1000ms/);
    s.log(entry(10));
    clock.advance(INITIAL_BACKOFF_MS - 1);
    assert.equal(calls.length, 1, 'not before the backoff');
    clock.advance(1);
    assert.equal(calls.length, 2);
    assert.ok(identified(calls[1]?.messages[0]), 'a new stream starts with the identifier');
    (calls[1] as FakeCall).done(unavailable());
    s.log(entry(10));
    clock.advance(2 * INITIAL_BACKOFF_MS - 1);
    assert.equal(calls.length, 2);
    clock.advance(1);
    assert.equal(calls.length, 3, 'the second wait is twice the first');
    assert.equal(warnings.length, 1, 'one warning for failures within 30 s');
    for (let i = 0; i < 8; i++) {
      (calls.at(-1) as FakeCall).done(unavailable());
      s.log(entry(10));
      clock.advance(MAX_BACKOFF_MS);
    }
    const opened = calls.length;
    (calls.at(-1) as FakeCall).done(unavailable());
    s.log(entry(10));
    clock.advance(MAX_BACKOFF_MS - 1);
    assert.equal(calls.length, opened, 'the wait is at most 30 s');
    clock.advance(1);
    assert.equal(calls.length, opened + 1);
    // It works again: one warning says so.
    await tick();
    assert.match(warnings.at(-1) ?? '', /streaming to als\.obs\.svc\.cluster\.local:15000 works again/);
  });

  it('a stream the service ends (it answered) is opened again at the next flush, without a backoff', async () => {
    const { clock, calls, warnings, s } = setup();
    s.log(entry(10));
    clock.advance(1000);
    await tick();
    (calls[0] as FakeCall).done(null);
    s.log(entry(10));
    clock.advance(1000);
    assert.equal(calls.length, 2);
    assert.deepEqual(warnings, []);
  });

  it('close: sends the batch, half-closes and waits for the answer; later entries are dropped', async () => {
    const { calls, drops, s } = setup();
    s.log(entry(10));
    const closing = s.close(5000);
    const call = calls[0] as FakeCall;
    assert.equal(call.messages.length, 1, 'the batch is sent at once');
    assert.ok(call.ended, 'half-closed');
    call.done(null);
    await closing;
    assert.equal(call.cancelled, false, 'the stream ended: nothing to cancel');
    s.log(entry(10));
    assert.deepEqual(drops, [[1, 'closed']]);
    assert.deepEqual(s.stats, { written: 1, dropped: 1 });
  });

  it('close with a service that never answers gives up after the grace time; what it did not take is dropped (closed)', async () => {
    const { clock, calls, s } = setup();
    s.log(entry(10));
    clock.advance(1000);
    const call = calls[0] as FakeCall;
    call.hold = true;
    s.log(entry(10));
    const closing = s.close(2000);
    clock.advance(2000);
    await closing;
    assert.equal(call.cancelled, true);
    await tick();
    assert.deepEqual(s.stats, { written: 1, dropped: 1 });
  });

  it('flushed(): sends the batch now and resolves once it is handed on', async () => {
    const { calls, s } = setup();
    s.log(entry(10));
    const call = (): FakeCall => calls[0] as FakeCall;
    let done = false;
    const p = s.flushed().then(() => {
      done = true;
    });
    assert.equal(call().messages.length, 1);
    await p;
    assert.ok(done);
    assert.deepEqual(s.stats, { written: 1, dropped: 0 });
  });

  it('flushed() with a service that takes nothing gives up after 10 s on the mesh clock', async () => {
    const { clock, calls, s } = setup();
    s.log(entry(10));
    clock.advance(1000);
    (calls[0] as FakeCall).hold = true;
    s.log(entry(10));
    let done = false;
    const p = s.flushed().then(() => {
      done = true;
    });
    await tick();
    assert.equal(done, false);
    clock.advance(10_000);
    await p;
    assert.ok(done);
  });
});
