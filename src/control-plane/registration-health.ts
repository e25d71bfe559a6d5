/**
 * The health of a registered workload whose WorkloadGroup has a readiness probe: the probe runs
 * in this process ({@link ReadinessChecker}) and each transition is reported to the control
 * plane (`PUT /v1/workloads/<ns>/<name>/health`), which writes the WorkloadEntry's `Healthy`
 * condition — what pilot-agent and istiod do for a VM. As pilot-agent keeps its last health
 * event and sends it again on every new connection to istiod (`xds_proxy.go`
 * `sendHealthCheckRequest`), the last transition is sent again when the workload registers
 * anew (the control plane had forgotten it), and a report that failed is retried with a backoff
 * of 1 s doubling to {@link MAX_RETRY_MS} (and with the next lease renewal): pilot-agent's
 * health events go over its open xDS stream, so a stale condition does not outlive a short
 * control-plane hiccup.
 *
 * @module
 */
import type { ReadinessProbe } from '../config/types/networking.ts';
import type { Clock, Timer } from '../core/clock.ts';
import { probeHostCheck } from './probe-hosts.ts';
import { proberOf } from './probers.ts';
import { type HealthEvent, probeTiming, ReadinessChecker } from './readiness-checker.ts';

/** First retry of a failed report, doubled on each failure up to {@link MAX_RETRY_MS}. */
const FIRST_RETRY_MS = 1000;
/** Longest wait between retries of a failed report. */
export const MAX_RETRY_MS = 8000;

/** What a {@link RegistrationHealth} needs. */
export interface RegistrationHealthOptions {
  readonly clock: Clock;
  readonly probe: ReadinessProbe;
  /** The workload's registered address: the probe's host unless it names one (pilot-agent's instance IP). */
  readonly host: string;
  /** Hosts other than `host` and loopback the probe may reach (`mesh.register({ probeHosts })`). */
  readonly probeHosts?: readonly string[] | undefined;
  /** Sends one report; rejects when the control plane did not take it. */
  readonly send: (e: HealthEvent) => Promise<void>;
  readonly logger: { warn(message: string): void };
  /** `namespace/name` of the registration, for messages. */
  readonly describe: () => string;
}

/** Runs a registration's probe and reports its transitions. */
export class RegistrationHealth {
  readonly #o: RegistrationHealthOptions;
  readonly #checker: ReadinessChecker | undefined;
  /** The last transition, and whether the control plane has it. */
  #last: HealthEvent | undefined;
  #delivered = true;
  /** Bumped by each transition and each registration made anew: a report answered for an older generation does not count. */
  #generation = 0;
  #sending: Promise<void> | undefined;
  #retry: Timer | undefined;
  #retryMs = FIRST_RETRY_MS;
  #failing = false;
  #stopped = false;

  constructor(o: RegistrationHealthOptions) {
    this.#o = o;
    const check = probeHostCheck(o.host, o.probeHosts);
    const target = o.probe.httpGet?.host || o.probe.tcpSocket?.host;
    const refused = target === undefined || target === '' ? undefined : check(target);
    if (refused !== undefined) o.logger.warn(`meshlet: registration ${o.describe()}: its WorkloadGroup's probe is not run: ${refused}; it stays out of service`);
    const prober = proberOf(o.probe, o.host, check);
    this.#checker = prober === undefined ? undefined : new ReadinessChecker(o.clock, prober, probeTiming(o.probe), (e) => this.#transition(e));
    if (prober === undefined) o.logger.warn(`meshlet: registration ${o.describe()}: its WorkloadGroup's probe has no method meshlet runs (httpGet, tcpSocket or exec); it stays out of service until its Healthy condition is set`);
  }

  /** The probe's settings as a key: a registration made anew under a changed probe restarts it. */
  static key(probe: ReadinessProbe): string {
    return JSON.stringify(probe);
  }

  start(): void {
    this.#checker?.start();
  }

  /** After a lease renewal: reports again what the control plane may not have (a failed report, or all of it when `registeredAgain`). */
  resync(registeredAgain: boolean): void {
    if (registeredAgain) {
      this.#generation++;
      this.#delivered = false;
    }
    if (!this.#delivered) void this.#flush();
  }

  /** Stops probing and waits for a report in flight; nothing is sent after. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#retry?.clear();
    this.#retry = undefined;
    await this.#checker?.stop();
    await this.#sending;
  }

  #transition(e: HealthEvent): void {
    this.#last = e;
    this.#generation++;
    this.#delivered = false;
    void this.#flush();
  }

  /** Sends the last transition, one report at a time (a newer one follows a report in flight). */
  async #flush(): Promise<void> {
    while (!this.#stopped && !this.#delivered && this.#last !== undefined && this.#sending === undefined) {
      const e = this.#last;
      const generation = this.#generation;
      this.#retry?.clear();
      this.#retry = undefined;
      let ok = false;
      this.#sending = this.#o.send(e).then(
        () => {
          ok = true;
        },
        (err: unknown) => {
          if (!this.#failing) this.#o.logger.warn(`meshlet: reporting ${e.healthy ? 'healthy' : 'unhealthy'} for registration ${this.#o.describe()} failed, retrying: ${(err as Error).message}`);
        },
      );
      await this.#sending;
      this.#sending = undefined;
      this.#failing = !ok;
      if (!ok) {
        this.#scheduleRetry();
        return;
      }
      this.#retryMs = FIRST_RETRY_MS;
      // Sent to a record since made anew, or overtaken by a newer transition: send again.
      if (this.#generation === generation) this.#delivered = true;
    }
  }

  /** Tries a failed report again after a backoff (1 s doubling to {@link MAX_RETRY_MS}). */
  #scheduleRetry(): void {
    if (this.#stopped || this.#retry !== undefined) return;
    const ms = this.#retryMs;
    this.#retryMs = Math.min(this.#retryMs * 2, MAX_RETRY_MS);
    this.#retry = this.#o.clock.setTimer(() => {
      this.#retry = undefined;
      void this.#flush();
    }, ms);
  }
}
