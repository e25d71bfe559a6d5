import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { configMapVolume } from '../../test/helpers/config-dir.ts';
import { ManualClock } from '../core/clock.ts';
import { type ConfigWatcher, isConfigEventPath, type WatchEvent, watchConfigPaths } from './watch.ts';

const root = mkdtempSync(join(tmpdir(), 'meshlet-watch-'));
after(() => rmSync(root, { recursive: true, force: true }));

/**
 * Liveness bound of a wait, not a speed check: inotify events arrive at once, but on a loaded
 * machine the turn that delivers them can come late. A wait that times out says what was seen.
 */
const LIVENESS_MS = 20_000;

interface Recorder {
  readonly events: WatchEvent[];
  readonly lost: string[];
  readonly restored: string[];
  /** Resolves once `done()` holds, re-checked on every event, loss and restoration (no polling). */
  until(done: () => boolean, what: () => string): Promise<void>;
  seen(relative: string): Promise<void>;
  /**
   * Resolves once directory `dir` (`rel` below the root) is watched: a probe file replaced in it
   * is reported. A new directory's watch is set up by a re-sync after the event that announced
   * it (readdir and stat on the thread pool), so a fixed pause before writing into it can be
   * too short on a loaded machine. The probe is written again on every event until one is seen.
   */
  watching(dir: string, rel: string): Promise<void>;
  watch(paths: string[], checkIntervalMs?: number): ConfigWatcher;
}

function recorder(): Recorder {
  const waiters = new Set<() => void>();
  const changed = () => {
    for (const w of [...waiters]) w();
  };
  const r: Recorder = {
    events: [],
    lost: [],
    restored: [],
    until: (done, what) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (!done()) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(what()));
        }, LIVENESS_MS);
        waiters.add(check);
        check();
      }),
    seen: (rel) => r.until(() => r.events.some((e) => e.relative === rel), () => `no event for ${rel}; got ${JSON.stringify(r.events.map((e) => e.relative))}`),
    watching: async (dir, rel) => {
      const probe = join(rel, 'probe.yaml');
      let n = 0;
      // Each event (from the parent, or the re-sync's own report of the directory) writes the probe again.
      const write = () => replace(join(dir, 'probe.yaml'), String(++n));
      waiters.add(write);
      try {
        write();
        await r.seen(probe);
      } finally {
        waiters.delete(write);
      }
    },
    watch: (paths, checkIntervalMs) =>
      watchConfigPaths(paths, {
        onEvent: (e) => {
          r.events.push(e);
          changed();
        },
        onLost: (_root, reason) => {
          r.lost.push(reason);
          changed();
        },
        onRestored: (_root, how) => {
          r.restored.push(how);
          changed();
        },
        checkIntervalMs,
      }),
  };
  return r;
}

function replace(file: string, text: string): void {
  const tmp = `${join(file, '..')}/.next`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

const quiet = (ms = 50) => new Promise((r) => setTimeout(r, ms));

test('a directory: every rename-over-replace of a file is seen, not only the first (Node recursive watch misses these), as a rename', async () => {
  const dir = join(root, 'd1');
  mkdirSync(dir);
  writeFileSync(join(dir, 'a.yaml'), '0');
  const r = recorder();
  const w = r.watch([dir]);
  try {
    for (let i = 1; i <= 4; i++) {
      r.events.length = 0;
      replace(join(dir, 'a.yaml'), String(i));
      await r.seen('a.yaml');
      assert.ok(r.events.filter((e) => e.relative === 'a.yaml').every((e) => e.type === 'rename'), JSON.stringify(r.events));
    }
    r.events.length = 0;
    writeFileSync(join(dir, 'a.yaml'), 'in place');
    await r.seen('a.yaml');
    assert.ok(r.events.some((e) => e.relative === 'a.yaml' && e.type === 'change'), 'a write in place is a change');
    assert.equal(r.events[0]?.path, join(dir, 'a.yaml'));
  } finally {
    w.close();
  }
});

test('writes in place to files no reload reads (a log, an atomic writer\'s temp file) make no change events: they would hold reloads back until quiet', async () => {
  const dir = join(root, 'd-not-config');
  mkdirSync(dir);
  writeFileSync(join(dir, 'a.yaml'), '0');
  writeFileSync(join(dir, 'app.log'), '');
  writeFileSync(join(dir, 'b.yaml.1234'), '');
  const r = recorder();
  const w = r.watch([dir]);
  try {
    appendFileSync(join(dir, 'app.log'), 'a line\n');
    appendFileSync(join(dir, 'b.yaml.1234'), 'kind: x\n');
    writeFileSync(join(dir, 'a.yaml'), 'in place'); // after the others: its event comes after theirs
    await r.seen('a.yaml');
    assert.ok(r.events.some((e) => e.relative === 'a.yaml' && e.type === 'change'), 'a config file written in place is a change');
    assert.deepEqual(r.events.filter((e) => e.relative !== 'a.yaml'), []);
    r.events.length = 0;
    renameSync(join(dir, 'b.yaml.1234'), join(dir, 'b.yaml'));
    await r.seen('b.yaml');
    assert.ok(r.events.every((e) => e.type === 'rename'), JSON.stringify(r.events));
  } finally {
    w.close();
  }
});

test('subdirectories, including ones created after the watch started', async () => {
  const dir = join(root, 'd2');
  mkdirSync(join(dir, 'old'), { recursive: true });
  const r = recorder();
  const w = r.watch([dir]);
  try {
    replace(join(dir, 'old', 'x.yaml'), '1');
    await r.seen(join('old', 'x.yaml'));
    mkdirSync(join(dir, 'new'));
    await r.seen('new');
    await r.watching(join(dir, 'new'), 'new');
    r.events.length = 0;
    replace(join(dir, 'new', 'y.yaml'), '1');
    await r.seen(join('new', 'y.yaml'));
    replace(join(dir, 'new', 'y.yaml'), '2');
    r.events.length = 0;
    replace(join(dir, 'new', 'y.yaml'), '3');
    await r.seen(join('new', 'y.yaml'));
  } finally {
    w.close();
  }
});

test('a subdirectory replaced by another of the same name (mv): the new one is watched, the old one no longer reports', async () => {
  const dir = join(root, 'd2b');
  mkdirSync(join(dir, 'sub'), { recursive: true });
  const r = recorder();
  const w = r.watch([dir]);
  try {
    renameSync(join(dir, 'sub'), join(root, 'd2b-sub-old'));
    mkdirSync(join(root, 'd2b-sub-new'));
    renameSync(join(root, 'd2b-sub-new'), join(dir, 'sub'));
    await r.seen('sub');
    await r.watching(join(dir, 'sub'), 'sub');
    r.events.length = 0;
    writeFileSync(join(root, 'd2b-sub-old', 'old.yaml'), 'x');
    replace(join(dir, 'sub', 'z.yaml'), '1');
    await r.seen(join('sub', 'z.yaml'));
    assert.ok(!r.events.some((e) => e.relative.endsWith('old.yaml')), `the moved-away directory still reports: ${JSON.stringify(r.events.map((e) => e.relative))}`);
  } finally {
    w.close();
  }
});

test('single files: only the named files, each replaced repeatedly; close() stops events', async () => {
  const dir = join(root, 'd3');
  mkdirSync(dir);
  for (const f of ['a.yaml', 'b.yaml', 'c.yaml']) writeFileSync(join(dir, f), '0');
  const r = recorder();
  const w = r.watch([join(dir, 'a.yaml'), join(dir, 'b.yaml')]);
  for (let i = 1; i <= 3; i++) {
    r.events.length = 0;
    replace(join(dir, 'a.yaml'), String(i));
    replace(join(dir, 'b.yaml'), String(i));
    await r.seen('a.yaml');
    await r.seen('b.yaml');
  }
  r.events.length = 0;
  writeFileSync(join(dir, 'c.yaml'), '1');
  await quiet();
  assert.deepEqual(r.events, [], 'a file that is not watched makes no event');
  w.close();
  writeFileSync(join(dir, 'a.yaml'), '9');
  await quiet();
  assert.deepEqual(r.events, [], 'no events after close()');
});

test('dotfiles make no events (swap files, temporary files); ..-names do (a ConfigMap\'s ..data)', () => {
  const cases: [string, boolean][] = [
    ['a.yaml', true],
    ['', true],
    ['.a.yaml.swp', false],
    [join('sub', '.tmp'), false],
    [join('.git', 'x.yaml'), false],
    ['..data', true],
    ['..data_tmp', true],
    ['..2026_12_02_10_00_00.123456789', true],
    [join('sub', 'x.yaml'), true],
  ];
  for (const [path, expected] of cases) assert.equal(isConfigEventPath(path), expected, path);
});

test('a ConfigMap volume update (kubelet\'s ..data swap) is seen, as a directory and as a single watched file', async () => {
  const dir = join(root, 'cm');
  const cm = configMapVolume(dir);
  cm.update({ 'mesh.yaml': 'v: 1' });
  const r = recorder();
  const w = r.watch([dir]);
  const rf = recorder();
  const wf = rf.watch([join(dir, 'mesh.yaml')]);
  try {
    for (let i = 2; i <= 3; i++) {
      r.events.length = 0;
      rf.events.length = 0;
      cm.update({ 'mesh.yaml': `v: ${i}` });
      await r.seen('..data');
      await rf.seen('..data');
    }
  } finally {
    w.close();
    wf.close();
  }
});

test('the watched directory deleted: reported lost once; re-created: watched again (reported, and its content counts as changed)', async () => {
  const dir = join(root, 'gone');
  mkdirSync(dir);
  const r = recorder();
  const w = r.watch([dir], 20);
  try {
    rmSync(dir, { recursive: true });
    await r.until(() => r.lost.length > 0, () => 'no loss reported');
    assert.match(r.lost[0] as string, /no longer exists/);
    assert.deepEqual(w.lost.length, 1);
    await quiet(60); // several interval checks: still one report
    assert.equal(r.lost.length, 1);
    r.events.length = 0;
    mkdirSync(dir);
    await r.until(() => r.restored.length > 0, () => 'not watched again');
    assert.match(r.restored[0] as string, /exists again/);
    assert.deepEqual(w.lost, []);
    assert.ok(r.events.some((e) => e.relative === '' && e.type === 'change'), 'the re-created directory counts as written (it may still be filling)');
    r.events.length = 0;
    replace(join(dir, 'x.yaml'), '1');
    await r.seen('x.yaml');
  } finally {
    w.close();
  }
});

test('the watched directory swapped with mv: the new one is watched, the old one (moved away) no longer reports', async () => {
  const dir = join(root, 'swap');
  mkdirSync(dir);
  mkdirSync(join(root, 'swap-next'));
  writeFileSync(join(root, 'swap-next', 'a.yaml'), '1');
  const r = recorder();
  const w = r.watch([dir], 1_000_000); // only the parent's watch can notice it quickly
  try {
    renameSync(dir, join(root, 'swap-old'));
    renameSync(join(root, 'swap-next'), dir);
    await r.until(() => r.restored.length > 0, () => 'the swapped-in directory is not watched');
    await quiet();
    r.events.length = 0;
    writeFileSync(join(root, 'swap-old', 'stale.yaml'), 'x');
    replace(join(dir, 'a.yaml'), '2');
    await r.seen('a.yaml');
    assert.ok(!r.events.some((e) => e.relative.includes('stale')), JSON.stringify(r.events.map((e) => e.relative)));
  } finally {
    w.close();
  }
});

test("a root's identity is checked on the given clock: a root whose parent was missing too is found when that clock has moved on a check interval, not before", async () => {
  const parent = join(root, 'clocked-parent');
  const dir = join(parent, 'conf');
  const clock = new ManualClock();
  const restored: string[] = [];
  const lost: string[] = [];
  const w = watchConfigPaths([dir], { onEvent: () => undefined, onLost: (_r, why) => lost.push(why), onRestored: (_r, how) => restored.push(how), checkIntervalMs: 60_000, clock });
  try {
    assert.equal(lost.length, 1, 'missing at start: reported lost');
    mkdirSync(dir, { recursive: true }); // nothing watches the missing parent: only the identity check finds it
    clock.advance(59_999);
    await quiet();
    assert.deepEqual(restored, [], 'not before the interval');
    clock.advance(1);
    assert.deepEqual(restored, [`${dir}: it exists again; watching it again`]);
  } finally {
    w.close();
  }
});
