import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../../core/clock.ts';
import type { DescriptorSettings, TokenBucketSettings } from '../../config/types/local-rate-limit.ts';
import { type Descriptor, type LimiterSettings, LocalRateLimiter } from './local-rate-limiter.ts';

const tb = (maxTokens: number, fillIntervalMs = 60_000, tokensPerFill = maxTokens): TokenBucketSettings => ({ maxTokens, tokensPerFill, fillIntervalMs });
const desc = (entries: Record<string, string>, bucket: TokenBucketSettings): DescriptorSettings => ({ entries: Object.entries(entries).map(([key, value]) => ({ key, value })), tokenBucket: bucket });
const d = (entries: Record<string, string>): Descriptor => Object.entries(entries).map(([key, value]) => ({ key, value }));

function limiter(s: Partial<LimiterSettings>, clock = new ManualClock(0)) {
  return new LocalRateLimiter({ tokenBucket: undefined, descriptors: [], alwaysConsumeDefaultTokenBucket: true, maxDynamicDescriptors: 20, ...s }, clock);
}

/** Runs requests; returns 'a' for allowed, 'r' for refused. */
function run(l: LocalRateLimiter, requests: readonly (readonly Descriptor[])[]): string {
  return requests.map((ds) => (l.requestAllowed(ds).allowed ? 'a' : 'r')).join('');
}

describe('LocalRateLimiter: Envoy\'s default bucket and descriptor buckets', () => {
  it('without descriptors, every request takes from the default bucket', () => {
    const l = limiter({ tokenBucket: tb(2) });
    assert.equal(run(l, [[], [], []]), 'aar');
  });

  it("a descriptor's hits_addend takes that many tokens from its bucket (Envoy: consume(hits_addend_.value_or(1))), and one from the default bucket", () => {
    const l = limiter({ tokenBucket: tb(10), descriptors: [desc({ k: 'v' }, tb(5))] });
    const three = Object.assign(d({ k: 'v' }), { hitsAddend: 3 });
    assert.equal(run(l, [[three], [three]]), 'ar');
    assert.equal(l.defaultBucket?.remainingTokens, 9);
    const zero = Object.assign(d({ k: 'v' }), { hitsAddend: 0 });
    // Two tokens left: hits_addend 0 takes none, then one each.
    assert.equal(run(l, [[zero], [d({ k: 'v' })], [d({ k: 'v' })], [d({ k: 'v' })]]), 'aaar');
  });

  it('two descriptors of one request that reach the same bucket each take their own hits_addend (Envoy consumes per descriptor)', () => {
    const l = limiter({ descriptors: [desc({ k: 'v' }, tb(12))] });
    const five = Object.assign(d({ k: 'v' }), { hitsAddend: 5 });
    // 5 + 1 per request: 12 tokens last two requests (one map keyed by bucket charged 5 + 5).
    assert.equal(run(l, [[five, d({ k: 'v' })], [five, d({ k: 'v' })], [five, d({ k: 'v' })]]), 'aar');
  });

  it('without any bucket, everything is allowed', () => {
    assert.equal(run(limiter({}), [[], [d({ a: 'b' })]]), 'aa');
  });

  it('a matching descriptor has its own bucket; the default one is consumed too (always_consume_default_token_bucket defaults to true)', () => {
    // The Istio sample: /productpage limited to 10 per minute, everything to 100.
    const l = limiter({ tokenBucket: tb(100), descriptors: [desc({ header_match: 'productpage' }, tb(10))] });
    const product = [d({ remote_address: '10.0.0.1' }), d({ header_match: 'productpage' })];
    assert.equal(run(l, Array(11).fill(product)), 'aaaaaaaaaar');
    // 10 allowed /productpage requests took 10 default tokens (the refused one took none).
    assert.equal(l.defaultBucket?.remainingTokens, 90);
    assert.equal(run(l, Array(90).fill([d({ remote_address: '10.0.0.1' })])), 'a'.repeat(90));
    assert.equal(run(l, [[]]), 'r');
  });

  it('with always_consume_default_token_bucket false, a matched descriptor replaces the default bucket', () => {
    const l = limiter({ tokenBucket: tb(1), descriptors: [desc({ client_id: 'clt' }, tb(3))], alwaysConsumeDefaultTokenBucket: false });
    assert.equal(run(l, [[d({ client_id: 'clt' })], [d({ client_id: 'clt' })], [d({ client_id: 'clt' })], [d({ client_id: 'clt' })]]), 'aaar');
    assert.equal(run(l, [[], []]), 'ar');
  });

  it('a descriptor matches only verbatim: every entry, in order', () => {
    const l = limiter({ descriptors: [desc({ a: '1', b: '2' }, tb(1))] });
    assert.equal(run(l, [[d({ a: '1' })], [d({ b: '2', a: '1' })], [d({ a: '1', b: '2', c: '3' })], [d({ a: '1', b: '2' })], [d({ a: '1', b: '2' })]]), 'aaaar');
  });

  it('consumes matched descriptors slowest-refilling first, and stops at the first empty one', () => {
    const clock = new ManualClock(0);
    const fast = desc({ k: 'fast' }, tb(5, 1_000)); // 5 per second
    const slow = desc({ k: 'slow' }, tb(1, 60_000)); // 1 per minute
    const l = limiter({ descriptors: [fast, slow] }, clock);
    const both = [d({ k: 'fast' }), d({ k: 'slow' })];
    assert.equal(run(l, [both]), 'a');
    // The slow bucket refuses first, so the fast one is not drained by refused requests.
    assert.equal(run(l, [both, both, both]), 'rrr');
    assert.equal(run(l, [[d({ k: 'fast' })], [d({ k: 'fast' })], [d({ k: 'fast' })], [d({ k: 'fast' })], [d({ k: 'fast' })]]), 'aaaar');
  });

  it('refuses with the bucket that refused, and reports the first matched descriptor\'s bucket when allowed', () => {
    const l = limiter({ tokenBucket: tb(100), descriptors: [desc({ k: 'v' }, tb(1))] });
    const ok = l.requestAllowed([d({ k: 'v' })]);
    assert.equal(ok.allowed, true);
    assert.equal(ok.bucket?.settings.maxTokens, 1);
    const no = l.requestAllowed([d({ k: 'v' })]);
    assert.equal(no.allowed, false);
    assert.equal(no.bucket?.settings.maxTokens, 1);
    assert.equal(l.requestAllowed([]).bucket?.settings.maxTokens, 100);
  });

  it('a wildcard descriptor (empty value) keeps a bucket per value, the most recent max_dynamic_descriptors of them', () => {
    const l = limiter({ descriptors: [desc({ client_cluster: '' }, tb(1, 1_000_000))], maxDynamicDescriptors: 2 });
    const c = (v: string) => [d({ client_cluster: v })];
    assert.equal(run(l, [c('foo'), c('foo'), c('bar'), c('bar')]), 'arar');
    // A third value evicts the least recently used (foo), which comes back with a fresh bucket.
    assert.equal(run(l, [c('baz'), c('foo'), c('bar')]), 'aaa');
    // foo's return evicted bar, bar's return evicted baz: foo is still there (and empty), baz is fresh again.
    assert.equal(run(l, [c('foo'), c('baz')]), 'ra');
  });

  it('keeps buckets across a config reload when their settings do not change, and starts new ones when they do', () => {
    const clock = new ManualClock(0);
    const settings: LimiterSettings = { tokenBucket: tb(1), descriptors: [desc({ k: 'v' }, tb(1)), desc({ w: '' }, tb(1))], alwaysConsumeDefaultTokenBucket: false, maxDynamicDescriptors: 20 };
    const before = new LocalRateLimiter(settings, clock);
    assert.equal(run(before, [[], [d({ k: 'v' })], [d({ w: 'x' })]]), 'aaa');
    const same = new LocalRateLimiter(settings, clock, before);
    assert.equal(run(same, [[], [d({ k: 'v' })], [d({ w: 'x' })]]), 'rrr');
    const changed = new LocalRateLimiter({ ...settings, tokenBucket: tb(2), descriptors: [desc({ k: 'v' }, tb(2)), desc({ w: '' }, tb(2))] }, clock, before);
    assert.equal(run(changed, [[], [d({ k: 'v' })], [d({ w: 'x' })]]), 'aaa');
  });
});

describe('LocalRateLimiter.match: the buckets requestAllowed would draw from, without drawing', () => {
  const slow = tb(1, 60_000);
  const fast = tb(100, 1000);
  const settings: Partial<LimiterSettings> = { tokenBucket: tb(10), descriptors: [desc({ path: '/a' }, fast), desc({ user: '' }, slow)] };
  const table: { name: string; request: Descriptor[]; alwaysConsume: boolean; descriptors: [string, boolean][]; default: boolean }[] = [
    { name: 'nothing matched: the default bucket', request: [d({ path: '/b' })], alwaysConsume: true, descriptors: [], default: true },
    { name: 'exact and wildcard, slowest first, and the default', request: [d({ path: '/a' }), d({ user: 'alice' })], alwaysConsume: true, descriptors: [['user=alice', true], ['path=/a', false]], default: true },
    { name: 'matched without always_consume_default_token_bucket: not the default', request: [d({ path: '/a' })], alwaysConsume: false, descriptors: [['path=/a', false]], default: false },
    { name: 'not matched without always_consume: the default still', request: [], alwaysConsume: false, descriptors: [], default: true },
  ];
  for (const row of table) {
    it(row.name, () => {
      const l = limiter({ ...settings, alwaysConsumeDefaultTokenBucket: row.alwaysConsume });
      const m = l.match(row.request);
      assert.deepEqual(
        m.descriptors.map((x) => [x.entries.map((e) => `${e.key}=${e.value}`).join(','), x.wildcard]),
        row.descriptors,
      );
      assert.equal(m.defaultBucket !== undefined, row.default);
      // Nothing was drawn: the default bucket is still full, and requestAllowed picks the same first bucket.
      assert.equal(l.defaultBucket?.remainingTokens, 10);
      const first = l.requestAllowed(row.request).bucket;
      assert.deepEqual(first?.settings, m.descriptors[0]?.bucket ?? m.defaultBucket);
    });
  }
});
