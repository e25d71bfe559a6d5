import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeGrpcMessage, encodeGrpcMessage } from './metadata.ts';

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
