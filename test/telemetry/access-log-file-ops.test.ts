/**
 * An access-log file through what happens to files on a long-running host: logrotate's default
 * rotation (rename, then a new file at the path), the log's directory deleted and made again, a
 * write that fails (the same path as a full disk: the line is dropped, the file tried again a
 * second later), a FIFO that nobody reads (must not hold `close()`), and lines that pile up
 * faster than the file takes them (bounded). Time moves on a ManualClock.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import diagnostics from 'node:diagnostics_channel';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import { createMesh } from '../../src/index.ts';
import { MAX_BUFFERED_BYTES, REOPEN_CHECK_MS, RETRY_MS } from '../../src/telemetry/access-log/file-log.ts';
import { Writers } from '../../src/telemetry/access-log/writers.ts';
import { until } from '../helpers/access-log.ts';
import { call, serviceEntry, startUpstream } from '../helpers/upstreams.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-file-ops-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const lines = (path: string): string[] => (existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter((l) => l !== '') : []);

function setup(name: string) {
  const clock = new ManualClock(1_000_000);
  const warnings: string[] = [];
  const writers = new Writers({ warn: (m) => warnings.push(m) }, clock);
  const path = join(dir, name);
  const w = writers.for(path);
  const idle = async () => writers.file(path)?.idle();
  return { clock, warnings, writers, path, w, idle };
}

test('logrotate create: after the rename, lines go to the new file at the path, not to the renamed one', async () => {
  const { clock, writers, path, w, idle } = setup('rotate.log');
  w.write('a\n');
  await idle();
  renameSync(path, `${path}.1`);
  w.write('b\n'); // still the open file: its check is not due
  await idle();
  clock.advance(REOPEN_CHECK_MS);
  w.write('c\n'); // the check is due: it starts, the line goes to the open file
  await idle();
  w.write('d\n');
  await idle();
  assert.deepEqual(lines(`${path}.1`), ['a', 'b', 'c']);
  assert.deepEqual(lines(path), ['d']);
  await writers.close();
});

test('the log directory deleted: once it exists again, lines are written there (dropped meanwhile, warned once)', async () => {
  const { clock, warnings, writers, w, idle } = setup('gone/access.log');
  const sub = join(dir, 'gone');
  mkdirSync(sub);
  const path = join(sub, 'access.log');
  w.write('a\n');
  await idle();
  rmSync(sub, { recursive: true });
  clock.advance(REOPEN_CHECK_MS);
  w.write('b\n'); // to the deleted file; the check finds no file at the path
  await idle();
  for (const l of ['c\n', 'd\n', 'e\n']) {
    w.write(l); // opening fails (no directory): dropped, and tried again only after RETRY_MS
    await idle();
  }
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0] as string, /access log .*gone\/access\.log: ENOENT.*dropped until it takes them again/);
  mkdirSync(sub);
  w.write('f\n'); // before RETRY_MS: still dropped
  await idle();
  assert.equal(existsSync(path), false);
  clock.advance(RETRY_MS);
  w.write('g\n');
  await idle();
  w.write('h\n');
  await idle();
  assert.deepEqual(lines(path), ['g', 'h']);
  assert.equal(warnings.length, 2, warnings.join('\n'));
  assert.match(warnings[1] as string, /written again; 4 lines dropped/);
  await writers.close();
});

test('a path that cannot be written at first is tried again, not given up for good', async () => {
  const { clock, warnings, writers, w, idle } = setup('later/access.log');
  const path = join(dir, 'later', 'access.log');
  w.write('a\n');
  await idle();
  assert.equal(warnings.length, 1);
  mkdirSync(join(dir, 'later'));
  clock.advance(RETRY_MS);
  w.write('b\n');
  await idle();
  assert.deepEqual(lines(path), ['b']);
  await writers.close();
});

test('a FIFO that no process reads: lines are dropped with a warning saying so, and close() does not wait for a reader', { timeout: 20_000 }, async () => {
  const { warnings, writers, path, w, idle } = setup('fifo.log');
  execFileSync('mkfifo', [path]);
  w.write('a\n');
  await idle();
  w.write('b\n');
  await writers.close();
  assert.equal(warnings.length, 1);
  assert.match(warnings[0] as string, /ENXIO.*a FIFO that no process reads/);
});

test('lines that pile up faster than the file takes them are bounded', async () => {
  const { writers, path, w, idle } = setup('pile.log');
  const line = `${'x'.repeat(1023)}\n`;
  // Written in one turn of the event loop: the file is not even open yet, so everything waits.
  for (let i = 0; i < 3 * (MAX_BUFFERED_BYTES / 1024); i++) w.write(line);
  await idle();
  assert.equal(statSync(path).size, MAX_BUFFERED_BYTES);
  assert.equal(writers.file(path)?.dropped, 2 * (MAX_BUFFERED_BYTES / 1024));
  await writers.close();
});

test('copytruncate: after the file is truncated, the next line is at its start (appending: no hole of zeros)', async () => {
  const { writers, path, w, idle } = setup('truncate.log');
  w.write('a\n');
  await idle();
  execFileSync('truncate', ['-s', '0', path]);
  w.write('b\n');
  await idle();
  assert.equal(readFileSync(path, 'utf8'), 'b\n');
  await writers.close();
});

test('lines a file drops are counted by reason, for its provider (meshlet_access_log_dropped_total)', async () => {
  const clock = new ManualClock(1_000_000);
  const writers = new Writers({ warn: () => undefined }, clock);
  const reasons: string[] = [];
  const w = writers.for(join(dir, 'missing-dir', 'access.log'), (r) => reasons.push(r));
  w.write('a\n'); // handed over; opening fails: counted when it does
  await writers.file(join(dir, 'missing-dir', 'access.log'))?.idle();
  w.write('b\n');
  w.write('c\n');
  assert.deepEqual(reasons, ['write-failed', 'write-failed', 'write-failed']);
  const pile = writers.for(join(dir, 'pile-count.log'), (r) => reasons.push(r));
  const line = `${'x'.repeat(1023)}\n`;
  for (let i = 0; i <= MAX_BUFFERED_BYTES / 1024; i++) pile.write(line);
  assert.deepEqual(reasons.slice(3), ['buffer-full']);
  await writers.close();
});

test('through a mesh: a file log that cannot be written publishes its drops on meshlet:access-log:dropped', async () => {
  const up = await startUpstream('ratings');
  const clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
  const seen: { provider: string; reason: string; count: number }[] = [];
  const warnings: string[] = [];
  const onDropped = (m: unknown) => seen.push(m as { provider: string; reason: string; count: number });
  diagnostics.subscribe('meshlet:access-log:dropped', onDropped);
  const mesh = await createMesh({
    service: 'reviews',
    clock,
    logger: { warn: (m: string) => warnings.push(m) },
    telemetry: { accessLog: { file: join(dir, 'no-such-dir', 'access.log') } },
    config: [serviceEntry('ratings', 'ratings.default.svc.cluster.local', 9080, [{ port: up.port }])],
  });
  try {
    assert.equal((await call(mesh, 'http://ratings.default.svc.cluster.local:9080/')).status, 200);
    await until(() => warnings.some((w) => w.includes('no-such-dir/access.log: ENOENT')), 'the open fails');
    assert.equal((await call(mesh, 'http://ratings.default.svc.cluster.local:9080/')).status, 200);
    assert.deepEqual(
      seen.map((m) => [m.provider, m.reason, m.count]),
      [
        ['(meshConfig)', 'write-failed', 1], // the line whose open failed
        ['(meshConfig)', 'write-failed', 1], // the next, within the second before it is tried again
      ],
    );
  } finally {
    diagnostics.unsubscribe('meshlet:access-log:dropped', onDropped);
    await mesh.close();
    await up.close();
  }
});
