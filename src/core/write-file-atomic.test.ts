import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as fsPromises from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, test } from 'node:test';
import { type AtomicFileHandle, type AtomicWriteFs, writeFileAtomic } from './write-file-atomic.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-atomic-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A subdirectory of its own per test, so listings do not see other tests' files. */
function sub(name: string): string {
  const d = join(dir, name);
  mkdirSync(d);
  return d;
}

/** The real node:fs/promises, recording each call as `op name` (names relative to `root`). */
function recordingFs(root: string, fail: { op: string; code: string } | undefined = undefined): { fs: AtomicWriteFs; calls: string[] } {
  const calls: string[] = [];
  const name = (p: string) => (p === root ? '<dir>' : basename(p).startsWith('.') ? '<tmp>' : basename(p));
  const maybeFail = (op: string) => {
    if (fail?.op === op) throw Object.assign(new Error(`${op} failed (test)`), { code: fail.code });
  };
  const fs: AtomicWriteFs = {
    async open(path, flags, mode) {
      calls.push(`open ${name(path)} ${flags}`);
      maybeFail(`open ${name(path)}`);
      const h = await fsPromises.open(path, flags, mode);
      const handle: AtomicFileHandle = {
        async writeFile(data) {
          calls.push(`write ${name(path)}`);
          await h.writeFile(data);
        },
        async sync() {
          calls.push(`fsync ${name(path)}`);
          maybeFail(`fsync ${name(path)}`);
          await h.sync();
        },
        async close() {
          calls.push(`close ${name(path)}`);
          await h.close();
        },
      };
      return handle;
    },
    async rename(from, to) {
      calls.push(`rename ${name(from)} ${name(to)}`);
      await fsPromises.rename(from, to);
    },
    async rm(path, options) {
      calls.push(`rm ${name(path)}`);
      await fsPromises.rm(path, options);
    },
  };
  return { fs, calls };
}

test('replaces the file whole, with the mode asked for, and leaves no temporary file', async () => {
  const d = sub('replace');
  const file = join(d, 'key.json');
  writeFileSync(file, 'old');
  await writeFileAtomic(file, 'new', { mode: 0o600 });
  assert.equal(readFileSync(file, 'utf8'), 'new');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(d), ['key.json']);
});

test('durable: the temporary file is fsynced before the rename, the directory after it', async () => {
  const d = sub('order');
  const file = join(d, 'cache.json');
  writeFileSync(file, 'old');
  const { fs, calls } = recordingFs(d);
  await writeFileAtomic(file, 'new', { fs });
  assert.deepEqual(calls, [
    'open <tmp> wx',
    'write <tmp>',
    'fsync <tmp>',
    'close <tmp>',
    'rename <tmp> cache.json',
    'open <dir> r',
    'fsync <dir>',
    'close <dir>',
  ]);
  assert.equal(readFileSync(file, 'utf8'), 'new');
  assert.deepEqual(readdirSync(d), ['cache.json']);
});

test('a failed fsync of the data never renames: the old file stays, the temporary file goes, the error is thrown', async () => {
  const d = sub('fsync-fails');
  const file = join(d, 'key.json');
  writeFileSync(file, 'old');
  const { fs, calls } = recordingFs(d, { op: 'fsync <tmp>', code: 'EIO' });
  await assert.rejects(writeFileAtomic(file, 'new', { fs }), { code: 'EIO' });
  assert.deepEqual(calls, ['open <tmp> wx', 'write <tmp>', 'fsync <tmp>', 'close <tmp>', 'rm <tmp>']);
  assert.equal(readFileSync(file, 'utf8'), 'old');
  assert.deepEqual(readdirSync(d), ['key.json']);
});

test('a directory that cannot be flushed here (EINVAL, EISDIR on Windows) is not an error; an I/O error is', async () => {
  for (const [op, code] of [
    ['fsync <dir>', 'EINVAL'],
    ['open <dir>', 'EISDIR'],
    ['open <dir>', 'EPERM'],
  ] as const) {
    const d = sub(`dir-${code}`);
    const file = join(d, 'f');
    const { fs } = recordingFs(d, { op, code });
    await writeFileAtomic(file, code, { fs });
    assert.equal(readFileSync(file, 'utf8'), code, `${op} ${code}`);
  }
  const d = sub('dir-eio');
  const file = join(d, 'f');
  const { fs, calls } = recordingFs(d, { op: 'fsync <dir>', code: 'EIO' });
  await assert.rejects(writeFileAtomic(file, 'x', { fs }), { code: 'EIO' });
  assert.equal(calls.at(-1), 'close <dir>', 'the directory handle is closed on failure too');
});

test('a failed rename removes the temporary file and rethrows', async () => {
  const d = sub('rename-fails');
  const target = join(d, 'a-directory');
  mkdirSync(join(target, 'not-empty'), { recursive: true });
  await assert.rejects(writeFileAtomic(target, 'x'));
  assert.deepEqual(readdirSync(d), ['a-directory']);
});
