import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Metadata } from '@grpc/grpc-js';
import type { Headers } from '../../core/handler.ts';
import { grpcJs } from './grpc-js.ts';
import type { WireMetadata } from './wire-metadata.ts';
import { answerMetadataOf, callHeadersOf, decodeGrpcMessage, encodeGrpcMessage, grpcTimeout, intoHeaders, requestMetadataOf, responseHeadersOf, setGrpcTimeout, statusTrailersOf } from './metadata.ts';

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

describe('grpc-timeout (at most 8 digits, rounded up, in the smallest unit that fits; at most 2147483 s)', () => {
  const rows: [ms: number, wire: string][] = [
    [1, '1m'],
    [0.2, '1m'],
    [4999.5, '5000m'],
    [5000, '5000m'],
    [99_999_999, '99999999m'],
    [100_000_000, '100000S'],
    [2_147_483_000, '2147483S'],
    // Past 2^31-1 ms a grpc-js server's deadline wraps (it reads the header into a 32-bit integer): the longest it reads right.
    [2_147_483_001, '2147483S'],
    [30 * 86_400_000, '2147483S'],
    [99_999_999_001, '2147483S'],
    [1e20, '2147483S'],
  ];
  for (const [ms, wire] of rows) {
    it(`${ms} ms → ${wire}`, () => assert.equal(grpcTimeout(ms), wire));
  }
  it('the rows again in reverse (a kept text is never another value’s)', () => {
    for (const [ms, wire] of [...rows].reverse()) assert.equal(grpcTimeout(ms), wire);
  });
  it('set on an attempt’s metadata: one frozen list per repeated value, never another value’s', () => {
    const g = grpcJs();
    const list = (md: Metadata) => (md as unknown as { internalRepr: Map<string, unknown[]> }).internalRepr.get('grpc-timeout');
    const a = new g.Metadata();
    const b = new g.Metadata();
    const c = new g.Metadata();
    setGrpcTimeout(a, grpcTimeout(4999.2));
    setGrpcTimeout(b, grpcTimeout(4999.9));
    setGrpcTimeout(c, grpcTimeout(4998.5));
    assert.deepEqual(a.get('grpc-timeout'), ['5000m']);
    assert.equal(list(b), list(a));
    assert.ok(Object.isFrozen(list(a)));
    assert.throws(() => a.add('grpc-timeout', '1m'), TypeError);
    assert.deepEqual(c.get('grpc-timeout'), ['4999m']);
    assert.deepEqual(b.get('grpc-timeout'), ['5000m']);
  });
});

describe('metadata into headers (grpc-js’s store read directly, as toHttp2Headers gives it)', () => {
  const g = grpcJs();
  /** What toHttp2Headers makes of the metadata, as the headers the mesh works with. */
  const viaHttp2 = (md: Metadata): Record<string, string | string[]> => {
    const out: Record<string, string | string[]> = {};
    const wire = md.toHttp2Headers();
    for (const k of Object.keys(wire)) {
      const v = wire[k];
      if (v !== undefined) out[k] = Array.isArray(v) ? v.map(String) : String(v);
    }
    return out;
  };
  const rows: [name: string, fill: (md: Metadata) => void][] = [
    ['empty', () => undefined],
    ['one text value', (md) => md.set('x-user', 'alice')],
    ['upper-case name given (grpc-js lower-cases it)', (md) => md.set('X-Upper', 'v')],
    ['two values of one name', (md) => {
      md.add('x-multi', 'a');
      md.add('x-multi', 'b');
    }],
    ['a -bin value (base64)', (md) => md.set('x-trace-bin', Buffer.from([0, 1, 2, 250, 255]))],
    ['two -bin values', (md) => {
      md.add('x-two-bin', Buffer.from('ab'));
      md.add('x-two-bin', Buffer.from([0xff]));
    }],
    ['an empty value', (md) => md.set('x-empty', '')],
    ['a pseudo-header (left out)', (md) => {
      md.set(':authority', 'reviews');
      md.set('x-after', '1');
    }],
    ['gRPC’s own names (kept: callers strip them)', (md) => {
      md.set('content-type', 'application/grpc');
      md.set('grpc-encoding', 'identity');
    }],
  ];
  for (const [name, fill] of rows) {
    it(name, () => {
      const md = new g.Metadata();
      fill(md);
      const want = viaHttp2(md);
      const h = Object.create(null) as Headers;
      const also = Object.create(null) as Headers;
      const any = intoHeaders(md, h, also);
      assert.deepEqual({ ...h }, want);
      assert.equal(any, (md as unknown as { internalRepr: Map<string, unknown> }).internalRepr.size > 0);
      // The second copy has the very same values (an attempt compares them by identity).
      for (const k of Object.keys(h)) assert.equal(also[k], h[k]);
      assert.equal(Object.keys(also).length, Object.keys(h).length);
      assert.deepEqual({ ...responseHeadersOf(md) }, want);
      // A multi-valued header is a list of its own, not grpc-js's.
      for (const k of Object.keys(h)) if (Array.isArray(h[k])) assert.notEqual(h[k], (md as unknown as { internalRepr: Map<string, unknown> }).internalRepr.get(k));
      // A Metadata without grpc-js's store goes through toHttp2Headers, to the same result.
      const opaque = { toHttp2Headers: () => md.toHttp2Headers() } as unknown as Metadata;
      const h2 = Object.create(null) as Headers;
      intoHeaders(opaque, h2);
      assert.deepEqual({ ...h2 }, want);
    });
  }
  it('call headers: gRPC’s content-type and te added; `before` is the metadata alone', () => {
    const md = new g.Metadata();
    md.set('x-user', 'alice');
    const { headers, before } = callHeadersOf(md);
    assert.deepEqual({ ...headers }, { 'x-user': 'alice', 'content-type': 'application/grpc', te: 'trailers' });
    assert.deepEqual({ ...before }, { 'x-user': 'alice' });
    assert.deepEqual({ ...callHeadersOf(new g.Metadata()).before }, {});
  });
  it('status trailers: metadata, grpc-status, grpc-message (encoded); an OK status without metadata shares one frozen object per text', () => {
    const md = (entries: [string, string][]): Metadata => {
      const m = new g.Metadata();
      for (const [k, v] of entries) m.set(k, v);
      return m;
    };
    const rows: [name: string, metadata: Metadata, code: number, details: string, want: Record<string, string>][] = [
      ['OK', md([]), 0, 'OK', { 'grpc-status': '0', 'grpc-message': 'OK' }],
      ['OK without details', md([]), 0, '', { 'grpc-status': '0' }],
      ['OK with other details', md([]), 0, 'fine ✓', { 'grpc-status': '0', 'grpc-message': 'fine %E2%9C%93' }],
      ['OK with trailing metadata', md([['x-t', '1']]), 0, 'OK', { 'x-t': '1', 'grpc-status': '0', 'grpc-message': 'OK' }],
      ['an error', md([]), 14, 'down', { 'grpc-status': '14', 'grpc-message': 'down' }],
      ['an error with metadata', md([['x-why', 'w']]), 5, '', { 'x-why': 'w', 'grpc-status': '5' }],
    ];
    for (const [name, metadata, code, details, want] of rows) {
      const t = statusTrailersOf(metadata, code, details);
      assert.deepEqual({ ...t }, want, name);
      const again = statusTrailersOf(metadata, code, details);
      assert.deepEqual({ ...again }, want, name);
      const shared = code === 0 && Object.keys(metadata.getMap()).length === 0;
      assert.equal(again === t, shared, `${name}: shared`);
      assert.equal(Object.isFrozen(t), shared, `${name}: frozen`);
    }
  });
  it('answer metadata: gRPC’s own names and an upstream’s flags header taken out, the mesh’s flags set', () => {
    const rows: [name: string, entries: [string, string][], flags: string, want: Record<string, string>][] = [
      ['nothing', [], '', {}],
      ['app metadata kept', [['x-a', '1'], ['x-b', '2']], '', { 'x-a': '1', 'x-b': '2' }],
      ['gRPC’s names out, the content-type kept (as grpc-js gives it)', [['content-type', 'application/grpc'], ['grpc-encoding', 'identity'], ['x-a', '1'], ['grpc-accept-encoding', 'gzip'], ['grpc-status', '0']], '', { 'content-type': 'application/grpc', 'x-a': '1' }],
      ['an upstream’s flags dropped', [['x-meshlet-response-flags', 'UF'], ['x-a', '1']], '', { 'x-a': '1' }],
      ['the mesh’s flags replace an upstream’s', [['x-meshlet-response-flags', 'UF']], 'DI', { 'x-meshlet-response-flags': 'DI' }],
    ];
    for (const [name, entries, flags, want] of rows) {
      const md = new g.Metadata();
      for (const [k, v] of entries) md.set(k, v);
      const headers = responseHeadersOf(md);
      assert.deepEqual({ ...answerMetadataOf(md, headers, flags).toHttp2Headers() }, want, name);
      // A Metadata without grpc-js's store: the same result through its methods.
      const md2 = new g.Metadata();
      for (const [k, v] of entries) md2.set(k, v);
      const opaque = { remove: (k: string) => md2.remove(k), set: (k: string, v: string) => md2.set(k, v) } as unknown as Metadata;
      answerMetadataOf(opaque, headers, flags);
      assert.deepEqual({ ...md2.toHttp2Headers() }, want, `${name} (opaque)`);
    }
  });
  it('attempt metadata: the caller’s, with what the pipeline added or changed, the added written after the caller’s and changed per attempt only', () => {
    const caller = new g.Metadata();
    caller.set('x-user', 'alice');
    caller.set('x-peer', 'caller-value');
    const wire = (md: Metadata): Record<string, unknown> => ({ ...md.toHttp2Headers() });
    const attempt = (): Metadata => {
      const { headers, before } = callHeadersOf(caller);
      headers['x-peer'] = 'mesh-value';
      headers['x-added'] = 'a1';
      return requestMetadataOf(g, headers, caller, before);
    };
    const one = attempt();
    const two = attempt();
    const want = { 'x-user': 'alice', 'x-peer': 'mesh-value', 'x-added': 'a1' };
    assert.deepEqual(wire(one), want);
    assert.deepEqual(wire(two), want);
    // On the wire in the order grpc-js writes metadata: the caller's first, then the mesh's.
    assert.deepEqual(Object.keys(wire(one)), ['x-user', 'x-peer', 'x-added']);
    assert.deepEqual(one.get('x-added'), ['a1']);
    // Attempts that add the same share one (frozen) set of checked headers; another value makes its own.
    const beside = (md: Metadata) => (md as WireMetadata).wire;
    assert.equal(beside(two), beside(one));
    assert.ok(Object.isFrozen(beside(one)));
    const other = (() => {
      const { headers, before } = callHeadersOf(caller);
      headers['x-peer'] = 'mesh-value';
      headers['x-added'] = 'a9';
      return requestMetadataOf(g, headers, caller, before);
    })();
    assert.notEqual(beside(other), beside(one));
    assert.deepEqual(wire(other), { ...want, 'x-added': 'a9' });
    // Fewer, or more, added headers than the attempt before: each gets exactly its own.
    const adding = (extra: Record<string, string>): Metadata => {
      const { headers, before } = callHeadersOf(caller);
      Object.assign(headers, extra);
      return requestMetadataOf(g, headers, caller, before);
    };
    assert.deepEqual(wire(adding({ 'x-peer': 'mesh-value' })), { 'x-user': 'alice', 'x-peer': 'mesh-value' });
    assert.deepEqual(wire(adding({ 'x-peer': 'mesh-value', 'x-added': 'a9', 'x-more': 'm' })), { ...want, 'x-added': 'a9', 'x-more': 'm' });
    assert.deepEqual(wire(adding({ 'x-more': 'm', 'x-peer': 'mesh-value' })), { 'x-user': 'alice', 'x-peer': 'mesh-value', 'x-more': 'm' });
    assert.deepEqual(wire(adding({})), { 'x-user': 'alice', 'x-peer': 'caller-value' });
    // What grpc-js's copies on the way down hold.
    assert.deepEqual(wire(one.clone()), want);
    setGrpcTimeout(two, '99m');
    assert.deepEqual(wire(two.clone()), { ...want, 'grpc-timeout': '99m' });
    // add() after the mesh's value: both go; set() and remove() replace it — in that attempt only.
    one.add('x-added', 'a2');
    assert.deepEqual(wire(one)['x-added'], ['a1', 'a2']);
    const three = attempt();
    three.set('x-peer', 'other');
    three.remove('x-added');
    assert.deepEqual(wire(three), { 'x-user': 'alice', 'x-peer': 'other' });
    assert.deepEqual(three.get('x-peer'), ['other']);
    assert.deepEqual(wire(attempt()), want);
    assert.deepEqual(wire(two), { ...want, 'grpc-timeout': '99m' });
    // The caller's own metadata is never changed.
    assert.deepEqual(wire(caller), { 'x-user': 'alice', 'x-peer': 'caller-value' });
  });
  it('attempt metadata: an added header grpc-js would refuse (its name, or a value outside printable ASCII) is dropped, as grpc-js drops it; a new value per attempt is carried', () => {
    const caller = new g.Metadata();
    caller.set('x-user', 'alice');
    const wire = (md: Metadata): Record<string, unknown> => ({ ...md.toHttp2Headers() });
    const attempt = (added: Record<string, string>): Metadata => {
      const { headers, before } = callHeadersOf(caller);
      Object.assign(headers, added);
      return requestMetadataOf(g, headers, caller, before);
    };
    for (let i = 0; i < 3; i++) assert.deepEqual(wire(attempt({ 'x-request-id': `id-${i}`, 'x-peer': 'p' })), { 'x-user': 'alice', 'x-request-id': `id-${i}`, 'x-peer': 'p' });
    // A value new on every attempt rides as the attempt's own: the rest stays shared (one checked set, not one per call).
    const a = attempt({ 'x-request-id': 'id-a', 'x-peer': 'p' }) as WireMetadata;
    const b = attempt({ 'x-request-id': 'id-b', 'x-peer': 'p' }) as WireMetadata;
    assert.equal(a.wire, b.wire);
    assert.deepEqual([{ ...a.wire }, { ...a.own }, { ...b.own }], [{ 'x-peer': 'p' }, { 'x-request-id': 'id-a' }, { 'x-request-id': 'id-b' }]);
    assert.deepEqual(b.get('x-request-id'), ['id-b']);
    const c = b.clone() as WireMetadata;
    c.remove('x-request-id');
    assert.deepEqual([wire(c), wire(b)], [{ 'x-user': 'alice', 'x-peer': 'p' }, { 'x-user': 'alice', 'x-request-id': 'id-b', 'x-peer': 'p' }]);
    assert.deepEqual(wire(attempt({ 'x-request-id': 'caf\u00e9', 'x-peer': 'p' })), { 'x-user': 'alice', 'x-peer': 'p' });
    assert.deepEqual(wire(attempt({ 'x-ok': 'yes', 'x-bad': 'caf\u00e9', 'x-ctl': 'a\u0001b' })), { 'x-user': 'alice', 'x-ok': 'yes' });
    assert.deepEqual(wire(attempt({ 'x bad': 'v', 'x-ok': 'yes' })), { 'x-user': 'alice', 'x-ok': 'yes' });
    // What grpc-js itself accepts and refuses, for comparison.
    assert.deepEqual(wire(g.Metadata.fromHttp2Headers({ 'x-ok': 'yes', 'x-bad': 'caf\u00e9', 'x bad': 'v' })), { 'x-ok': 'yes' });
  });
});
