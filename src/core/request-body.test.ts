import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hasBody, sanitizeUtf8 } from './request-body.ts';

describe('sanitizeUtf8 (Envoy MessageUtil::sanitizeUtf8String: each byte outside a well-formed sequence becomes "!")', () => {
  const rows: [string, number[], string][] = [
    ['ASCII', [0x61, 0x62], 'ab'],
    ['two-, three- and four-byte sequences', [0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80], 'é€😀'],
    ['a lone continuation byte', [0x61, 0x80, 0x62], 'a!b'],
    ['an overlong encoding (C0 80): both bytes', [0xc0, 0x80], '!!'],
    ['a surrogate (ED A0 80)', [0xed, 0xa0, 0x80], '!!!'],
    ['above U+10FFFF (F4 90 80 80)', [0xf4, 0x90, 0x80, 0x80], '!!!!'],
    ['a sequence cut short at the end', [0x61, 0xe2, 0x82], 'a!!'],
    ['0xFF', [0xff, 0x41], '!A'],
  ];
  for (const [name, bytes, want] of rows) {
    it(name, () => {
      const out = sanitizeUtf8(Buffer.from(bytes));
      assert.equal(out, want);
      // The length in bytes stays.
      assert.equal(Buffer.byteLength(out), bytes.length);
    });
  }
});

describe('hasBody (an HTTP/1.1 request has a body to wait for)', () => {
  it('content-length above 0 or transfer-encoding', () => {
    assert.equal(hasBody({ 'content-length': '5' }), true);
    assert.equal(hasBody({ 'transfer-encoding': 'chunked' }), true);
    assert.equal(hasBody({ 'content-length': '0' }), false);
    assert.equal(hasBody({}), false);
    assert.equal(hasBody({ 'content-length': 'x' }), false);
  });
});
