import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Headers } from '../../core/handler.ts';
import { normalizeHeaders } from '../../core/headers.ts';
import { clearB3, clearW3c, extract, inject, parseB3Multi, parseB3Single, parseTraceparent, type PropagationFormat, TRACE_HEADERS } from './propagation.ts';

const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const S = '00f067aa0ba902b7';

describe('W3C traceparent', () => {
  const rows: [string, string, { traceId: string; spanId: string; sampled: boolean } | undefined][] = [
    ['sampled', `00-${T}-${S}-01`, { traceId: T, spanId: S, sampled: true }],
    ['not sampled', `00-${T}-${S}-00`, { traceId: T, spanId: S, sampled: false }],
    ['upper case is read', `00-${T.toUpperCase()}-${S.toUpperCase()}-01`, { traceId: T, spanId: S, sampled: true }],
    ['other flag bits: only bit 0 is sampled', `00-${T}-${S}-02`, { traceId: T, spanId: S, sampled: false }],
    ['a future version with more fields', `01-${T}-${S}-01-extra`, { traceId: T, spanId: S, sampled: true }],
    ['version 00 with more fields: invalid', `00-${T}-${S}-01-extra`, undefined],
    ['version ff: invalid', `ff-${T}-${S}-01`, undefined],
    ['all-zero trace id', `00-${'0'.repeat(32)}-${S}-01`, undefined],
    ['all-zero span id', `00-${T}-${'0'.repeat(16)}-01`, undefined],
    ['short trace id', `00-${T.slice(1)}-${S}-01`, undefined],
    ['not hex', `00-${T.replace('4', 'g')}-${S}-01`, undefined],
    ['garbage', 'hello', undefined],
  ];
  for (const [name, value, want] of rows) {
    it(name, () => {
      const got = parseTraceparent(value, undefined);
      assert.deepEqual(got === undefined ? undefined : { traceId: got.traceId, spanId: got.spanId, sampled: got.sampled }, want);
    });
  }
  it('keeps tracestate with it', () => {
    assert.equal(parseTraceparent(`00-${T}-${S}-01`, 'congo=t61rcWkgMzE')?.traceState, 'congo=t61rcWkgMzE');
  });
});

describe('B3', () => {
  const single: [string, string, { traceId: string; spanId: string; sampled: boolean | undefined } | undefined][] = [
    ['ids and sampled', `${T}-${S}-1`, { traceId: T, spanId: S, sampled: true }],
    ['ids, not sampled, parent', `${T}-${S}-0-${S}`, { traceId: T, spanId: S, sampled: false }],
    ['debug', `${T}-${S}-d`, { traceId: T, spanId: S, sampled: true }],
    ['ids only: deferred', `${T}-${S}`, { traceId: T, spanId: S, sampled: undefined }],
    ['a 64-bit trace id is padded', `${S}-${S}-1`, { traceId: `${'0'.repeat(16)}${S}`, spanId: S, sampled: true }],
    ['a decision alone is not a context', '1', undefined],
    ['a bad sampling state', `${T}-${S}-x`, undefined],
    ['a bad parent', `${T}-${S}-1-zz`, undefined],
  ];
  for (const [name, value, want] of single) {
    it(`b3: ${name}`, () => {
      const got = parseB3Single(value);
      assert.deepEqual(got === undefined ? undefined : { traceId: got.traceId, spanId: got.spanId, sampled: got.sampled }, want);
    });
  }
  const multi: [string, Headers, boolean | undefined | 'none'][] = [
    ['sampled 1', { 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-sampled': '1' }, true],
    ['sampled true', { 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-sampled': 'true' }, true],
    ['sampled 0', { 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-sampled': '0' }, false],
    ['debug flag', { 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-flags': '1' }, true],
    ['no sampling state: deferred', { 'x-b3-traceid': T, 'x-b3-spanid': S }, undefined],
    ['no span id', { 'x-b3-traceid': T }, 'none'],
    ['a bad span id', { 'x-b3-traceid': T, 'x-b3-spanid': 'xyz' }, 'none'],
  ];
  for (const [name, h, want] of multi) {
    it(`x-b3-*: ${name}`, () => {
      const got = parseB3Multi(h);
      if (want === 'none') assert.equal(got, undefined);
      else assert.equal(got?.sampled, want);
    });
  }
});

describe('extract: the configured formats first, then the others', () => {
  const h: Headers = { traceparent: `00-${T}-${S}-01`, 'x-b3-traceid': '1'.repeat(32), 'x-b3-spanid': '2'.repeat(16), 'x-b3-sampled': '0' };
  const rows: [readonly PropagationFormat[], string][] = [
    [['w3c'], T],
    [['b3'], '1'.repeat(32)],
    [['b3', 'w3c'], '1'.repeat(32)],
    [['b3-single'], T],
  ];
  for (const [formats, traceId] of rows) {
    it(formats.join('+'), () => assert.equal(extract(h, formats)?.traceId, traceId));
  }
  it('a malformed configured header falls back to another format', () => {
    assert.equal(extract({ traceparent: 'bad', b3: `${T}-${S}-1` }, ['w3c'])?.format, 'b3-single');
  });
  it('nothing: undefined', () => assert.equal(extract({}, ['w3c']), undefined));
});

describe('clearW3c and clearB3', () => {
  it('together remove every header of every format, and nothing else', () => {
    const h: Headers = { 'x-request-id': 'r', accept: '*/*' };
    for (const k of TRACE_HEADERS) h[k] = 'stale';
    clearW3c(h);
    clearB3(h);
    assert.deepEqual(h, { 'x-request-id': 'r', accept: '*/*' });
  });
  it('on a header object made as the mesh makes it (inherits nothing)', () => {
    const h = normalizeHeaders(Object.fromEntries(TRACE_HEADERS.map((k) => [k, 'stale'])));
    clearW3c(h);
    clearB3(h);
    assert.deepEqual(Object.keys(h), []);
  });
});

describe('inject', () => {
  const c = { traceId: T, spanId: S, parentSpanId: '1'.repeat(16), sampled: true, traceState: 'a=b' };
  // Each format's own headers are replaced; the others' are left as the app wrote them, as Envoy's
  // tracers set only theirs (OpenTelemetry's traceparent/tracestate, Zipkin's x-b3-*).
  it('w3c: traceparent and tracestate replaced, B3 headers left', () => {
    const h: Headers = { traceparent: 'stale', tracestate: 'stale=1', b3: 'other', 'x-b3-traceid': 'other' };
    inject(h, c, ['w3c']);
    assert.deepEqual(h, { b3: 'other', 'x-b3-traceid': 'other', traceparent: `00-${T}-${S}-01`, tracestate: 'a=b' });
  });
  it('b3 multi, not sampled: B3 headers replaced (the single one too), W3C left', () => {
    const h: Headers = { traceparent: 'other', b3: 'stale', 'x-b3-flags': '1' };
    inject(h, { ...c, sampled: false }, ['b3']);
    assert.deepEqual(h, { traceparent: 'other', 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-parentspanid': '1'.repeat(16), 'x-b3-sampled': '0' });
  });
  it('b3 single and w3c together', () => {
    const h: Headers = {};
    inject(h, { ...c, parentSpanId: undefined, traceState: undefined }, ['b3-single', 'w3c']);
    assert.deepEqual(h, { b3: `${T}-${S}-1`, traceparent: `00-${T}-${S}-01` });
  });
});
