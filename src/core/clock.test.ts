import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_TIMEOUT_MS, systemClock } from './clock.ts';

const DAY = 86_400_000;

describe('systemClock', () => {
  it('waits a delay longer than setTimeout holds (24.8 days) in steps instead of handing it over (Node would fire it after 1 ms)', (t) => {
    const armed: { fn: () => void; ms: number; unref: boolean }[] = [];
    t.mock.method(globalThis, 'setTimeout', (fn: () => void, ms: number) => {
      const a = { fn, ms, unref: false };
      armed.push(a);
      return { unref: () => (a.unref = true) };
    });
    let fired = 0;
    systemClock.setTimer(() => fired++, 60 * DAY);
    assert.deepEqual(
      armed.map((a) => a.ms),
      [MAX_TIMEOUT_MS],
    );
    armed[0]!.fn();
    armed[1]!.fn();
    assert.equal(fired, 0, 'not before the whole delay');
    assert.deepEqual(
      armed.map((a) => a.ms),
      [MAX_TIMEOUT_MS, MAX_TIMEOUT_MS, 60 * DAY - 2 * MAX_TIMEOUT_MS],
    );
    assert.ok(armed.every((a) => a.unref), 'every step is unreferenced, as the timer is');
    armed[2]!.fn();
    assert.equal(fired, 1);
  });

  it('clear() cancels the step in progress', (t) => {
    const handles: object[] = [];
    const cleared: unknown[] = [];
    const fns: (() => void)[] = [];
    t.mock.method(globalThis, 'setTimeout', (fn: () => void) => {
      const h = { unref: () => h };
      handles.push(h);
      fns.push(fn);
      return h;
    });
    t.mock.method(globalThis, 'clearTimeout', (h: unknown) => cleared.push(h));
    const timer = systemClock.setTimer(() => assert.fail('cleared'), 30 * DAY, true);
    fns[0]!();
    timer.clear();
    assert.deepEqual(cleared, [handles[1]]);
  });

  it('hands a delay setTimeout holds to it as it is', (t) => {
    const ms: number[] = [];
    t.mock.method(globalThis, 'setTimeout', (_fn: () => void, d: number) => {
      ms.push(d);
      return { unref: () => undefined };
    });
    systemClock.setTimer(() => undefined, 12 * 3_600_000);
    systemClock.setTimer(() => undefined, MAX_TIMEOUT_MS);
    assert.deepEqual(ms, [12 * 3_600_000, MAX_TIMEOUT_MS]);
  });
});
