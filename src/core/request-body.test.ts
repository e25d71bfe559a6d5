import assert from 'node:assert/strict';
import * as streams from 'node:stream';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { bufferBody, hasBody, sanitizeUtf8 } from './request-body.ts';

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

describe('bufferBody: the body is put back as if unread', () => {
  // stream.isDisturbed (Node ≥ 16.8) is not in @types/node.
  const isDisturbed = (streams as unknown as { isDisturbed(s: unknown): boolean }).isDisturbed;
  /** A request-like stream: `complete` once its last chunk is written. */
  function body(chunks: string[]): PassThrough & { complete: boolean } {
    const s = Object.assign(new PassThrough(), { complete: false });
    for (const c of chunks) s.write(c);
    s.complete = true;
    s.end();
    return s;
  }

  it('the app reads every byte, and the stream reads as not yet read (readableDidRead, isDisturbed)', async () => {
    const s = body(['{"a":', '1}']);
    const got = await bufferBody(s, 100, false);
    assert.notEqual(got, 'too-large');
    assert.equal((got as { bytes: Buffer }).bytes.toString(), '{"a":1}');
    // Readers such as Hono's node adapter refuse a stream someone already read.
    assert.equal(s.readableDidRead, false);
    assert.equal(isDisturbed(s), false);
    const chunks: Buffer[] = [];
    for await (const c of s) chunks.push(c as Buffer);
    assert.equal(Buffer.concat(chunks).toString(), '{"a":1}');
  });

  it('a stream the app had already read stays read', async () => {
    const s = body(['ab', 'cd']);
    s.pause();
    assert.equal(s.read(2)?.toString(), 'ab');
    const got = await bufferBody(s, 100, false);
    assert.equal((got as { bytes: Buffer }).bytes.toString(), 'cd');
    assert.equal(s.readableDidRead, true);
  });
});
