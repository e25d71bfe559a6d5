/**
 * The CheckResponse decoder on hand-built bytes (the end-to-end tests use @grpc/proto-loader's
 * encoder, which never writes the odd cases): negative int32 codes, truncation, unknown fields of
 * every wire type, `append` present or absent, and how the provider applies each append action.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../../core/clock.ts';
import { decodeCheckResponse } from './ext-authz-grpc-wire.ts';
import { envoyExtAuthzGrpc, type UnaryCaller } from './ext-authz-grpc.ts';
import type { AuthzRequest } from './types.ts';

/** Protobuf writing, independent of the module under test. */
const varint = (n: bigint): number[] => {
  const out: number[] = [];
  let v = BigInt.asUintN(64, n);
  while (v > 0x7fn) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
};
const tag = (field: number, wire: number) => varint(BigInt((field << 3) | wire));
const int = (field: number, n: number | bigint) => [...tag(field, 0), ...varint(BigInt(n))];
const bytes = (field: number, b: number[]) => [...tag(field, 2), ...varint(BigInt(b.length)), ...b];
const str = (field: number, s: string) => bytes(field, [...Buffer.from(s)]);
const status = (code: number | bigint) => bytes(1, int(1, code));
/** HeaderValueOption: header{key, value, raw_value}, append (BoolValue) when given, append_action when given. */
const hvo = (key: string, value: string, o: { append?: boolean; action?: number; raw?: string } = {}) =>
  [
    ...bytes(1, [...str(1, key), ...str(2, value), ...(o.raw === undefined ? [] : str(3, o.raw))]),
    ...(o.append === undefined ? [] : bytes(2, o.append ? int(1, 1) : [])),
    ...(o.action === undefined ? [] : int(3, o.action)),
  ];
const buf = (...parts: number[][]) => Buffer.from(parts.flat());

describe('decodeCheckResponse', () => {
  it('reads negative status codes as negative (never as 0 = OK)', () => {
    for (const code of [-1, -7, -16, -2000, -2147483648]) assert.equal(decodeCheckResponse(buf(status(code))).code, code);
    assert.equal(decodeCheckResponse(buf(status(7))).code, 7);
    assert.equal(decodeCheckResponse(buf()).code, 0, 'no status: OK, as proto3 reads it');
  });

  it('skips unknown fields of every wire type, and refuses truncated or group-encoded input', () => {
    const unknown = [...int(9, 5), ...tag(10, 1), 1, 2, 3, 4, 5, 6, 7, 8, ...str(11, 'x'), ...tag(12, 5), 1, 2, 3, 4];
    assert.equal(decodeCheckResponse(buf(unknown, status(16))).code, 16);
    assert.throws(() => decodeCheckResponse(buf(status(7)).subarray(0, 3)), RangeError);
    assert.throws(() => decodeCheckResponse(buf(tag(9, 3))), RangeError);
    assert.throws(() => decodeCheckResponse(buf(tag(9, 1), [1, 2])), RangeError);
  });

  it('reads denied and ok answers; `append` absent, false or true; raw_value is not read', () => {
    const d = decodeCheckResponse(buf(status(7), bytes(2, [...bytes(1, int(1, 401)), ...bytes(2, hvo('a', '1')), ...str(3, 'no')])));
    assert.deepEqual(d.denied, { status: 401, headers: [{ key: 'a', value: '1', append: undefined, appendAction: 0 }], body: 'no' });
    const ok = decodeCheckResponse(
      buf(status(0), bytes(3, [...bytes(2, hvo('a', '1', { append: false })), ...bytes(2, hvo('b', '2', { append: true, raw: 'RAW' })), ...str(5, 'x-gone'), ...bytes(6, hvo('c', '3', { action: 1 }))])),
    );
    assert.deepEqual(ok.ok, {
      headers: [
        { key: 'a', value: '1', append: false, appendAction: 0 },
        { key: 'b', value: '2', append: true, appendAction: 0 },
      ],
      headersToRemove: ['x-gone'],
      responseHeadersToAdd: [{ key: 'c', value: '3', append: undefined, appendAction: 1 }],
    });
  });
});

describe('envoyExtAuthzGrpc applies answers as Envoy does', () => {
  const request: AuthzRequest = {
    method: 'GET',
    authority: 'httpbin:8000',
    path: '/',
    headers: { 'x-have': 'old', 'x-gone': 'g' },
    remoteAddress: '10.0.0.9',
    localPort: 8000,
    peer: undefined,
    requestPrincipal: undefined,
    claims: undefined,
  };
  /** A client whose authorizer answers `answer`. */
  const answering = (answer: Buffer) => (): UnaryCaller => ({
    makeUnaryRequest: ((...args: unknown[]) => {
      const cb = args[args.length - 1] as (e: null, v: Buffer) => void;
      queueMicrotask(() => cb(null, answer));
      return { cancel: () => undefined };
    }) as never,
  });
  const check = (answer: Buffer) => envoyExtAuthzGrpc({ service: 'authz', port: 9000 }, { client: answering(answer), clock: new ManualClock() })(request);

  it('a negative status denies', async () => {
    assert.equal((await check(buf(status(-1)))).allowed, false);
  });

  it('append absent: append_action decides (default: add a line); append true: append with ","; removals win', async () => {
    const ok = (...h: number[][]) => buf(status(0), bytes(3, h.flat()));
    const r = await check(
      ok(
        bytes(2, hvo('x-have', 'added')), // APPEND_IF_EXISTS_OR_ADD: a second line, read as "old, added"
        bytes(2, hvo('x-new', 'n', { action: 3 })), // OVERWRITE_IF_EXISTS: absent, nothing
        bytes(2, hvo('x-have2', 'v', { action: 1 })), // ADD_IF_ABSENT: added
        bytes(2, hvo('x-gone', 'back', { append: false })), // set, then removed below
        bytes(2, hvo('host', 'evil')), // never
        bytes(2, hvo('x-bad', 'a\r\nb: c')), // never
        str(5, 'x-gone'),
      ),
    );
    assert.ok(r.allowed);
    assert.deepEqual({ ...r.headersToUpstream }, { 'x-have': 'old, added', 'x-have2': 'v' });
    assert.deepEqual(r.headersToRemove, ['x-gone']);
    const appended = await check(ok(bytes(2, hvo('x-have', 'more', { append: true }))));
    assert.ok(appended.allowed);
    assert.deepEqual({ ...appended.headersToUpstream }, { 'x-have': 'old,more' });
  });

  it('a denied status that is unset or not a final status is 403', async () => {
    for (const code of [0, 100, 103, 600]) {
      const r = await check(buf(status(7), bytes(2, bytes(1, int(1, code)))));
      assert.ok(!r.allowed && r.status === 403, String(code));
    }
    const r = await check(buf(status(7), bytes(2, bytes(1, int(1, 429)))));
    assert.ok(!r.allowed && r.status === 429);
  });
});
