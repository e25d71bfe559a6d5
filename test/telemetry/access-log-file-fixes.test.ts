/**
 * An access-log file's review findings: lines a failing file drops are all counted (one tick's
 * lines are one write), a FIFO whose reader falls behind keeps its reader (the lines wait,
 * bounded, instead of the write failing with EAGAIN), and a file a reload stopped using is closed
 * (also a straggler's line to it: written, then closed).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import { channels } from '../../src/core/observe.ts';
import { createMesh } from '../../src/index.ts';
import { AccessLogger } from '../../src/telemetry/access-log/access-logger.ts';
import { CLOSE_BOUND_MS, MAX_BUFFERED_BYTES, RETRY_MS } from '../../src/telemetry/access-log/file-log.ts';
import { LATE_CLOSE_MS, Writers } from '../../src/telemetry/access-log/writers.ts';
import { inboundEnd, telemetry, until } from '../helpers/access-log.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-file-fixes-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** How many of this process's file descriptors are open on `path`. */
const fdsOn = (path: string): number =>
  readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false;
    }
  }).length;


test('100 lines written in one tick to a file that cannot be opened: all 100 are counted, and the warning says so', async () => {
  const clock = new ManualClock(1_000_000);
  const warnings: string[] = [];
  const writers = new Writers({ warn: (m) => warnings.push(m) }, clock);
  const path = join(dir, 'missing', 'access.log');
  const dropped: [string, number][] = [];
  const w = writers.for(path, (reason, n) => dropped.push([reason, n]));
  for (let i = 0; i < 100; i++) w.write(`line ${i}\n`);
  await writers.file(path)?.idle();
  assert.equal(dropped.reduce((sum, [, n]) => sum + n, 0), 100, JSON.stringify(dropped));
  assert.ok(dropped.every(([r]) => r === 'write-failed'));
  assert.equal(writers.file(path)?.dropped, 100);
  execFileSync('mkdir', [join(dir, 'missing')]);
  clock.advance(RETRY_MS);
  w.write('again\n');
  await writers.file(path)?.idle();
  assert.match(warnings.at(-1) as string, /written again; 100 lines dropped/);
  await writers.close();
});

test('a FIFO whose reader falls behind (the pipe full): the lines wait and the reader keeps the pipe', { timeout: 20_000 }, async () => {
  const path = join(dir, 'slow.fifo');
  execFileSync('mkfifo', [path]);
  // The reader: opened non-blocking (the test does not wait for a writer), and not read yet.
  const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  // Another writer fills the pipe first, so meshlet's first write meets a full pipe.
  const filler = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
  const block = Buffer.alloc(4096, 'f');
  let filled = 0;
  for (;;) {
    try {
      filled += writeSync(filler, block);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') break;
      throw e;
    }
  }
  const warnings: string[] = [];
  const writers = new Writers({ warn: (m) => warnings.push(m) }, new ManualClock(1_000_000));
  const dropped: string[] = [];
  const w = writers.for(path, (reason) => dropped.push(reason));
  const line = `${'x'.repeat(199)}\n`;
  for (let i = 0; i < 1000; i++) w.write(line); // 200 KB
  try {
    // The file is open and the lines handed to it (the write tried), or the write failed.
    await until(() => warnings.length > 0 || (writers.file(path)?.pending ?? 0) > 0, 'the lines handed to the FIFO');
    assert.deepEqual(warnings, []);
    let got = 0;
    const buf = Buffer.alloc(65536);
    const expected = filled + 1000 * line.length;
    const drain = (): void => {
      for (;;) {
        let n = 0;
        try {
          n = readSync(reader, buf);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return;
          throw e;
        }
        if (n === 0) return;
        got += n;
      }
    };
    await until(() => {
      drain();
      return got >= expected || warnings.length > 0;
    }, 'the reader gets every line');
    assert.deepEqual(warnings, []);
    assert.deepEqual(dropped, []);
    assert.equal(got, expected);
    // meshlet still has the pipe open: the next line reaches the same reader.
    w.write('next\n');
    await until(() => {
      drain();
      return got === expected + 5;
    }, 'the next line');
  } finally {
    await writers.close();
    closeSync(filler);
    closeSync(reader);
  }
});

test('a FIFO whose reader reads nothing: at most 1 MiB waits, the rest is dropped as buffer-full', { timeout: 20_000 }, async () => {
  const path = join(dir, 'stuck.fifo');
  execFileSync('mkfifo', [path]);
  const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const writers = new Writers({ warn: () => undefined }, new ManualClock(1_000_000));
  let full = 0;
  const w = writers.for(path, (reason, n) => {
    if (reason === 'buffer-full') full += n;
  });
  const line = `${'x'.repeat(1023)}\n`;
  try {
    for (let i = 0; i < 2 * (MAX_BUFFERED_BYTES / 1024); i++) w.write(line);
    assert.equal(full, MAX_BUFFERED_BYTES / 1024);
  } finally {
    closeSync(reader);
    await writers.close();
  }
});

test('after a reload, the file the previous config wrote is closed a moment later (not kept open until mesh.close())', async () => {
  const mesh = await createMesh({ service: 'reviews', namespace: 'default', logger: { warn: () => undefined }, config: [] });
  const clock = new ManualClock(0);
  const a = join(dir, 'a.log');
  const b = join(dir, 'b.log');
  const logger = new AccessLogger({
    workload: mesh.identity,
    rootNamespace: 'istio-system',
    clock,
    logger: { warn: () => undefined },
    providers: [
      { name: 'a', envoyFileAccessLog: { path: a } },
      { name: 'b', envoyFileAccessLog: { path: b } },
    ],
    options: {},
  });
  try {
    logger.install([telemetry('logs', { accessLogging: [{ providers: [{ name: 'a' }] }] }) as never]);
    channels.inboundEnd.publish(inboundEnd(mesh));
    await until(() => existsSync(a) && readFileSync(a, 'utf8').endsWith('\n'), 'a line in a.log');
    assert.equal(fdsOn(a), 1);
    logger.install([telemetry('logs', { accessLogging: [{ providers: [{ name: 'b' }] }] }) as never]);
    channels.inboundEnd.publish(inboundEnd(mesh));
    await until(() => existsSync(b) && readFileSync(b, 'utf8').endsWith('\n'), 'a line in b.log');
    assert.equal(fdsOn(a), 1, 'kept a moment for the lines of requests that began before the reload');
    clock.advance(LATE_CLOSE_MS);
    await until(() => fdsOn(a) === 0, 'a.log closed');
    assert.equal(fdsOn(b), 1);
  } finally {
    await logger.close();
    await mesh.close();
  }
  assert.equal(fdsOn(b), 0);
});

test('a line for a log a reload stopped using (a request that ended after it) is written, and its file closed again', async () => {
  const clock = new ManualClock(1_000_000);
  const writers = new Writers({ warn: () => undefined }, clock);
  const old = join(dir, 'old.log');
  const w = writers.for(old);
  w.write('before\n');
  await until(() => fdsOn(old) === 1 && readFileSync(old, 'utf8') === 'before\n', 'the first line');
  writers.use([join(dir, 'new.log')]);
  clock.advance(LATE_CLOSE_MS);
  await until(() => fdsOn(old) === 0, 'old.log closed');
  w.write('late\n');
  await until(() => readFileSync(old, 'utf8') === 'before\nlate\n', 'the late line');
  assert.equal(fdsOn(old), 1, 'kept open a moment for more stragglers');
  clock.advance(LATE_CLOSE_MS);
  await until(() => fdsOn(old) === 0, 'old.log closed again');
  assert.equal(writers.file(old), undefined);
  await writers.close();
});

test('close() with lines the FIFO reader does not take: after the close bound they are dropped and the pipe closed', { timeout: 20_000 }, async () => {
  const path = join(dir, 'unread.fifo');
  execFileSync('mkfifo', [path]);
  const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const clock = new ManualClock(1_000_000);
  const writers = new Writers({ warn: () => undefined }, clock);
  const w = writers.for(path);
  const line = `${'x'.repeat(199)}\n`;
  for (let i = 0; i < 1000; i++) w.write(line); // 200 KB: more than the pipe holds
  try {
    await until(() => (writers.file(path)?.pending ?? 0) > 0, 'the lines handed to the FIFO');
    assert.equal(fdsOn(path), 2);
    const closed = writers.close();
    await new Promise((resolve) => setImmediate(resolve)); // close() is waiting for the lines to be written
    clock.advance(CLOSE_BOUND_MS);
    await closed;
    await until(() => fdsOn(path) === 1, "meshlet's end of the pipe closed");
  } finally {
    closeSync(reader);
  }
});

test("many stragglers' lines to a log a reload stopped using go out in order, through one open file", async () => {
  const clock = new ManualClock(1_000_000);
  const writers = new Writers({ warn: () => undefined }, clock);
  const old = join(dir, 'stragglers.log');
  const w = writers.for(old);
  w.write('before\n');
  await until(() => existsSync(old) && readFileSync(old, 'utf8') === 'before\n', 'the first line');
  writers.use([join(dir, 'other.log')]);
  clock.advance(LATE_CLOSE_MS);
  await until(() => fdsOn(old) === 0, 'closed after the reload');
  const lines = Array.from({ length: 300 }, (_, i) => `late ${i}\n`);
  for (const l of lines) w.write(l);
  assert.ok(fdsOn(old) <= 1, 'one file for all of them');
  await until(() => readFileSync(old, 'utf8').length === `before\n${lines.join('')}`.length, 'every late line');
  assert.equal(readFileSync(old, 'utf8'), `before\n${lines.join('')}`);
  clock.advance(LATE_CLOSE_MS);
  await until(() => fdsOn(old) === 0, 'closed after the last straggler');
  await writers.close();
});

test('lines written just before and just after a reload that stops using a file land in it in order, through the one open file', async () => {
  const clock = new ManualClock(1_000_000);
  const writers = new Writers({ warn: () => undefined }, clock);
  const path = join(dir, 'across.log');
  const w = writers.for(path);
  const lines = Array.from({ length: 200 }, (_, i) => `line ${i}\n`);
  for (const l of lines.slice(0, 100)) w.write(l);
  writers.use([join(dir, 'elsewhere.log')]);
  for (const l of lines.slice(100)) w.write(l);
  await until(() => existsSync(path) && readFileSync(path, 'utf8').length === lines.join('').length, 'every line');
  assert.equal(readFileSync(path, 'utf8'), lines.join(''));
  assert.ok(fdsOn(path) <= 1);
  clock.advance(LATE_CLOSE_MS);
  await until(() => fdsOn(path) === 0, 'closed after the last line');
  await writers.close();
});
