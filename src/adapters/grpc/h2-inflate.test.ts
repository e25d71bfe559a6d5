import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deflateSync, gzipSync } from 'node:zlib';
import { type InflateFailure, inflateMessage } from './h2-inflate.ts';

const inflated = (enc: string, body: Buffer, max: number) => new Promise<{ failure: InflateFailure | undefined; length: number | undefined }>((resolve) => inflateMessage(enc, body, max, (failure, m) => resolve({ failure, length: failure === undefined ? m?.length : undefined })));

describe('inflateMessage: a compressed response message within the caller’s receive limit', () => {
  it('inflates up to the limit and refuses one byte more (RESOURCE_EXHAUSTED, tooLarge), gzip and deflate', async () => {
    assert.deepEqual(await inflated('gzip', gzipSync(Buffer.alloc(10)), 10), { failure: undefined, length: 10 });
    assert.deepEqual((await inflated('gzip', gzipSync(Buffer.alloc(11)), 10)).failure, { code: 8, details: 'Received message that decompresses to a size larger than 10', tooLarge: true });
    assert.deepEqual(await inflated('deflate', deflateSync(Buffer.alloc(10)), 10), { failure: undefined, length: 10 });
    assert.equal((await inflated('deflate', deflateSync(Buffer.alloc(11)), 10)).failure?.tooLarge, true);
  });

  it('a limit of 0 takes an empty message only (zlib’s least limit is 1 byte)', async () => {
    assert.deepEqual(await inflated('gzip', gzipSync(Buffer.alloc(0)), 0), { failure: undefined, length: 0 });
    assert.equal((await inflated('gzip', gzipSync(Buffer.alloc(1)), 0)).failure?.tooLarge, true);
  });

  it('a limit beyond the largest Buffer (any size, to grpc-js) inflates, and never throws', async () => {
    for (const max of [2 ** 53, 2 ** 60, Number.MAX_VALUE]) {
      assert.deepEqual(await inflated('gzip', gzipSync(Buffer.alloc(5)), max), { failure: undefined, length: 5 });
      assert.deepEqual(await inflated('deflate', deflateSync(Buffer.alloc(5)), max), { failure: undefined, length: 5 });
    }
  });

  it('a corrupt message, and an encoding that is not gzip or deflate, fail INTERNAL with grpc-js’s words', async () => {
    assert.deepEqual((await inflated('gzip', Buffer.from('not gzip'), -1)).failure, { code: 13, details: 'Failed to decompress gzip-encoded message', tooLarge: false });
    assert.deepEqual((await inflated('br', Buffer.from('x'), -1)).failure, { code: 13, details: 'Compression method not supported: br', tooLarge: false });
    assert.deepEqual((await inflated('', Buffer.from('x'), -1)).failure, { code: 13, details: 'Received compressed message but "grpc-encoding" header was identity', tooLarge: false });
  });
});
