import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { writeFileAtomic } from './write-file-atomic.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-atomic-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('replaces the file whole, with the mode asked for, and leaves no temporary file', async () => {
  const file = join(dir, 'key.json');
  writeFileSync(file, 'old');
  await writeFileAtomic(file, 'new', { mode: 0o600 });
  assert.equal(readFileSync(file, 'utf8'), 'new');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(dir), ['key.json']);
});

test('a failed rename removes the temporary file and rethrows', async () => {
  const target = join(dir, 'a-directory');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(target, 'not-empty'), { recursive: true });
  await assert.rejects(writeFileAtomic(target, 'x'));
  assert.deepEqual(readdirSync(dir).sort(), ['a-directory', 'key.json']);
});
