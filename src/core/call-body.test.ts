import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ReplayableBody } from './body.ts';
import { callBody } from './call-body.ts';

async function text(it: AsyncIterable<Uint8Array>): Promise<string> {
  let s = '';
  for await (const c of it) s += Buffer.from(c).toString();
  return s;
}

describe('callBody: what undici.request accepts, kept for retries and mirrors', () => {
  test('strings, bytes and none as they are; an ArrayBuffer as a Buffer over it', () => {
    const h = {};
    assert.equal(callBody('x', h, 10), 'x');
    assert.equal(callBody(undefined, h, 10), undefined);
    const u = new Uint8Array(2);
    assert.equal(callBody(u, h, 10), u);
    const ab = new ArrayBuffer(3);
    const b = callBody(ab, h, 10) as Buffer;
    assert.ok(Buffer.isBuffer(b));
    assert.equal(b.buffer, ab);
  });

  test('a Blob: recorded, with the content-length and content-type undici sends (unless set)', async () => {
    const h: Record<string, unknown> = {};
    const b = callBody(new Blob(['hello'], { type: 'text/x' }), h, 10);
    assert.ok(b instanceof ReplayableBody);
    assert.deepEqual(h, { 'content-length': '5', 'content-type': 'text/x' });
    assert.equal(await text(b.attempt()), 'hello');
    const own: Record<string, unknown> = { 'content-type': 'text/mine' };
    callBody(new Blob(['hi']), own, 10);
    assert.deepEqual(own, { 'content-type': 'text/mine', 'content-length': '2' });
  });

  test('a sync iterable is recorded like an async one; a FormData goes to undici as it is', async () => {
    const b = callBody(['ab', Buffer.from('cd')], {}, 10);
    assert.ok(b instanceof ReplayableBody);
    assert.equal(await text(b.attempt()), 'abcd');
    assert.equal(await text(b.attempt()), 'abcd');
    const fd = new FormData();
    assert.equal(callBody(fd, {}, 10), fd);
  });
});
