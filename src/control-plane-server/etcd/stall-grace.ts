/**
 * Registrations that etcd expired because etcd itself was unavailable (frozen, partitioned,
 * restored late): the workloads kept renewing, their renewals could not reach etcd, and when
 * etcd came back it expired every lease at once. Pushing that to callers would empty every
 * endpoint set although no workload stopped. A record removed by an expiry while this replica
 * saw etcd unhealthy, or within one lease of etcd's recovery, is instead **held**: still served
 * for one more lease, during which its workload's next renewal (answered 404, the record is
 * gone) registers it again, which replaces the hold. A held record whose workload does not come
 * back is dropped when its hold ends, as its lease would have.
 *
 * @module
 */
import { type Clock, systemClock, type Timer } from '../../core/clock.ts';
import type { WorkloadRecord } from '../store.ts';
import type { EtcdClient } from './client.ts';

/** What {@link StallGrace} holds, per key. */
interface Held {
  readonly record: WorkloadRecord;
  readonly timer: Timer;
}

/** Tracks etcd's health and the records held after a stall. */
export class StallGrace {
  readonly #clock: Clock;
  readonly #onRelease: (key: string, record: WorkloadRecord) => void;
  readonly #held = new Map<string, Held>();
  #unhealthy: boolean;
  #recoveredAt = Number.NEGATIVE_INFINITY;
  #closed = false;

  /** @param onRelease called when a hold ends without the workload registering again. */
  constructor(client: EtcdClient, onRelease: (key: string, record: WorkloadRecord) => void, clock: Clock = systemClock) {
    this.#clock = clock;
    this.#onRelease = onRelease;
    this.#unhealthy = !client.health.healthy;
    client.onHealthChange((h) => {
      if (h.healthy) {
        this.#unhealthy = false;
        this.#recoveredAt = this.#clock.now();
      } else {
        this.#unhealthy = true;
      }
    });
  }

  /** Whether the removal of `record` now may be an expiry caused by etcd's own outage. */
  shouldHold(record: WorkloadRecord): boolean {
    return !this.#closed && (this.#unhealthy || this.#clock.now() - this.#recoveredAt < record.leaseMs);
  }

  /** Keeps serving `record` under `key` for one more lease. */
  hold(key: string, record: WorkloadRecord): void {
    this.release(key);
    // The registry's expiresAt is epoch ms.
    const held: WorkloadRecord = { ...record, expiresAt: Date.now() + record.leaseMs };
    const timer = this.#clock.setTimer(() => {
      if (this.#held.get(key)?.record !== held) return;
      this.#held.delete(key);
      this.#onRelease(key, held);
    }, record.leaseMs);
    this.#held.set(key, { record: held, timer });
  }

  /** Ends a hold (the workload registered again, or deregistered); the held record, if any. */
  release(key: string): WorkloadRecord | undefined {
    const h = this.#held.get(key);
    if (h === undefined) return undefined;
    h.timer.clear();
    this.#held.delete(key);
    return h.record;
  }

  has(key: string): boolean {
    return this.#held.has(key);
  }

  /** The held records by key. */
  entries(): IterableIterator<[string, WorkloadRecord]> {
    const it = this.#held.entries();
    return (function* () {
      for (const [k, h] of it) yield [k, h.record] as [string, WorkloadRecord];
    })();
  }

  close(): void {
    this.#closed = true;
    for (const h of this.#held.values()) h.timer.clear();
    this.#held.clear();
  }
}
