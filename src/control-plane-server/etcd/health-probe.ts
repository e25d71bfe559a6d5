/**
 * Keeps a replica's view of etcd's health current, as the status promises: without it the
 * health was only what the last call or watch saw, so a replica said UNHEALTHY for minutes after
 * etcd recovered (until some request succeeded) and `healthy` while etcd was frozen (until some
 * request failed). One cheap call (`maintenance/status`) with a short timeout, every
 * `everyMs` while etcd is healthy and every `unhealthyEveryMs` while it is not; its outcome is
 * reported to the client's health like any call's.
 *
 * @module
 */
import { type Clock, systemClock, type Timer } from '../../core/clock.ts';
import type { EtcdClient } from './client.ts';

/** Options of {@link EtcdHealthProbe}. */
export interface EtcdHealthProbeOptions {
  /** Interval while etcd is healthy, in ms. @defaultValue 5000 */
  readonly everyMs?: number;
  /** Interval while etcd is unhealthy, in ms. @defaultValue 1000 */
  readonly unhealthyEveryMs?: number;
  /** Timeout of one probe on one endpoint, in ms: a frozen etcd accepts connections and never answers. @defaultValue 2000 */
  readonly timeoutMs?: number;
  /** The probe's timers (they do not keep the process alive). @defaultValue systemClock */
  readonly clock?: Clock;
}

/** Probes etcd on a timer; {@link stop} ends it. */
export class EtcdHealthProbe {
  readonly #client: EtcdClient;
  readonly #everyMs: number;
  readonly #unhealthyEveryMs: number;
  readonly #timeoutMs: number;
  readonly #clock: Clock;
  #timer: Timer | undefined;
  #stopped = false;

  constructor(client: EtcdClient, options: EtcdHealthProbeOptions = {}) {
    this.#client = client;
    this.#everyMs = options.everyMs ?? 5000;
    this.#unhealthyEveryMs = options.unhealthyEveryMs ?? 1000;
    this.#timeoutMs = options.timeoutMs ?? 2000;
    this.#clock = options.clock ?? systemClock;
  }

  /** Schedules the first probe. */
  start(): void {
    if (!this.#stopped && this.#timer === undefined) this.#schedule();
  }

  /**
   * One probe now (its outcome becomes the client's health). The endpoints that hold watches are
   * asked first, each on its own: one that does not answer in time (or has no leader) has its
   * watches moved to another endpoint, as they would otherwise wait on it forever (with a single
   * endpoint there is nowhere to move them: they resume when it answers again).
   */
  async probe(): Promise<void> {
    for (const endpoint of this.#client.endpoints.length > 1 ? this.#client.streamEndpoints() : []) {
      const problem = await this.#client.endpointProblem(endpoint, this.#timeoutMs);
      if (problem !== undefined) this.#client.dropStreams(endpoint, `etcd ${endpoint} failed a health check (${problem}); watching through another endpoint`);
    }
    try {
      await this.#client.call('maintenance/status', '/v3/maintenance/status', {}, { timeoutMs: this.#timeoutMs });
    } catch {
      // Reported by the call as the client's health (with what failed).
    }
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.clear();
    this.#timer = undefined;
  }

  #schedule(): void {
    const ms = this.#client.health.healthy ? this.#everyMs : this.#unhealthyEveryMs;
    this.#timer = this.#clock.setTimer(() => {
      void this.probe().then(() => {
        if (!this.#stopped) this.#schedule();
      });
    }, ms);
  }
}
