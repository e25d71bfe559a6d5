/**
 * Outlier detection (passive health checking) for one destination cluster, as Istio configures
 * Envoy's consecutive-error detectors (reference §1.2 OutlierDetection, §6.6). Success-rate and
 * failure-percentage ejection are not implemented: Istio turns them off.
 *
 * Ported from Envoy `DetectorImpl` / `DetectorHostMonitorImpl`
 * (source/common/upstream/outlier_detection_impl.cc), with Istio's field mapping
 * (`applyOutlierDetection` in pilot/pkg/networking/core/cluster_traffic_policy.go):
 *
 * - **Counting.** An error response (any 5xx, or the `outlierDetectionHttpErrorCodes` when
 *   given) increments the consecutive-5xx counter; one that is also 502/503/504 increments the
 *   gateway counter, any other error response resets it; a non-error response resets both.
 *   Local-origin failures (connect failure, reset, refused stream, protocol error, per-try
 *   timeout) count as a 503 (504 for a timeout) in both counters — unless
 *   `splitExternalLocalOriginErrors`: their own counter, reset by any response and by every
 *   connection handed to a request (Envoy's pool ready). Overflow and cancellation are ignored.
 * - **Ejection** happens inline when a counter reaches its threshold. The counter that fired
 *   is reset whether or not the ejection was allowed. Ejection time = `baseEjectionTime × n`
 *   capped at `max(300s, baseEjectionTime)`, where n counts the host's recent ejections.
 * - **`maxEjectionPercent`**: an ejection past it is skipped — except, by default, when no host
 *   is ejected ({@link OutlierOptions.alwaysEjectOneHost}).
 * - **Sweeps** every `interval`: an ejected host whose time is up returns (so a host returns at
 *   the first sweep at or after `ejectedUntil`, as in Envoy, not exactly at it); a host that
 *   has been back for at least one interval has n decreased by 1. On return every counter is
 *   reset. A returning host does not slow-start again (Envoy's `recalculateHostsInSlowStart`).
 * - **Timers.** The sweep timer runs only while a host is ejected or has n > 0; an idle
 *   cluster holds no timer. Sweeps keep Envoy's phase all the same — every `interval` from the
 *   detector's creation (Envoy arms its interval timer in `DetectorImpl::initialize`) — so a
 *   host ejected between two sweeps returns at the same sweep as behind a sidecar.
 *
 * @module
 */
import type { Clock, Timer } from '../core/clock.ts';
import type { FailureKind } from '../core/outcome.ts';
import type { OutlierDetectorKind } from '../core/observe.ts';
import { formatDuration } from '../config/duration.ts';
import type { ResolvedOutlierSettings } from '../routing/outlier-settings.ts';

export { type ResolvedOutlierSettings, resolveOutlierSettings } from '../routing/outlier-settings.ts';

/** What the detector needs from a host (the data plane's HostState satisfies it). */
export interface OutlierHost {
  /** Stable identity across config swaps (e.g. `address:port`). */
  readonly key: string;
  /** Set by the detector: the host is out of the load-balancing set. */
  ejected: boolean;
  /** Set by the detector: mesh-clock time from which the host may return (0 when not ejected). */
  ejectedUntil: number;
  /** Set by the detector: why the host is ejected ('' when not ejected). */
  ejectReason: string;
}

/** An ejection or a return, reported through the detector's `onChange` callback. */
export type OutlierEvent = {
  /** `overflow`: a detector fired and the host was not ejected (maxEjectionPercent reached). */
  type: 'ejected' | 'returned' | 'overflow';
  host: OutlierHost;
  /** Human-readable cause, e.g. `5 consecutive 5xx (consecutive5xxErrors=5)`. */
  reason: string;
  /** For `ejected`: the earliest return time; for `returned`: the ejection deadline that passed. */
  untilMs: number;
  /** For `ejected` and `overflow`: which detector fired, in Envoy's stat names; undefined for `returned`. */
  detector?: OutlierDetectorKind;
};

/** Envoy's name of each detector (`outlier_detection.ejections_enforced_<name>`). */
const DETECTOR_NAME = { '5xx': 'consecutive_5xx', gateway: 'consecutive_gateway_failure', local: 'consecutive_local_origin_failure' } as const satisfies Record<string, OutlierDetectorKind>;

/** Behaviour switches that Istio does not expose. */
export interface OutlierOptions {
  /**
   * Allow one ejection when no host is ejected, even if that exceeds `maxEjectionPercent`
   * (Envoy `always_eject_one_host`). Default true: the long-documented Envoy behaviour
   * ("will eject at least one host regardless of the value"), which keeps outlier detection
   * useful for clusters of fewer than 10 hosts. Envoy ≥ 1.31 defaults it to false and Istio
   * does not set it; pass false for that strict behaviour.
   */
  alwaysEjectOneHost?: boolean;
}

type Detector = '5xx' | 'gateway' | 'local';

/** Per-host detector state, keyed by {@link OutlierHost.key}. */
class HostRecord {
  host: OutlierHost;
  consecutive5xx = 0;
  consecutiveGateway = 0;
  consecutiveLocal = 0;
  /** Envoy `ejectTimeBackoff`: grows with each ejection, shrinks by one per healthy interval. */
  backoff = 0;
  /** Ejections over the record's life. */
  ejections = 0;
  /** Ejections refused by maxEjectionPercent. */
  skipped = 0;
  ejected = false;
  lastEjection = -1;
  lastReturn = -1;
  constructor(host: OutlierHost) {
    this.host = host;
  }
}

/**
 * Consecutive-error outlier detection for one cluster. The detector owns `ejected`,
 * `ejectedUntil` and `ejectReason` of the hosts in its set; the balancer only reads them.
 */
export class OutlierDetector {
  #s: ResolvedOutlierSettings;
  readonly #clock: Clock;
  readonly #onChange: (e: OutlierEvent) => void;
  readonly #alwaysEjectOne: boolean;
  #records = new Map<string, HostRecord>();
  #ejectedCount = 0;
  #timer: Timer | undefined;
  /** Mesh-clock time of creation: sweeps fall on it plus whole intervals, as Envoy's do. */
  readonly #origin: number;
  /** When the armed sweep is due. */
  #planned = 0;
  #closed = false;
  readonly #sweepFn = (): void => this.#sweep();

  /**
   * @param settings - the DestinationRule's `outlierDetection`, resolved ({@link resolveOutlierSettings}).
   * @param clock - the mesh clock (the sweep timer); `onChange`: every ejection and return; `options`: switches Istio does not expose.
   */
  constructor(settings: ResolvedOutlierSettings, clock: Clock, onChange: (e: OutlierEvent) => void, options: OutlierOptions = {}) {
    this.#s = settings;
    this.#clock = clock;
    this.#onChange = onChange;
    this.#alwaysEjectOne = options.alwaysEjectOneHost ?? true;
    this.#origin = clock.now();
  }

  /** The settings in force, defaults applied. */
  get settings(): ResolvedOutlierSettings {
    return this.#s;
  }

  /** Number of hosts currently ejected. */
  get ejectedCount(): number {
    return this.#ejectedCount;
  }

  /** True while the sweep timer is armed (some host ejected or still carrying ejection backoff). */
  get sweeping(): boolean {
    return this.#timer !== undefined;
  }

  /** Replaces the host list (config swap): a surviving key keeps its state (a new object inherits it); a new key starts clean. */
  setHosts(hosts: readonly OutlierHost[]): void {
    const next = new Map<string, HostRecord>();
    let ejected = 0;
    for (const h of hosts) {
      let r = this.#records.get(h.key) ?? next.get(h.key);
      if (r === undefined) {
        r = new HostRecord(h);
        h.ejected = false;
        h.ejectedUntil = 0;
        h.ejectReason = '';
      } else if (r.host !== h) {
        h.ejected = r.ejected;
        h.ejectedUntil = r.host.ejectedUntil;
        h.ejectReason = r.host.ejectReason;
        r.host = h;
      }
      if (!next.has(h.key) && r.ejected) ejected++;
      next.set(h.key, r);
    }
    this.#records = next;
    this.#ejectedCount = ejected;
    if (!this.#needsSweep()) this.#stopTimer();
  }

  /** Applies new settings (config swap): counters and ejections kept, return times and the sweep interval recomputed. */
  updateSettings(settings: ResolvedOutlierSettings): void {
    const prev = this.#s;
    this.#s = settings;
    for (const r of this.#records.values()) {
      if (r.ejected) r.host.ejectedUntil = r.lastEjection + this.#ejectionMs(r.backoff);
    }
    if (this.#timer !== undefined && prev.intervalMs !== this.#s.intervalMs) {
      this.#stopTimer();
      this.#startTimer();
    }
  }

  /**
   * An attempt got a connection (Envoy's pool ready, `LocalOriginConnectSuccess`): in split mode
   * the local-origin count restarts — five overlapping streams that connect, then reset, count five.
   */
  connected(host: OutlierHost): void {
    if (!this.#s.splitLocalOrigin || this.#closed) return;
    const r = this.#records.get(host.key);
    if (r !== undefined) r.consecutiveLocal = 0;
  }

  /**
   * Record an attempt's result on one host: a response status (0 = none) and an optional
   * local-origin failure kind. `connected`: a grpc-js call (started before its channel connects)
   * that failed otherwise than to connect: the count restarts here instead of at {@link connected}.
   */
  record(host: OutlierHost, status: number, failure: FailureKind | undefined, connected = false): void {
    const r = this.#records.get(host.key);
    if (r === undefined || this.#closed) return;
    const s = this.#s;
    if (failure !== undefined) {
      // Overflow is cluster-wide (envoyproxy/envoy#25487) and cancellation is the caller's doing.
      if (failure === 'overflow' || failure === 'cancelled') return;
      if (s.splitLocalOrigin) {
        if (connected && failure !== 'connect-failure') r.consecutiveLocal = 0;
        r.consecutiveLocal++;
        if (r.consecutiveLocal >= s.consecutiveLocalOrigin) this.#fired(r, 'local');
      } else {
        // Envoy maps local-origin failures to 503 (504 for a timeout): gateway errors and 5xx.
        this.#externalError(r, true);
      }
      return;
    }
    if (status <= 0) return;
    if (s.splitLocalOrigin) r.consecutiveLocal = 0; // the connection worked
    const isError = s.errorCodes !== undefined ? s.errorCodes.has(status) : status >= 500 && status <= 599;
    if (!isError) {
      r.consecutive5xx = 0;
      r.consecutiveGateway = 0;
      return;
    }
    this.#externalError(r, status === 502 || status === 503 || status === 504);
  }

  /** Per-host diagnostics for `mesh.explain`: consecutive counters, ejection count, until, reason. */
  describe(host: OutlierHost): string {
    const r = this.#records.get(host.key);
    if (r === undefined) return `${host.key}: not tracked by this outlier detector`;
    const s = this.#s;
    const of = (n: number, t: number) => (t > 0 ? `${n}/${t}` : `${n}/off`);
    const local = s.splitLocalOrigin ? `, local-origin ${of(r.consecutiveLocal, s.consecutiveLocalOrigin)}` : '';
    const counters = `consecutive 5xx ${of(r.consecutive5xx, s.consecutive5xx)}, gateway ${of(r.consecutiveGateway, s.consecutiveGateway)}${local}`;
    const history = `ejections ${r.ejections} (backoff n=${r.backoff}${r.skipped > 0 ? `, ${r.skipped} skipped by maxEjectionPercent` : ''})`;
    if (!r.ejected) return `${host.key}: ${counters}; ${history}; not ejected`;
    const left = Math.max(0, r.host.ejectedUntil - this.#clock.now());
    return `${host.key}: ${counters}; ${history}; ejected until ${r.host.ejectedUntil} (${formatDuration(left)} left, returns at the next sweep after): ${r.host.ejectReason}`;
  }

  /**
   * Stops the sweep timer and returns every host this detector ejected (with `returned`
   * events), so removing outlier detection from a DestinationRule cannot strand hosts. Later
   * calls to `record` are ignored.
   */
  close(): void {
    if (this.#closed) return;
    this.#stopTimer();
    const now = this.#clock.now();
    for (const r of this.#records.values()) if (r.ejected) this.#return(r, now, 'outlier detection removed');
    this.#closed = true;
  }

  /** One-line summary: settings and the ejected hosts. */
  toString(): string {
    const s = this.#s;
    const thr = (t: number) => (t > 0 ? String(t) : 'off');
    const codes = s.errorCodes === undefined ? '' : `, outlierDetectionHttpErrorCodes=[${[...s.errorCodes].join(',')}]`;
    const local = s.splitLocalOrigin ? `, splitExternalLocalOriginErrors, consecutiveLocalOriginFailures=${s.consecutiveLocalOrigin}` : '';
    const ejected: string[] = [];
    for (const r of this.#records.values()) if (r.ejected) ejected.push(r.host.key);
    const list = ejected.length > 0 ? ` [${ejected.join(', ')}]` : '';
    return (
      `outlier detection: consecutive5xxErrors=${thr(s.consecutive5xx)}, consecutiveGatewayErrors=${thr(s.consecutiveGateway)}${local}${codes}, ` +
      `interval=${formatDuration(s.intervalMs)}, baseEjectionTime=${formatDuration(s.baseEjectionMs)} (max ${formatDuration(s.maxEjectionMs)}), ` +
      `maxEjectionPercent=${s.maxEjectionPercent}; ${this.#ejectedCount}/${this.#records.size} hosts ejected${list}`
    );
  }

  #externalError(r: HostRecord, gateway: boolean): void {
    const s = this.#s;
    // Envoy checks the gateway detector first; if it ejects, the 5xx detector finds the host ejected.
    if (gateway) {
      r.consecutiveGateway++;
      if (s.consecutiveGateway > 0 && r.consecutiveGateway >= s.consecutiveGateway) this.#fired(r, 'gateway');
    } else {
      r.consecutiveGateway = 0;
    }
    r.consecutive5xx++;
    if (s.consecutive5xx > 0 && r.consecutive5xx >= s.consecutive5xx) this.#fired(r, '5xx');
  }

  /** A detector reached its threshold (Envoy `onConsecutiveErrorWorker`). */
  #fired(r: HostRecord, detector: Detector): void {
    if (r.ejected) return; // Envoy ignores detections on an ejected host (and keeps the counter).
    const s = this.#s;
    let reason: string;
    switch (detector) {
      case '5xx':
        reason =
          s.errorCodes === undefined
            ? `${r.consecutive5xx} consecutive 5xx (consecutive5xxErrors=${s.consecutive5xx})`
            : `${r.consecutive5xx} consecutive errors in [${[...s.errorCodes].join(',')}] (consecutive5xxErrors=${s.consecutive5xx})`;
        r.consecutive5xx = 0;
        break;
      case 'gateway':
        reason = `${r.consecutiveGateway} consecutive gateway errors (consecutiveGatewayErrors=${s.consecutiveGateway})`;
        r.consecutiveGateway = 0;
        break;
      case 'local':
        reason = `${r.consecutiveLocal} consecutive local-origin failures (consecutiveLocalOriginFailures=${s.consecutiveLocalOrigin})`;
        r.consecutiveLocal = 0;
        break;
    }
    this.#eject(r, reason, detector);
  }

  /** Envoy `ejectHost`: honours maxEjectionPercent, grows the backoff, marks the host. */
  #eject(r: HostRecord, reason: string, detector: Detector): void {
    const s = this.#s;
    const total = this.#records.size;
    const allowed =
      (100 * (this.#ejectedCount + 1)) / total <= s.maxEjectionPercent || (this.#alwaysEjectOne && this.#ejectedCount === 0);
    if (!allowed) {
      r.skipped++;
      this.#onChange({ type: 'overflow', host: r.host, reason, untilMs: 0, detector: DETECTOR_NAME[detector] });
      return;
    }
    const now = this.#clock.now();
    // Envoy stops growing n once base·n reaches max + base, so the cap holds and n stays bounded.
    if (r.backoff * s.baseEjectionMs < s.maxEjectionMs + s.baseEjectionMs) r.backoff++;
    const until = now + this.#ejectionMs(r.backoff);
    r.ejected = true;
    r.ejections++;
    r.lastEjection = now;
    this.#ejectedCount++;
    const h = r.host;
    h.ejected = true;
    h.ejectedUntil = until;
    h.ejectReason = reason;
    this.#onChange({ type: 'ejected', host: h, reason, untilMs: until, detector: DETECTOR_NAME[detector] });
    this.#startTimer();
  }

  #return(r: HostRecord, now: number, reason: string): void {
    const h = r.host;
    const until = h.ejectedUntil;
    r.ejected = false;
    r.lastReturn = now;
    r.consecutive5xx = 0;
    r.consecutiveGateway = 0;
    r.consecutiveLocal = 0;
    this.#ejectedCount--;
    h.ejected = false;
    h.ejectedUntil = 0;
    h.ejectReason = '';
    this.#onChange({ type: 'returned', host: h, reason, untilMs: until });
  }

  #ejectionMs(backoff: number): number {
    return Math.min(this.#s.baseEjectionMs * backoff, this.#s.maxEjectionMs);
  }

  /** Envoy `onIntervalTimer`: returns hosts whose time is up, then decays the backoff of healthy ones. */
  #sweep(): void {
    this.#timer = undefined;
    if (this.#closed) return;
    // A timer may fire a little before its time (Node arms it from the loop's cached millisecond): it is the planned sweep.
    const planned = this.#planned;
    const now = Math.max(this.#clock.now(), planned);
    const interval = this.#s.intervalMs;
    for (const r of this.#records.values()) {
      if (r.ejected && now >= r.host.ejectedUntil) {
        this.#return(r, now, `ejection time ${formatDuration(now - r.lastEjection)} elapsed (ejection ${r.ejections}, n=${r.backoff})`);
      }
    }
    for (const r of this.#records.values()) {
      if (!r.ejected && r.backoff > 0 && r.lastReturn >= 0 && now - r.lastReturn >= interval) r.backoff--;
    }
    if (this.#needsSweep()) this.#startTimer(planned);
  }

  #needsSweep(): boolean {
    if (this.#ejectedCount > 0) return true;
    for (const r of this.#records.values()) if (r.backoff > 0) return true;
    return false;
  }

  /** Arms the next sweep on Envoy's grid (creation + k·interval): after `last` (the sweep that just ran), else strictly after now. */
  #startTimer(last?: number): void {
    if (this.#timer !== undefined || this.#closed) return;
    const interval = this.#s.intervalMs;
    const now = this.#clock.now();
    let next = last !== undefined ? last + interval : this.#origin + (Math.floor((now - this.#origin) / interval) + 1) * interval;
    while (next <= now - interval) next += interval;
    this.#planned = next;
    this.#timer = this.#clock.setTimer(this.#sweepFn, Math.max(0, next - now));
  }

  #stopTimer(): void {
    this.#timer?.clear();
    this.#timer = undefined;
  }
}
