/**
 * The sweep that returns ejected hosts runs on Envoy's grid: every `interval` from the
 * detector's creation (`DetectorImpl::initialize` arms the interval timer; `onIntervalTimer`
 * re-arms it), not from the first ejection. A host ejected between two sweeps therefore returns
 * at the first sweep at or after `baseEjectionTime` has passed, counted on that grid
 * (outlier_detection_impl_test.cc `BasicFlow5xx`: an interval at 9999 ms does not return the
 * host, the one after its 30 s does). Also: local-origin counting around connections (split mode).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../core/clock.ts';
import { type OutlierEvent, type OutlierHost, OutlierDetector, resolveOutlierSettings } from './outlier.ts';

function host(key: string): OutlierHost {
  return { key, ejected: false, ejectedUntil: 0, ejectReason: '' };
}

describe('OutlierDetector: sweeps on Envoy’s interval grid', () => {
  it('a host ejected 5 s after creation (interval 10 s, base 30 s) returns at the sweep at 40 s, not 35 s', () => {
    const clock = new ManualClock(1_000);
    const events: OutlierEvent[] = [];
    const d = new OutlierDetector(resolveOutlierSettings({}), clock, (e) => events.push(e));
    const hosts = Array.from({ length: 10 }, (_, i) => host(`10.0.0.${i + 1}:80`));
    d.setHosts(hosts);
    const h = hosts[0] as OutlierHost;
    clock.advance(5_000); // t = 6000: sweeps fall at 11000, 21000, 31000, 41000
    for (let i = 0; i < 5; i++) d.record(h, 503, undefined);
    assert.equal(h.ejected, true);
    assert.equal(h.ejectedUntil, 36_000);
    clock.advance(30_000); // t = 36000: due, but no sweep yet
    assert.equal(h.ejected, true, 'returns at a sweep, not at ejectedUntil');
    clock.advance(4_999); // t = 40999
    assert.equal(h.ejected, true);
    clock.advance(1); // t = 41000: the sweep
    assert.equal(h.ejected, false);
    assert.deepEqual(
      events.map((e) => e.type),
      ['ejected', 'returned'],
    );
    d.close();
  });

  it('an ejection on a sweep boundary waits whole intervals', () => {
    const clock = new ManualClock(0);
    const d = new OutlierDetector(resolveOutlierSettings({ interval: '10s', baseEjectionTime: '30s' }), clock, () => {});
    const hosts = [host('a:80'), host('b:80')];
    d.setHosts(hosts);
    const h = hosts[0] as OutlierHost;
    clock.advance(20_000);
    for (let i = 0; i < 5; i++) d.record(h, 500, undefined);
    assert.equal(h.ejected, true);
    clock.advance(29_999);
    assert.equal(h.ejected, true);
    clock.advance(1); // t = 50000, a sweep
    assert.equal(h.ejected, false);
    d.close();
  });
});

describe('OutlierDetector: splitExternalLocalOriginErrors and connections', () => {
  it('a failure after a connection counts once (the connection reset the count); failures to connect add up', () => {
    const clock = new ManualClock(0);
    const d = new OutlierDetector(resolveOutlierSettings({ splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 3, maxEjectionPercent: 100 }), clock, () => {});
    const h = host('a:80');
    d.setHosts([h, host('b:80')]);
    for (let i = 0; i < 5; i++) d.record(h, 0, 'reset', true);
    d.record(h, 0, 'per-try-timeout', true);
    assert.equal(h.ejected, false, 'post-connect failures never reach 3');
    d.record(h, 0, 'connect-failure', true); // a transport that announced the attempt before connecting
    d.record(h, 0, 'connect-failure');
    assert.equal(h.ejected, true, '1 (the timeout) + 2 failures to connect');
    d.close();
  });
});
