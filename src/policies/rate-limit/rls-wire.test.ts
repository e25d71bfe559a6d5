import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProtoReader, ProtoWriter } from '../../core/protobuf.ts';
import { decodeRateLimitResponse, encodeRateLimitRequest, xRateLimitHeaders } from './rls-wire.ts';

describe('rate limit service wire (envoy.service.ratelimit.v3)', () => {
  it("writes a descriptor's hits_addend as RateLimitDescriptor field 3, a UInt64Value (present even when 0)", () => {
    const one = (hits: number | undefined) => {
      const entries = [{ key: 'k', value: 'v' }];
      const b = encodeRateLimitRequest('d', [hits === undefined ? entries : Object.assign(entries, { hitsAddend: hits })]);
      // domain (0a 01 64), descriptors (12 len …): the descriptor's bytes after its entry (0a 06 0a 01 6b 12 01 76).
      return b.subarray(5 + 8).toString('hex');
    };
    assert.equal(one(undefined), '');
    assert.equal(one(7), '1a020807');
    assert.equal(one(0), '1a00');
  });

  it('writes the domain, each descriptor\'s entries in order, and leaves hits_addend out when 0', () => {
    const b = encodeRateLimitRequest('d', [[{ key: 'PATH', value: '/' }, { key: 'm', value: 'GET' }], [{ key: 'generic_key', value: 'x' }]]);
    const r = new ProtoReader(b);
    const seen: string[] = [];
    r.fields((f, w) => {
      if (f === 1) seen.push(`domain=${r.string()}`);
      else if (f === 2 && w === 2) {
        const d = r.sub();
        const entries: string[] = [];
        d.fields(() => {
          const e = d.sub();
          let kv = '';
          e.fields(() => {
            kv += `${kv === '' ? '' : '='}${e.string()}`;
            return true;
          });
          entries.push(kv);
          return true;
        });
        seen.push(entries.join(','));
      } else return false;
      return true;
    });
    assert.deepEqual(seen, ['domain=d', 'PATH=/,m=GET', 'generic_key=x']);
  });

  it('reads the overall code, statuses, both header lists and raw_body', () => {
    const w = new ProtoWriter();
    w.uint(1, 2);
    for (const [remaining, rpu, unit, name, reset] of [[3, 10, 1, '', 1], [0, 100, 2, 'per-path', 42]] as const) {
      const s = new ProtoWriter();
      s.uint(1, remaining === 0 ? 2 : 1);
      const l = new ProtoWriter();
      l.uint(1, rpu);
      l.uint(2, unit);
      l.string(3, name);
      s.message(2, l);
      s.uint(3, remaining);
      const d = new ProtoWriter();
      d.uint(1, reset);
      s.message(4, d);
      w.message(2, s);
    }
    const h = (k: string, v: string) => {
      const x = new ProtoWriter();
      x.string(1, k);
      x.string(2, v);
      return x;
    };
    w.message(3, h('X-Resp', 'a'));
    w.message(4, h('x-req', 'b'));
    w.string(5, 'slow down');
    const r = decodeRateLimitResponse(w.finish());
    assert.equal(r.overallCode, 2);
    assert.deepEqual(r.responseHeadersToAdd, [{ key: 'x-resp', value: 'a' }]);
    assert.deepEqual(r.requestHeadersToAdd, [{ key: 'x-req', value: 'b' }]);
    assert.equal(r.rawBody, 'slow down');
    // Envoy's XRateLimitHeaderUtils: the status with the fewest remaining, every limit's quota policy.
    assert.deepEqual({ ...xRateLimitHeaders(r.statuses) }, { 'x-ratelimit-limit': '100, 10;w=1, 100;w=60;name="per-path"', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '42' });
  });

  it('no status with a limit: no x-ratelimit headers', () => {
    assert.deepEqual({ ...xRateLimitHeaders([{ code: 1, limit: undefined, remaining: 0, resetSeconds: 0 }]) }, {});
  });
});
