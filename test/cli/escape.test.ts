/**
 * What the CLI does to text it did not write before printing it (escape.ts, output.ts): control
 * and invisible formatting characters become visible escapes; machine output keeps the same value.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { hasUnsafe, jsonPrintable, printable } from '../../src/cli/escape.ts';
import { formatDocument } from '../../src/cli/output.ts';

describe('printable', () => {
  const rows: [string, string, string][] = [
    ['plain text, unicode letters and emoji stay', 'reviews v2 — ünïcode ✓ 🚀', 'reviews v2 — ünïcode ✓ 🚀'],
    ['ESC (CSI colour, clear screen)', '\u001b[31mred\u001b[2J', '\\x1b[31mred\\x1b[2J'],
    ['OSC title with BEL', '\u001b]0;owned\u0007', '\\x1b]0;owned\\x07'],
    ['newline, carriage return, tab', 'a\nb\rc\td', 'a\\nb\\rc\\td'],
    ['NUL and DEL', 'a\u0000b\u007f', 'a\\x00b\\x7f'],
    ['C1 controls (8-bit CSI)', 'a\u009b31m', 'a\\x9b31m'],
    ['bidi overrides and isolates', 'x\u202eevil\u202c\u2066y\u2069', 'x\\u202eevil\\u202c\\u2066y\\u2069'],
    ['zero-width and BOM', 'a\u200bb\ufeff', 'a\\u200bb\\ufeff'],
    ['line and paragraph separators', 'a\u2028b\u2029c', 'a\\u2028b\\u2029c'],
  ];
  for (const [title, input, want] of rows) {
    it(title, () => {
      assert.equal(printable(input), want);
      assert.equal(hasUnsafe(input), input !== want);
    });
  }
});

describe('machine output keeps the value and escapes the characters', () => {
  const data = { reasons: ['\u001b[31mred\u009b\u202e', 'ok'], 'k\u202ey': 'v', n: 3, nested: { q: 'say "hi"\\ \u2028' } };
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for raw control characters in the output.
  const raw = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2028\u2029]/;
  it('json', () => {
    const text = formatDocument('json', data);
    assert.doesNotMatch(text, raw);
    assert.deepEqual(JSON.parse(text), data);
  });
  it('yaml', () => {
    const text = formatDocument('yaml', data);
    assert.doesNotMatch(text, raw);
    assert.deepEqual(parse(text), data);
    assert.match(text, /^n: 3$/m, 'strings without such characters are printed as before');
  });
  it('jsonPrintable leaves JSON that has none of them alone', () => {
    const text = JSON.stringify({ a: 'plain', b: [1, 2] }, null, 2);
    assert.equal(jsonPrintable(text), text);
  });
});
