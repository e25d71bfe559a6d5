import assert from 'node:assert/strict';
import { test } from 'node:test';
import { table } from './table.ts';

test('table: columns padded to their widest cell', () => {
  assert.equal(table(['NAME', 'X'], [['a', '1'], ['longer', '2']]), 'NAME     X\na        1\nlonger   2');
});

test('table: a few hundred thousand rows (Math.max over a spread of them overflowed the call stack)', () => {
  const rows = Array.from({ length: 300_000 }, (_, i) => [`n${i}`, 'x']);
  const out = table(['A', 'B'], rows);
  assert.equal(out.split('\n').length, 300_001);
  assert.ok(out.endsWith('n299999   x'));
});
