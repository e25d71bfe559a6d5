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

describe('OutlierDetector: a sweep timer that fires a little early', () => {
  /** Node arms a timer from the loop's cached millisecond, so it can run up to ~1 ms before its time. */
  class EarlyClock extends ManualClock {
    armed = 0;
    override setTimer(fn: () => void, ms: number) {
      this.armed++;
      return super.setTimer(fn, ms >= 2 ? ms - 1 : ms);
    }
  }

  it('is the planned sweep: one sweep per interval, and the ejection backoff decays one step per interval', () => {
    const clock = new EarlyClock(0);
    const events: OutlierEvent[] = [];
    const d = new OutlierDetector(resolveOutlierSettings({ interval: '50ms', baseEjectionTime: '100ms', maxEjectionPercent: 100 }), clock, (e) => events.push(e));
    const h = host('a:80');
    d.setHosts([h, host('b:80')]);
    const eject = () => {
      for (let i = 0; i < 5; i++) d.record(h, 503, undefined);
      assert.equal(h.ejected, true);
      return h.ejectedUntil - clock.now();
    };
    // Three ejections in a row (n = 1, 2, 3), each waited out.
    for (let n = 1; n <= 3; n++) {
      assert.equal(eject(), 100 * n);
      for (let i = 0; i < 10_000 && h.ejected; i++) clock.advance(1);
    }
    const before = clock.armed;
    clock.advance(1_000);
    // Back for 1 s: n decayed 3 → 0, one sweep per 50 ms while it did (not two: an early timer re-armed for the rest of its ms).
    assert.ok(clock.armed - before <= 4, `${clock.armed - before} timers armed`);
    assert.equal(eject(), 100);
    // Three in a row again, then back for ~130 ms (two sweeps): n 3 → 1, so the next is n = 2, 200 ms (Envoy).
    for (let i = 0; i < 10_000 && h.ejected; i++) clock.advance(1);
    assert.equal(eject(), 200);
    for (let i = 0; i < 10_000 && h.ejected; i++) clock.advance(1);
    assert.equal(eject(), 300);
    for (let i = 0; i < 10_000 && h.ejected; i++) clock.advance(1);
    clock.advance(130);
    assert.equal(eject(), 200);
    d.close();
  });
});

