import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ManualClock } from '../core/clock.ts';
import { debounceBursts, type ReloadAttempt, Reloader } from './reloader.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-reloader-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A Reloader on a manual clock whose reloads the test sees (and can hold open). */
function harness(o: { settleMs?: number; unsettledWarningMs?: number } = {}) {
  const clock = new ManualClock();
  const attempts: { attempt: ReloadAttempt; current?: boolean }[] = [];
  const unsettled: string[][] = [];
  let hold: Promise<void> | undefined;
  let started: (() => void) | undefined;
  const reloader = new Reloader({
    debounceMs: 20,
    maxDebounceMs: 100,
    settleMs: o.settleMs ?? 1000,
    unsettledWarningMs: o.unsettledWarningMs,
    clock,
    onUnsettled: (files) => unsettled.push([...files]),
    reload: async (attempt) => {
      const entry: { attempt: ReloadAttempt; current?: boolean } = { attempt };
      attempts.push(entry);
      started?.();
      if (hold !== undefined) await hold;
      entry.current = await attempt.current();
    },
  });
  return {
    clock,
    attempts,
    unsettled,
    reloader,
    /** The next reload starts (after the file stats it takes first). */
    nextStart: () => new Promise<void>((r) => (started = r)),
    /** Holds reloads open until the returned function is called. */
    holdReloads: () => {
      let release!: () => void;
      hold = new Promise((r) => (release = r));
      return () => {
        hold = undefined;
        release();
      };
    },
    /**
     * Lets the reload that is running finish (its file stats and current()): waits, turn by
     * turn, until the latest attempt has its answer, then one more turn for the reloader's own
     * bookkeeping — no wall-clock wait, so a loaded machine's slow stat cannot outrun it.
     */
    settleIo: async () => {
      const last = attempts.at(-1);
      while (last !== undefined && last.current === undefined) await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
    },
  };
}

test('renames (atomic replacements) reload after the debounce, once per burst, with the changed files', async () => {
  const h = harness();
  const file = join(dir, 'a.yaml');
  writeFileSync(file, '1');
  h.reloader.event({ path: file, type: 'rename' });
  h.reloader.event({ path: join(dir, 'b.yaml'), type: 'rename' });
  h.clock.advance(19);
  assert.equal(h.attempts.length, 0, 'not within the debounce');
  const started = h.nextStart();
  h.clock.advance(1);
  await started;
  await h.settleIo();
  assert.equal(h.attempts.length, 1);
  assert.deepEqual(h.attempts[0]?.attempt.files, [file, join(dir, 'b.yaml')]);
  assert.equal(h.attempts[0]?.current, true);
  await h.reloader.close();
});

test('a file written in place is read only after it was quiet for settleMs; writes that keep coming keep it waiting, past the debounce cap', async () => {
  const h = harness();
  const file = join(dir, 'slow.yaml');
  writeFileSync(file, 'part 1');
  h.reloader.event({ path: file, type: 'change' });
  h.clock.advance(500);
  assert.equal(h.attempts.length, 0, 'the debounce passed, the file has not settled');
  // The writer goes on, in 300 ms steps (longer than the debounce, shorter than settleMs).
  for (let i = 0; i < 5; i++) {
    h.reloader.event({ path: file, type: 'change' });
    h.clock.advance(300);
    assert.equal(h.attempts.length, 0, `step ${i}: still being written`);
  }
  h.clock.advance(699);
  assert.equal(h.attempts.length, 0);
  const started = h.nextStart();
  h.clock.advance(1);
  await started;
  await h.settleIo();
  assert.equal(h.attempts.length, 1);
  assert.equal(h.attempts[0]?.current, true);
  await h.reloader.close();
});

test('an event during a reload makes its result out of date (not applied); the reload runs again after things settle', async () => {
  const h = harness({ settleMs: 100 });
  const file = join(dir, 'during.yaml');
  writeFileSync(file, '1');
  const release = h.holdReloads();
  h.reloader.event({ path: file, type: 'rename' });
  const first = h.nextStart();
  h.clock.advance(20);
  await first;
  h.reloader.event({ path: file, type: 'change' }); // the writer went on while the reload read
  release();
  await h.settleIo();
  assert.equal(h.attempts[0]?.current, false, 'the first result is out of date');
  h.clock.advance(99);
  assert.equal(h.attempts.length, 1, 'the in-place write settles first');
  const second = h.nextStart();
  h.clock.advance(1);
  await second;
  await h.settleIo();
  assert.equal(h.attempts.length, 2);
  assert.equal(h.attempts[1]?.current, true);
  await h.reloader.close();
});

test('a file written in place that changed on disk while it was read (before its event arrived) is out of date too, and read again', async () => {
  const h = harness({ settleMs: 100 });
  const file = join(dir, 'racy.yaml');
  writeFileSync(file, 'first half');
  const release = h.holdReloads();
  h.reloader.event({ path: file, type: 'change' });
  const first = h.nextStart();
  h.clock.advance(100);
  await first;
  writeFileSync(file, 'first half, second half'); // no event delivered for it (yet)
  release();
  await h.settleIo();
  assert.equal(h.attempts[0]?.current, false, 'size and mtime changed since the reload started');
  const second = h.nextStart();
  h.clock.advance(120);
  await second;
  await h.settleIo();
  assert.equal(h.attempts[1]?.current, true);
  await h.reloader.close();
});

test('files that never stop being written are reported once, and not read while they go on', () => {
  const h = harness({ settleMs: 100, unsettledWarningMs: 1000 });
  const file = join(dir, 'log.yaml');
  for (let t = 0; t < 3000; t += 50) {
    h.reloader.event({ path: file, type: 'change' });
    h.clock.advance(50);
  }
  assert.equal(h.attempts.length, 0);
  assert.deepEqual(h.unsettled, [[file]]);
  void h.reloader.close();
});

test('debounceBursts: one run per burst after the quiet time; a burst that never pauses still runs at the cap; cancel drops it', () => {
  const clock = new ManualClock();
  let runs = 0;
  const d = debounceBursts(() => runs++, 30, 120, clock);
  for (let i = 0; i < 3; i++) {
    d.trigger();
    clock.advance(5);
  }
  assert.equal(runs, 0, 'not while the burst goes on');
  clock.advance(30);
  assert.equal(runs, 1, 'once after the burst settled');
  // Events every 10 ms never leave 30 ms of quiet: the 120 ms cap makes it run anyway.
  for (let t = 0; t < 120; t += 10) {
    d.trigger();
    clock.advance(10);
  }
  assert.equal(runs, 2, 'the cap ran the endless burst');
  d.trigger();
  d.cancel();
  clock.advance(60);
  assert.equal(runs, 2, 'a cancelled run does not happen');
});
