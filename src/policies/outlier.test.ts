import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../core/clock.ts';
import type { FailureKind } from '../core/outcome.ts';
import type { OutlierDetection } from '../config/types/destination-rule.ts';
import { type OutlierEvent, type OutlierHost, OutlierDetector, type OutlierOptions, resolveOutlierSettings } from './outlier.ts';

function host(key: string): OutlierHost {
  return { key, ejected: false, ejectedUntil: 0, ejectReason: '' };
}

function setup(settings: OutlierDetection = {}, hostCount = 10, options?: OutlierOptions) {
  const clock = new ManualClock(1_000);
  const events: OutlierEvent[] = [];
  const d = new OutlierDetector(resolveOutlierSettings(settings), clock, (e) => events.push(e), options);
  const hosts = Array.from({ length: hostCount }, (_, i) => host(`10.0.0.${i + 1}:80`));
  d.setHosts(hosts);
  const h = hosts[0] as OutlierHost;
  /** Records `n` results on a host. */
  const rec = (target: OutlierHost, n: number, status: number, failure?: FailureKind) => {
    for (let i = 0; i < n; i++) d.record(target, status, failure);
  };
  return { clock, events, d, hosts, h, rec };
}

describe('resolveOutlierSettings: Istio → Envoy defaults', () => {
  it('fills in Envoy’s defaults and Istio’s “unset or 0” rules', () => {
    const s = resolveOutlierSettings({});
    assert.equal(s.consecutive5xx, 5);
    assert.equal(s.consecutiveGateway, 0);
    assert.equal(s.consecutiveLocalOrigin, 5);
    assert.equal(s.intervalMs, 10_000);
    assert.equal(s.baseEjectionMs, 30_000);
    assert.equal(s.maxEjectionMs, 300_000);
    assert.equal(s.maxEjectionPercent, 10);
    const z = resolveOutlierSettings({ consecutive5xxErrors: 0, consecutiveLocalOriginFailures: 0, maxEjectionPercent: 0, baseEjectionTime: '400s', interval: 'bogus' });
    assert.equal(z.consecutive5xx, 0);
    assert.equal(z.consecutiveLocalOrigin, 5);
    assert.equal(z.maxEjectionPercent, 10);
    assert.equal(z.maxEjectionMs, 400_000);
    assert.equal(z.intervalMs, 10_000);
  });
});

describe('OutlierDetector: consecutive 5xx', () => {
  it('ejects at the threshold (default 5), inline, for baseEjectionTime', () => {
    const { d, h, rec, events, clock } = setup();
    rec(h, 4, 503);
    assert.equal(h.ejected, false);
    rec(h, 1, 500);
    assert.equal(h.ejected, true);
    assert.equal(h.ejectedUntil, clock.now() + 30_000);
    assert.equal(h.ejectReason, '5 consecutive 5xx (consecutive5xxErrors=5)');
    assert.deepEqual(events, [{ type: 'ejected', host: h, reason: h.ejectReason, untilMs: h.ejectedUntil, detector: 'consecutive_5xx' }]);
    assert.equal(d.ejectedCount, 1);
  });

  it('is reset by any non-error response', () => {
    const { h, rec } = setup();
    rec(h, 4, 500);
    rec(h, 1, 404);
    rec(h, 4, 500);
    assert.equal(h.ejected, false);
    rec(h, 1, 500);
    assert.equal(h.ejected, true);
  });

  it('honours a custom threshold, and 0 disables it', () => {
    const two = setup({ consecutive5xxErrors: 2 });
    two.rec(two.h, 2, 500);
    assert.equal(two.h.ejected, true);
    const off = setup({ consecutive5xxErrors: 0 });
    off.rec(off.h, 100, 500);
    off.rec(off.h, 100, 0, 'connect-failure');
    assert.equal(off.h.ejected, false);
    assert.equal(off.events.length, 0);
  });

  it('counts local-origin failures as errors when not split, but never overflow or cancellation', () => {
    const { h, rec, hosts } = setup();
    rec(h, 2, 0, 'connect-failure');
    rec(h, 1, 0, 'per-try-timeout');
    rec(h, 10, 0, 'overflow');
    rec(h, 10, 0, 'cancelled');
    rec(h, 1, 0, 'reset');
    assert.equal(h.ejected, false);
    rec(h, 1, 502);
    assert.equal(h.ejected, true);
    const other = hosts[1] as OutlierHost;
    rec(other, 50, 0, 'overflow');
    rec(other, 50, 0, 'cancelled');
    assert.equal(other.ejected, false);
  });

  it('counts only outlierDetectionHttpErrorCodes when given', () => {
    const { h, hosts, rec } = setup({ outlierDetectionHttpErrorCodes: [429, 503] });
    rec(h, 4, 429);
    rec(h, 1, 503);
    assert.equal(h.ejected, true);
    assert.match(h.ejectReason, /^5 consecutive errors in \[429,503\]/);
    const other = hosts[1] as OutlierHost;
    rec(other, 4, 429);
    rec(other, 1, 500); // not an error under these codes: resets
    rec(other, 4, 429);
    assert.equal(other.ejected, false);
  });
});

describe('OutlierDetector: consecutive gateway errors', () => {
  it('is off unless set', () => {
    const { h, rec } = setup({ consecutive5xxErrors: 0 });
    rec(h, 50, 502);
    assert.equal(h.ejected, false);
  });

  it('ejects on 502/503/504 (and local-origin failures) at its own threshold', () => {
    const { h, hosts, rec } = setup({ consecutiveGatewayErrors: 3, consecutive5xxErrors: 10 });
    rec(h, 1, 502);
    rec(h, 1, 0, 'per-try-timeout');
    rec(h, 1, 504);
    assert.equal(h.ejected, true);
    assert.equal(h.ejectReason, '3 consecutive gateway errors (consecutiveGatewayErrors=3)');
    const other = hosts[1] as OutlierHost;
    rec(other, 2, 503);
    rec(other, 1, 500); // a non-gateway 5xx resets the gateway counter
    rec(other, 2, 504);
    assert.equal(other.ejected, false);
  });

  it('wins over the 5xx detector when both fire on the same response', () => {
    const { h, rec } = setup({ consecutiveGatewayErrors: 5 });
    rec(h, 5, 503);
    assert.match(h.ejectReason, /gateway/);
  });
});

describe('OutlierDetector: splitExternalLocalOriginErrors', () => {
  it('ejects on consecutive local-origin failures at their own threshold', () => {
    const { h, rec } = setup({ splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 3 });
    rec(h, 2, 0, 'connect-failure');
    assert.equal(h.ejected, false);
    rec(h, 1, 0, 'reset');
    assert.equal(h.ejected, true);
    assert.equal(h.ejectReason, '3 consecutive local-origin failures (consecutiveLocalOriginFailures=3)');
  });

  it('defaults the local-origin threshold to 5 and resets it on any response', () => {
    const { h, hosts, rec } = setup({ splitExternalLocalOriginErrors: true, maxEjectionPercent: 50 });
    rec(h, 4, 0, 'connect-failure');
    rec(h, 1, 503); // a response: the connection worked
    rec(h, 4, 0, 'per-try-timeout');
    assert.equal(h.ejected, false);
    rec(h, 1, 0, 'reset');
    assert.equal(h.ejected, true);
    const other = hosts[1] as OutlierHost;
    rec(other, 4, 0, 'connect-failure');
    rec(other, 20, 0, 'overflow');
    rec(other, 1, 0, 'connect-failure');
    assert.equal(other.ejected, true);
  });

  it('keeps local-origin failures out of the 5xx and gateway counters', () => {
    const { h, rec } = setup({ splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 100, consecutiveGatewayErrors: 3 });
    rec(h, 2, 502);
    rec(h, 50, 0, 'connect-failure'); // neither counted nor a reset for the external counters
    assert.equal(h.ejected, false);
    rec(h, 1, 503);
    assert.equal(h.ejectReason, '3 consecutive gateway errors (consecutiveGatewayErrors=3)');
  });
});

describe('OutlierDetector: ejection time, return and backoff decay', () => {
  it('returns the host at the first sweep at or after its time, resetting counters', () => {
    const { h, rec, clock, events } = setup({ baseEjectionTime: '25s' }); // sweeps every 10s
    const t0 = clock.now();
    rec(h, 5, 500);
    assert.equal(h.ejectedUntil, t0 + 25_000);
    clock.advance(29_999);
    assert.equal(h.ejected, true);
    clock.advance(1);
    assert.equal(h.ejected, false);
    assert.equal(h.ejectedUntil, 0);
    assert.equal(h.ejectReason, '');
    assert.equal(events.at(-1)?.type, 'returned');
    assert.equal(events.at(-1)?.untilMs, t0 + 25_000);
    rec(h, 4, 500); // counters were reset on return
    assert.equal(h.ejected, false);
  });

  it('grows as base × n with repeated ejections and caps at 300s', () => {
    const { h, rec, clock } = setup({ baseEjectionTime: '30s', interval: '10s' });
    const seen: number[] = [];
    for (let i = 0; i < 13; i++) {
      rec(h, 5, 503);
      assert.equal(h.ejected, true, `ejection ${i + 1}`);
      const duration = h.ejectedUntil - clock.now();
      seen.push(duration / 1000);
      clock.advance(duration - 1);
      assert.equal(h.ejected, true);
      clock.advance(1); // ejections start on the sweep grid, so the return is exact
      assert.equal(h.ejected, false);
    }
    assert.deepEqual(seen, [30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 300, 300, 300]);
  });

  it('caps at baseEjectionTime when that is above 300s', () => {
    const { h, rec, clock } = setup({ baseEjectionTime: '400s' });
    rec(h, 5, 500);
    assert.equal(h.ejectedUntil - clock.now(), 400_000);
    clock.advance(400_000);
    rec(h, 5, 500);
    assert.equal(h.ejectedUntil - clock.now(), 400_000);
  });

  it('decreases n by one for each interval the host stays healthy after returning', () => {
    const { h, rec, clock } = setup(); // base 30s, interval 10s
    rec(h, 5, 500); // n=1
    clock.advance(30_000);
    rec(h, 5, 500); // back-to-back: n=2
    assert.equal(h.ejectedUntil - clock.now(), 60_000);
    clock.advance(60_000); // returns
    clock.advance(10_000); // one healthy interval: n=1
    rec(h, 5, 500); // n=2 again, not 3
    assert.equal(h.ejectedUntil - clock.now(), 60_000);
    clock.advance(60_000);
    clock.advance(20_000); // two healthy intervals: n=0
    rec(h, 5, 500);
    assert.equal(h.ejectedUntil - clock.now(), 30_000);
  });

  it('stops its timer once nothing is ejected and every n has decayed', () => {
    const { d, h, hosts, rec, clock } = setup();
    rec(h, 4, 500);
    rec(hosts[1] as OutlierHost, 100, 200);
    assert.equal(clock.pending, 0, 'no timer while idle');
    assert.equal(d.sweeping, false);
    rec(h, 1, 500);
    assert.equal(clock.pending, 1);
    clock.advance(30_000); // returned, n=1
    assert.equal(h.ejected, false);
    assert.equal(clock.pending, 1, 'still decaying n');
    clock.advance(10_000); // n=0
    assert.equal(clock.pending, 0);
    assert.equal(d.sweeping, false);
  });
});

describe('OutlierDetector: maxEjectionPercent', () => {
  it('skips an ejection that would exceed the percentage (10 hosts, 10%: one host)', () => {
    const { d, hosts, rec } = setup({}, 10);
    const [a, b] = hosts as [OutlierHost, OutlierHost];
    rec(a, 5, 500);
    rec(b, 5, 500);
    assert.equal(a.ejected, true);
    assert.equal(b.ejected, false);
    assert.match(d.describe(b), /1 skipped by maxEjectionPercent/);
  });

  it('allows more with a higher percentage', () => {
    const { hosts, rec } = setup({ maxEjectionPercent: 20 }, 10);
    const [a, b, c] = hosts as [OutlierHost, OutlierHost, OutlierHost];
    for (const x of [a, b, c]) rec(x, 5, 500);
    assert.deepEqual([a.ejected, b.ejected, c.ejected], [true, true, false]);
  });

  it('always allows one ejection when none is in force, even on a small cluster', () => {
    const { hosts, rec } = setup({}, 4); // 1 of 4 = 25% > 10%
    const [a, b] = hosts as [OutlierHost, OutlierHost];
    rec(a, 5, 500);
    rec(b, 5, 500);
    assert.deepEqual([a.ejected, b.ejected], [true, false]);
  });

  it('can be made strict (Envoy ≥ 1.31 without always_eject_one_host)', () => {
    const { h, rec } = setup({}, 4, { alwaysEjectOneHost: false });
    rec(h, 5, 500);
    assert.equal(h.ejected, false);
    const ten = setup({}, 10, { alwaysEjectOneHost: false });
    ten.rec(ten.h, 5, 500);
    assert.equal(ten.h.ejected, true, '1 of 10 is exactly 10%');
  });

  it('resets the counter of a skipped ejection, so the host needs a fresh run of errors', () => {
    const { hosts, rec, clock } = setup({}, 4);
    const [a, b] = hosts as [OutlierHost, OutlierHost];
    rec(a, 5, 500);
    rec(b, 5, 500); // skipped
    clock.advance(30_000); // a returns
    assert.equal(a.ejected, false);
    rec(b, 1, 500);
    assert.equal(b.ejected, false);
    rec(b, 4, 500);
    assert.equal(b.ejected, true);
  });
});

describe('OutlierDetector: config swaps and lifecycle', () => {
  it('keeps the state of surviving keys across setHosts, even for new host objects', () => {
    const { d, hosts, rec } = setup({}, 3);
    const [a, b, c] = hosts as [OutlierHost, OutlierHost, OutlierHost];
    rec(a, 4, 500);
    rec(b, 5, 500);
    const a2 = host(a.key);
    const b2 = host(b.key);
    d.setHosts([a2, b2, host('10.0.0.9:80')]);
    assert.equal(b2.ejected, true, 'ejection carried over');
    assert.equal(b2.ejectedUntil, b.ejectedUntil);
    rec(a2, 1, 500);
    assert.equal(a2.ejected, false, 'a is skipped by maxEjectionPercent only because b is ejected');
    assert.equal(d.ejectedCount, 1);
    d.record(c, 500, undefined); // removed host: ignored
    assert.match(d.describe(c), /not tracked/);
  });

  it('forgets a removed key, and a host that comes back starts clean', () => {
    const { d, hosts, rec } = setup({}, 2);
    const [a, b] = hosts as [OutlierHost, OutlierHost];
    rec(a, 4, 500);
    d.setHosts([b]);
    d.setHosts([a, b]);
    rec(a, 1, 500);
    assert.equal(a.ejected, false);
  });

  it('stops sweeping when the only ejected host is removed and none has backoff left', () => {
    const { d, hosts, rec, clock } = setup({}, 2);
    const [a, b] = hosts as [OutlierHost, OutlierHost];
    rec(a, 5, 500);
    assert.equal(clock.pending, 1);
    d.setHosts([b]);
    assert.equal(d.ejectedCount, 0);
    assert.equal(clock.pending, 0);
  });

  it('applies updated thresholds and ejection times', () => {
    const { d, hosts, rec, clock } = setup({}, 10);
    const [a, b] = hosts as [OutlierHost, OutlierHost];
    rec(a, 5, 500);
    rec(b, 2, 500);
    d.updateSettings(resolveOutlierSettings({ consecutive5xxErrors: 3, baseEjectionTime: '60s', maxEjectionPercent: 50 }));
    assert.equal(a.ejectedUntil - clock.now(), 60_000, 'return time recomputed');
    rec(b, 1, 500);
    assert.equal(b.ejected, true);
    assert.equal(b.ejectReason, '3 consecutive 5xx (consecutive5xxErrors=3)');
  });

  it('re-arms a running sweep with a new interval', () => {
    const { d, h, rec, clock } = setup({ baseEjectionTime: '1s' });
    rec(h, 5, 500);
    d.updateSettings(resolveOutlierSettings({ baseEjectionTime: '1s', interval: '2s' }));
    clock.advance(1_999);
    assert.equal(h.ejected, true);
    clock.advance(1);
    assert.equal(h.ejected, false);
  });

  it('returns every ejected host and drops its timer on close, then ignores records', () => {
    const { d, h, rec, clock, events } = setup();
    rec(h, 5, 500);
    d.close();
    assert.equal(h.ejected, false);
    assert.equal(clock.pending, 0);
    assert.deepEqual(
      events.map((e) => [e.type, e.reason]),
      [
        ['ejected', '5 consecutive 5xx (consecutive5xxErrors=5)'],
        ['returned', 'outlier detection removed'],
      ],
    );
    rec(h, 50, 500);
    assert.equal(h.ejected, false);
    assert.equal(clock.pending, 0);
  });
});

describe('OutlierDetector: diagnostics', () => {
  it('describes counters, history and the ejection', () => {
    const { d, h, hosts, rec } = setup({ consecutiveGatewayErrors: 7 });
    rec(h, 2, 502);
    assert.equal(d.describe(h), '10.0.0.1:80: consecutive 5xx 2/5, gateway 2/7; ejections 0 (backoff n=0); not ejected');
    rec(h, 3, 500);
    assert.match(d.describe(h), /^10\.0\.0\.1:80: consecutive 5xx 0\/5, gateway 0\/7; ejections 1 \(backoff n=1\); ejected until \d+ \(30s left/);
    assert.match(d.describe(h), /: 5 consecutive 5xx \(consecutive5xxErrors=5\)$/);
    assert.match(d.describe(hosts[1] as OutlierHost), /gateway 0\/7; ejections 0/);
  });

  it('summarises settings and ejected hosts', () => {
    const { d, h, rec } = setup({ splitExternalLocalOriginErrors: true });
    rec(h, 5, 0, 'connect-failure');
    assert.equal(
      d.toString(),
      'outlier detection: consecutive5xxErrors=5, consecutiveGatewayErrors=off, splitExternalLocalOriginErrors, consecutiveLocalOriginFailures=5, ' +
        'interval=10s, baseEjectionTime=30s (max 300s), maxEjectionPercent=10; 1/10 hosts ejected [10.0.0.1:80]',
    );
  });
});
