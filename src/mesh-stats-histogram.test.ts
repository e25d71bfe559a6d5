import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FlushedHistogram, format32g, quantileSummary } from './mesh-stats-histogram.ts';

describe('FlushedHistogram (Envoy / libcircllhist arithmetic)', () => {
  it("bins integers to two significant digits as int_scale_to_hist_bucket(value, 0): 1234 ms is in [1200,1300), 0 in the zero bin; quantiles interpolate in the bin", () => {
    const h = new FlushedHistogram(0);
    h.record(1234, 1);
    h.record(0, 2);
    const r = h.read(5000);
    // Two samples: the zero bin (no width), then [1200,1300).
    assert.deepEqual(r.cumulative.quantiles, [0, 0, 0, 1250, 1280, 1290, 1298, 1299, 1299.8, 1300]);
    assert.equal(r.cumulative.sum, 1250, 'midpoints: 0 and 1250');
    // hist_approx_count_below: a bin counts below a bound when it ends at or under it.
    assert.deepEqual(r.cumulative.buckets.slice(0, 11), [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2]);
  });

  it('flushes on 5 s boundaries from its start: nothing before the first, the last window as the interval, nan for an empty one', () => {
    const h = new FlushedHistogram(1000);
    assert.equal(quantileSummary(h.read(1000)), 'No recorded values');
    h.record(5, 5999);
    assert.equal(quantileSummary(h.read(5999)), 'No recorded values', 'not merged before 6000');
    assert.match(quantileSummary(h.read(6000)), /^P0\(5,5\) P25\(5\.025,5\.025\) /);
    assert.match(quantileSummary(h.read(11000)), /^P0\(nan,5\) /);
    // Values recorded in a window a read skipped over are merged with it.
    h.record(7, 12000);
    assert.match(quantileSummary(h.read(30000)), /^P0\(nan,5\) .* P100\(nan,7\.1\)$/);
  });

  it("format32g is C's %.32g", () => {
    assert.equal(format32g(0.5), '0.5');
    assert.equal(format32g(3600000), '3600000');
    assert.equal(format32g(177.55), '177.5500000000000113686837721616');
    assert.equal(format32g(0), '0');
    assert.equal(format32g(1e-7), '9.9999999999999995474811182588626e-08');
  });
});
