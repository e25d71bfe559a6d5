/**
 * An access-log file's review findings: lines a failing file drops are all counted (one tick's
 * lines are one write), a FIFO whose reader falls behind keeps its reader (the lines wait,
 * bounded, instead of the write failing with EAGAIN), and a file a reload stopped using is closed.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import { RETRY_MS } from '../../src/telemetry/access-log/file-log.ts';
import { Writers } from '../../src/telemetry/access-log/writers.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-file-fixes-'));
after(() => rmSync(dir, { recursive: true, force: true }));


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
