import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RetryBudget } from './retry-budget.ts';

/** Starts retries until one is refused; returns how many were admitted. */
function admit(b: RetryBudget, activeRequests?: number, upTo = 10_000): number {
  let n = 0;
  while (n < upTo && b.tryStartRetry(activeRequests)) n++;
  return n;
}

describe('RetryBudget without a budget: the maxRetries circuit breaker', () => {
  it('admits maxRetries concurrent retries and refuses the next (UO)', () => {
    const b = new RetryBudget(undefined, 3);
    assert.equal(admit(b, 1000), 3);
    assert.equal(b.activeRetries, 3);
    b.endRetry();
    assert.equal(b.tryStartRetry(1000), true);
    assert.equal(b.tryStartRetry(1000), false);
  });

  it('is effectively unlimited with Istio’s default (2^32−1), and 0 means that default', () => {
    assert.equal(admit(new RetryBudget(undefined)), 10_000);
    assert.equal(admit(new RetryBudget(undefined, 0)), 10_000);
  });

  it('does not go below zero on extra endRetry calls', () => {
    const b = new RetryBudget(undefined, 1);
    b.endRetry();
    assert.equal(admit(b), 1);
  });
});

describe('RetryBudget with a retryBudget', () => {
  it('allows minRetryConcurrency (default 3) when there is little traffic', () => {
    assert.equal(admit(new RetryBudget({}), 0), 3);
    assert.equal(admit(new RetryBudget({}), 14), 3); // 20% of 14 = 2.8 → 2 < 3
    assert.equal(admit(new RetryBudget({ minRetryConcurrency: 5 }), 0), 5);
  });

  it('allows percent (default 20) of active requests, rounded down, when that is more', () => {
    assert.equal(admit(new RetryBudget({}), 100), 20);
    assert.equal(admit(new RetryBudget({}), 24), 4);
    assert.equal(admit(new RetryBudget({ percent: 50, minRetryConcurrency: 1 }), 9), 4);
  });

  it('re-evaluates the limit on every call, as traffic changes', () => {
    const b = new RetryBudget({ percent: 10, minRetryConcurrency: 1 });
    assert.equal(admit(b, 50), 5);
    assert.equal(b.tryStartRetry(60), true);
    assert.equal(b.tryStartRetry(60), false);
    assert.equal(b.tryStartRetry(10), false); // 6 active, limit now 1
  });

  it('replaces maxRetries', () => {
    assert.equal(admit(new RetryBudget({}, 1), 0), 3);
    assert.equal(admit(new RetryBudget({ percent: 100 }, 2), 50), 50);
  });

  it('keeps an explicit percent of 0 (only the minimum applies)', () => {
    assert.equal(admit(new RetryBudget({ percent: 0, minRetryConcurrency: 2 }), 1000), 2);
  });

  it('can count active requests itself', () => {
    const b = new RetryBudget({ percent: 20, minRetryConcurrency: 1 });
    for (let i = 0; i < 50; i++) b.startRequest();
    assert.equal(b.activeRequests, 50);
    assert.equal(b.limit(), 10);
    b.endRequest();
    assert.equal(b.limit(), 9);
    assert.equal(admit(b), 9);
  });
});

describe('RetryBudget.toString', () => {
  it('describes the limit in force and the live counts', () => {
    const b = new RetryBudget({ percent: 25 });
    b.startRequest();
    b.tryStartRetry();
    assert.equal(b.toString(), 'retry budget 25% of active requests, min 3 (1 active retry, 1 active requests)');
    assert.equal(new RetryBudget(undefined, 3).toString(), 'maxRetries 3 (0 active retries)');
    assert.match(new RetryBudget(undefined).toString(), /^maxRetries unlimited/);
    assert.equal(b.budgeted, true);
    assert.equal(new RetryBudget(undefined).budgeted, false);
  });
});
