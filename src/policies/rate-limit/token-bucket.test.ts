import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../../core/clock.ts';
import { TokenBucket } from './token-bucket.ts';

/** Takes tokens until the bucket refuses; returns how many it gave. */
function drain(b: TokenBucket, limit = 10_000): number {
  let n = 0;
  while (n < limit && b.consume()) n++;
  return n;
}

describe('TokenBucket: Envoy\'s local rate limit bucket on the injected clock', () => {
  it('starts full: a burst of max_tokens, then refusals', () => {
    const clock = new ManualClock(5_000);
    const b = new TokenBucket({ maxTokens: 5, tokensPerFill: 1, fillIntervalMs: 1_000 }, clock);
    assert.equal(drain(b), 5);
    assert.equal(b.consume(), false);
  });

  const refills: { name: string; maxTokens: number; tokensPerFill: number; fillIntervalMs: number; refusedAt: number; allowedAt: number }[] = [
    // Istio's integration testdata: 1 token per 600s.
    { name: '1 per 600s (Istio testdata): next token exactly 600 000 ms after the last', maxTokens: 1, tokensPerFill: 1, fillIntervalMs: 600_000, refusedAt: 599_999, allowedAt: 600_000 },
    // Istio's task: 10 per 60s refills one token every 6s — continuously, not 10 at once after 60s.
    { name: '10 per 60s (Istio task): one token every 6 000 ms', maxTokens: 10, tokensPerFill: 10, fillIntervalMs: 60_000, refusedAt: 5_999, allowedAt: 6_000 },
    { name: '1000 per 1s: one token per millisecond', maxTokens: 1000, tokensPerFill: 1000, fillIntervalMs: 1_000, refusedAt: 0, allowedAt: 1 },
    { name: '3 per 50ms (the shortest interval Envoy takes): a token every 16.67 ms', maxTokens: 3, tokensPerFill: 3, fillIntervalMs: 50, refusedAt: 16, allowedAt: 17 },
  ];
  for (const r of refills) {
    it(`refills continuously, as Envoy's AtomicTokenBucket: ${r.name}`, () => {
      const clock = new ManualClock(0);
      const b = new TokenBucket({ maxTokens: r.maxTokens, tokensPerFill: r.tokensPerFill, fillIntervalMs: r.fillIntervalMs }, clock);
      assert.equal(drain(b), r.maxTokens);
      clock.advance(r.refusedAt);
      assert.equal(b.consume(), false, `refused ${r.refusedAt} ms after draining`);
      clock.advance(r.allowedAt - r.refusedAt);
      assert.equal(b.consume(), true, `allowed ${r.allowedAt} ms after draining`);
      assert.equal(b.consume(), false, 'and only one token');
    });
  }

  it('never holds more than max_tokens, however long it waits', () => {
    const clock = new ManualClock(0);
    const b = new TokenBucket({ maxTokens: 3, tokensPerFill: 2, fillIntervalMs: 1_000 }, clock);
    drain(b);
    clock.advance(3_600_000);
    assert.equal(b.remaining, 3);
    assert.equal(drain(b), 3);
  });

  it('refills tokens_per_fill per fill_interval, partial tokens carried over', () => {
    const clock = new ManualClock(0);
    const b = new TokenBucket({ maxTokens: 100, tokensPerFill: 2, fillIntervalMs: 1_000 }, clock);
    drain(b);
    clock.advance(1_250); // 2.5 tokens
    assert.equal(drain(b), 2);
    clock.advance(250); // the half token left + 0.5 = 1
    assert.equal(drain(b), 1);
  });

  it('reports its state as the x-ratelimit headers do', () => {
    const clock = new ManualClock(0);
    const b = new TokenBucket({ maxTokens: 10, tokensPerFill: 10, fillIntervalMs: 60_000 }, clock);
    b.consume();
    assert.deepEqual(b.state(), { maxTokens: 10, remainingTokens: 9, resetSeconds: 0 });
    drain(b);
    // Empty: the next token in ceil(1 / fill rate) = 6000 ms = 6 s.
    assert.deepEqual(b.state(), { maxTokens: 10, remainingTokens: 0, resetSeconds: 6 });
  });

  it('does not run backwards when the clock has not moved', () => {
    const clock = new ManualClock(100);
    const b = new TokenBucket({ maxTokens: 1, tokensPerFill: 1, fillIntervalMs: 1_000 }, clock);
    assert.equal(b.consume(), true);
    for (let i = 0; i < 5; i++) assert.equal(b.consume(), false);
  });
});
