import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { poolLimits, RequestLimiter } from './limits.ts';

const waiter = () => {
  const w = { granted: 0, grant: () => void w.granted++ };
  return w;
};

describe('RequestLimiter: Envoy\'s circuit breakers', () => {
  it('HTTP/2: a request beyond http2MaxRequests overflows at once — max_requests is never waited for, whatever the pending limit', () => {
    const l = new RequestLimiter(poolLimits({ http: { http2MaxRequests: 2, http1MaxPendingRequests: 10 } }, true));
    assert.deepEqual([l.acquire(waiter()), l.acquire(waiter()), l.acquire(waiter())], ['go', 'go', 'overflow']);
    assert.equal(l.pending, 0);
    assert.equal(l.overflows, 1);
  });

  it('HTTP/1.1, http2MaxRequests below maxConnections: the same hard cap', () => {
    const l = new RequestLimiter(poolLimits({ tcp: { maxConnections: 5 }, http: { http2MaxRequests: 1, http1MaxPendingRequests: 10 } }, false));
    assert.deepEqual([l.acquire(waiter()), l.acquire(waiter())], ['go', 'overflow']);
  });

  it('HTTP/1.1, every connection busy (maxConnections): requests wait for one, up to http1MaxPendingRequests, oldest first', () => {
    const l = new RequestLimiter(poolLimits({ tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 2 } }, false));
    const [a, b, c] = [waiter(), waiter(), waiter()];
    assert.deepEqual([l.acquire(waiter()), l.acquire(a), l.acquire(b), l.acquire(c)], ['go', 'queued', 'queued', 'overflow']);
    l.release();
    assert.deepEqual([a.granted, b.granted], [1, 0]);
    assert.equal(l.active, 1);
  });

  it('HTTP/1.1, waiting for a connection and at http2MaxRequests too: overflow', () => {
    const l = new RequestLimiter(poolLimits({ tcp: { maxConnections: 1 }, http: { http2MaxRequests: 1, http1MaxPendingRequests: 5 } }, false));
    assert.deepEqual([l.acquire(waiter()), l.acquire(waiter())], ['go', 'overflow']);
  });
});
