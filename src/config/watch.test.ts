import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { debounceBursts, watchConfigPaths } from './watch.ts';

const root = mkdtempSync(join(tmpdir(), 'meshlet-watch-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** Resolves with the events seen until `path` shows up (or rejects after 3 s). */
function seen(events: string[], path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const poll = setInterval(() => {
      if (events.includes(path)) {
        clearInterval(poll);
        resolve();
      } else if (Date.now() - start > 3000) {
        clearInterval(poll);
        reject(new Error(`no event for ${path}; got ${JSON.stringify(events)}`));
      }
    }, 5);
  });
}

function replace(file: string, text: string): void {
  const tmp = `${join(file, '..')}/.next`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

test('a directory: every rename-over-replace of a file is seen, not only the first (Node recursive watch misses these)', async () => {
  const dir = join(root, 'd1');
  mkdirSync(dir);
  writeFileSync(join(dir, 'a.yaml'), '0');
  const events: string[] = [];
  const w = watchConfigPaths([dir], (p) => events.push(p));
  try {
    for (let i = 1; i <= 4; i++) {
      events.length = 0;
      replace(join(dir, 'a.yaml'), String(i));
      await seen(events, 'a.yaml');
    }
  } finally {
    w.close();
  }
});

test('subdirectories, including ones created after the watch started', async () => {
  const dir = join(root, 'd2');
  mkdirSync(join(dir, 'old'), { recursive: true });
  const events: string[] = [];
  const w = watchConfigPaths([dir], (p) => events.push(p));
  try {
    replace(join(dir, 'old', 'x.yaml'), '1');
    await seen(events, join('old', 'x.yaml'));
    mkdirSync(join(dir, 'new'));
    await seen(events, 'new');
    events.length = 0;
    replace(join(dir, 'new', 'y.yaml'), '1');
    await seen(events, join('new', 'y.yaml'));
    replace(join(dir, 'new', 'y.yaml'), '2');
    events.length = 0;
    replace(join(dir, 'new', 'y.yaml'), '3');
    await seen(events, join('new', 'y.yaml'));
  } finally {
    w.close();
  }
});

test('single files: only the named files, each replaced repeatedly; close() stops events', async () => {
  const dir = join(root, 'd3');
  mkdirSync(dir);
  for (const f of ['a.yaml', 'b.yaml', 'c.yaml']) writeFileSync(join(dir, f), '0');
  const events: string[] = [];
  const w = watchConfigPaths([join(dir, 'a.yaml'), join(dir, 'b.yaml')], (p) => events.push(p));
  for (let i = 1; i <= 3; i++) {
    events.length = 0;
    replace(join(dir, 'a.yaml'), String(i));
    replace(join(dir, 'b.yaml'), String(i));
    await seen(events, 'a.yaml');
    await seen(events, 'b.yaml');
  }
  events.length = 0;
  writeFileSync(join(dir, 'c.yaml'), '1');
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(events, [], 'a file that is not watched makes no event');
  w.close();
  writeFileSync(join(dir, 'a.yaml'), '9');
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(events, [], 'no events after close()');
});

test('debounceBursts: one run per burst after the quiet time; a burst that never pauses still runs at the cap; cancel drops it', async () => {
  let runs = 0;
  const d = debounceBursts(() => runs++, 30, 120);
  for (let i = 0; i < 3; i++) {
    d.trigger();
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal(runs, 0, 'not while the burst goes on');
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(runs, 1, 'once after the burst settled');
  // Events every 10 ms never leave 30 ms of quiet: the 120 ms cap makes it run anyway.
  const start = performance.now();
  while (runs === 1 && performance.now() - start < 1000) {
    d.trigger();
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(runs, 2, 'the cap ran the endless burst');
  d.trigger();
  d.cancel();
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(runs, 2, 'a cancelled run does not happen');
});
