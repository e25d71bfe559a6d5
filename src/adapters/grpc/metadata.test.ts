import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeGrpcMessage, encodeGrpcMessage, grpcTimeout } from './metadata.ts';

describe('grpc-message encoding (gRPC over HTTP/2: percent-encoded outside printable ASCII)', () => {
  const rows: [details: string, wire: string][] = [
    ['OK', 'OK'],
    ['upstream request timeout', 'upstream request timeout'],
    ['', ''],
    ['50% done', '50%25 done'],
    ['héllo', 'h%C3%A9llo'],
    ['a\nb\tc', 'a%0Ab%09c'],
    ['~ !"#$&\'()*+,-./:;<=>?@[\\]^_`{|}', '~ !"#$&\'()*+,-./:;<=>?@[\\]^_`{|}'],
    ['\u007f', '%7F'],
  ];
  for (const [details, wire] of rows) {
    it(`${JSON.stringify(details)} ↔ ${JSON.stringify(wire)}`, () => {
      assert.equal(encodeGrpcMessage(details), wire);
      assert.equal(decodeGrpcMessage(wire), details);
    });
  }
  it('a value that does not decode is left as it is; lists take the first', () => {
    assert.equal(decodeGrpcMessage('100%'), '100%');
    assert.equal(decodeGrpcMessage('%E0%A4%A'), '%E0%A4%A');
    assert.equal(decodeGrpcMessage(['a%20b', 'c']), 'a b');
    assert.equal(decodeGrpcMessage(undefined), '');
  });
});

describe('grpc-timeout (at most 8 digits, rounded up, in the smallest unit that fits)', () => {
  const rows: [ms: number, wire: string][] = [
    [1, '1m'],
    [0.2, '1m'],
    [4999.5, '5000m'],
    [5000, '5000m'],
    [99_999_999, '99999999m'],
    [100_000_000, '100000S'],
    [99_999_999_000, '99999999S'],
    [99_999_999_001, '1666667M'],
    [6e12, '1666667H'],
    [1e20, '99999999H'],
  ];
  for (const [ms, wire] of rows) {
    it(`${ms} ms → ${wire}`, () => assert.equal(grpcTimeout(ms), wire));
  }
});
