/**
 * Runs a WorkloadGroup's readiness probe for a registered workload, as pilot-agent does on a VM
 * (`pkg/istio-agent/health/health_check.go` `PerformApplicationHealthCheck`): after
 * `initialDelaySeconds`, one probe at once and then one every `periodSeconds`, each given
 * `timeoutSeconds`; `successThreshold` consecutive successes report healthy and
 * `failureThreshold` consecutive failures report unhealthy — only transitions are reported.
 * Unset (or 0) values take pilot-agent's defaults (`fillInDefaults`): period 10 s, timeout 1 s,
 * success and failure thresholds 1 (not Kubernetes' failure threshold 3). Timers run on the
 * mesh's clock.
 *
 * @module
 */
import type { ReadinessProbe } from '../config/types/networking.ts';
import type { Clock, Timer } from '../core/clock.ts';
import type { ProbeOutcome, Prober } from './probers.ts';

/** A probe's settings with pilot-agent's defaults filled in, in ms. */
export interface ProbeTiming {
  readonly initialDelayMs: number;
  readonly periodMs: number;
  readonly timeoutMs: number;
  readonly successThreshold: number;
  readonly failureThreshold: number;
}

const orDefault = (v: number | undefined, d: number): number => (v === undefined || v === 0 ? d : v);

/** pilot-agent's `fillInDefaults`: thresholds 1, timeout 1 s, period 10 s; no initial delay. */
export function probeTiming(p: ReadinessProbe): ProbeTiming {
  return {
    initialDelayMs: (p.initialDelaySeconds ?? 0) * 1000,
    periodMs: orDefault(p.periodSeconds, 10) * 1000,
    timeoutMs: orDefault(p.timeoutSeconds, 1) * 1000,
    successThreshold: orDefault(p.successThreshold, 1),
    failureThreshold: orDefault(p.failureThreshold, 1),
  };
}

/** A health transition to report. */
export interface HealthEvent {
  readonly healthy: boolean;
  /** Why it is unhealthy (the failed probe's error). */
  readonly message?: string;
}

type Last = 'undefined' | 'healthy' | 'unhealthy';

/** Probes on a clock and calls `report` on each transition until {@link stop}. */
export class ReadinessChecker {
  readonly #clock: Clock;
  readonly #prober: Prober;
  readonly #t: ProbeTiming;
  readonly #report: (e: HealthEvent) => void;
  #timer: Timer | undefined;
  #abort: AbortController | undefined;
  /** Probes not finished yet (one timed out keeps running until its abort ends it). */
  readonly #running = new Set<Promise<unknown>>();
  #stopped = false;
  #successes = 0;
  #failures = 0;
  #last: Last = 'undefined';
  #lastStart = 0;

  constructor(clock: Clock, prober: Prober, timing: ProbeTiming, report: (e: HealthEvent) => void) {
    this.#clock = clock;
    this.#prober = prober;
    this.#t = timing;
    this.#report = report;
  }

  /** Starts probing after the initial delay. */
  start(): void {
    this.#timer = this.#clock.setTimer(() => void this.#check(), this.#t.initialDelayMs);
  }

  /**
   * Stops probing (clears the timer, aborts a probe in flight); nothing is reported after.
   * Resolves once every probe started has finished (an exec probe's command is killed and reaped).
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#timer?.clear();
    this.#timer = undefined;
    this.#abort?.abort();
    await Promise.all(this.#running);
  }

  /** One probe with its timeout on the clock. */
  #probe(): Promise<ProbeOutcome> {
    const abort = new AbortController();
    this.#abort = abort;
    return new Promise<ProbeOutcome>((resolve) => {
      const timeout = this.#clock.setTimer(() => {
        resolve({ healthy: false, message: `probe timed out after ${this.#t.timeoutMs / 1000}s` });
        abort.abort();
      }, this.#t.timeoutMs);
      const run = this.#prober(abort.signal);
      const settled: Promise<void> = run.then(
        () => void this.#running.delete(settled),
        () => void this.#running.delete(settled),
      );
      this.#running.add(settled);
      run.then(
        (o) => {
          timeout.clear();
          resolve(o);
        },
        (e: unknown) => {
          timeout.clear();
          resolve({ healthy: false, message: e instanceof Error ? e.message : String(e) });
        },
      );
    });
  }

  async #check(): Promise<void> {
    if (this.#stopped) return;
    this.#timer = undefined;
    this.#lastStart = this.#clock.now();
    const o = await this.#probe();
    if (this.#stopped) return;
    if (o.healthy) {
      this.#successes++;
      this.#failures = 0;
      if (this.#successes === this.#t.successThreshold && this.#last !== 'healthy') {
        this.#successes = 0;
        this.#last = 'healthy';
        this.#report({ healthy: true });
      }
    } else {
      this.#failures++;
      this.#successes = 0;
      if (this.#failures === this.#t.failureThreshold && this.#last !== 'unhealthy') {
        this.#failures = 0;
        this.#last = 'unhealthy';
        this.#report({ healthy: false, message: o.message ?? 'probe failed' });
      }
    }
    // A ticker every period from the first probe; a probe longer than a period is followed at once (Go's ticker keeps one tick).
    const next = this.#lastStart + this.#t.periodMs - this.#clock.now();
    this.#timer = this.#clock.setTimer(() => void this.#check(), Math.max(0, next));
  }
}
