import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { ManualClock } from '../core/clock.ts';
import { runNow, runSliced, type Steps } from './steps.ts';

/** `n` steps, each advancing `clock` by `costMs` and recording what `at()` says when it runs. */
function* timedSteps(n: number, clock: ManualClock, costMs: number, seen: number[], at: () => number): Steps<string> {
  for (let i = 0; i < n; i++) {
    seen.push(at());
    clock.advance(costMs);
    yield;
  }
  return 'done';
}

/** Counts event-loop iterations (one increment per check phase) until stopped. */
function loopCounter(): { readonly count: () => number; stop(): void } {
  let n = 0;
  let handle = setImmediate(function tick() {
    n++;
    handle = setImmediate(tick);
  });
  return { count: () => n, stop: () => clearImmediate(handle) };
}

test('runSliced runs slices of the budget on the given clock, each in its own turn of the event loop, none in the caller\'s', async () => {
  const clock = new ManualClock();
  const loop = loopCounter();
  const seen: number[] = [];
  let inCallersTurn: number;
  try {
    const run = runSliced(timedSteps(10, clock, 3, seen, loop.count), 8, clock);
    inCallersTurn = seen.length;
    assert.equal(await run, 'done');
  } finally {
    loop.stop();
  }
  assert.equal(inCallersTurn, 0, 'no step runs in the caller\'s turn');
  // 3 ms a step, 8 ms a slice: a slice ends after the step that reaches the budget (3 steps = 9 ms).
  // Steps run in the same loop iteration make one slice.
  const slices = [...new Set(seen)].map((iteration) => seen.filter((s) => s === iteration).length);
  assert.deepEqual(slices, [3, 3, 3, 1]);
  assert.equal(runNow(timedSteps(4, clock, 3, [], loop.count)), 'done');
});

test('runSliced started from an I/O callback lets a due timer run after its first slice, not after two', async () => {
  const clock = new ManualClock();
  const seen: number[] = [];
  let stepsBeforeTimer = -1;
  await readFile(new URL(import.meta.url)); // what follows runs in the poll phase, as a reload after reading its files does
  setTimeout(() => {
    stepsBeforeTimer = seen.length;
  }, 1);
  // Until the timer is due (libuv's loop time is refreshed before timers run), so the first timers phase runs it.
  const due = performance.now() + 3;
  while (performance.now() < due);
  // 1 ms a step, 4 ms a slice: 4 steps a slice.
  assert.equal(await runSliced(timedSteps(12, clock, 1, seen, () => 0), 4, clock), 'done');
  // Before the fix the first slice ran in the poll phase and the second in the check phase right
  // after it: the timer (and any I/O) waited for 8 steps.
  assert.equal(stepsBeforeTimer, 4);
});
