/**
 * The in-process registry of one control-plane server: registered workloads with leases.
 * One timer, set for the earliest expiry, removes every record whose lease ended.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { WireResource, WorkloadRef } from '../control-plane/protocol.ts';
import { type Clock, systemClock, type Timer } from '../core/clock.ts';
import { ControlPlaneError } from './errors.ts';
import type { RegistryChange, RegistryStore, WorkloadRecord } from './store.ts';

/** Options of {@link MemoryRegistry}. */
export interface MemoryRegistryOptions {
  /** The time line leases run on (`expiresAt` is on it) and the expiry timer. @defaultValue systemClock */
  readonly clock?: Clock;
}

const keyOf = (namespace: string, name: string): string => `${namespace}/${name}`;

/** The refusal of a change to a record another service owns. */
export function notOwner(namespace: string, name: string, owner: string, caller: string, what: string): ControlPlaneError {
  return new ControlPlaneError(
    what === 'register' ? 'CONFLICT' : 'FORBIDDEN',
    `${what}: workload ${namespace}/${name} is registered by service ${namespace}/${owner}, not ${namespace}/${caller}`,
  );
}

/** A {@link RegistryStore} kept in memory (a single control-plane replica). */
export class MemoryRegistry implements RegistryStore {
  readonly #records = new Map<string, WorkloadRecord>();
  /** Live records per owner (`namespace/service`). */
  readonly #owned = new Map<string, number>();
  readonly #listeners: ((change: RegistryChange) => void)[] = [];
  readonly #clock: Clock;
  #timer: Timer | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  #version: string | undefined;
  #closed = false;

  constructor(options: MemoryRegistryOptions = {}) {
    this.#clock = options.clock ?? systemClock;
  }

  async start(): Promise<void> {}

  async register(entry: WireResource, service: string, leaseMs: number): Promise<WorkloadRecord> {
    const ns = entry.metadata.namespace ?? 'default';
    const key = keyOf(ns, entry.metadata.name);
    const old = this.#live(key);
    if (old !== undefined && old.service !== service) throw notOwner(ns, entry.metadata.name, old.service, service, 'register');
    const expired = this.#records.get(key);
    if (old === undefined && expired !== undefined) this.#remove(key, expired);
    const rec: WorkloadRecord = { entry, service, leaseMs, expiresAt: this.#clock.now() + leaseMs };
    this.#records.set(key, rec);
    this.#owned.set(`${ns}/${service}`, (this.#owned.get(`${ns}/${service}`) ?? 0) + (old === undefined ? 1 : 0));
    this.#schedule();
    this.#changed({ kind: 'delta', upserted: [rec], removed: [] });
    return rec;
  }

  async renew(namespace: string, name: string, owner?: string): Promise<WorkloadRecord | undefined> {
    const key = keyOf(namespace, name);
    const old = this.#live(key);
    if (old === undefined) return undefined;
    if (owner !== undefined && old.service !== owner) throw notOwner(namespace, name, old.service, owner, 'renew');
    const rec: WorkloadRecord = { ...old, expiresAt: this.#clock.now() + old.leaseMs };
    this.#records.set(key, rec);
    // A renewal only pushes the expiry later; the timer fires at the old time and reschedules.
    return rec;
  }

  async deregister(namespace: string, name: string, owner?: string): Promise<boolean> {
    const key = keyOf(namespace, name);
    const old = this.#live(key);
    if (old === undefined) return false;
    if (owner !== undefined && old.service !== owner) throw notOwner(namespace, name, old.service, owner, 'deregister');
    this.#remove(key, old);
    this.#changed({ kind: 'delta', upserted: [], removed: [{ namespace, name }] });
    return true;
  }

  list(): readonly WorkloadRecord[] {
    return [...this.#records.values()];
  }

  owned(namespace: string, service: string): number {
    return this.#owned.get(`${namespace}/${service}`) ?? 0;
  }

  /** The record under `key` unless its lease ended (the expiry timer may not have run yet). */
  #live(key: string): WorkloadRecord | undefined {
    const rec = this.#records.get(key);
    return rec === undefined || rec.expiresAt <= this.#clock.now() ? undefined : rec;
  }

  #remove(key: string, rec: WorkloadRecord): void {
    this.#records.delete(key);
    const ownerKey = `${rec.entry.metadata.namespace ?? 'default'}/${rec.service}`;
    const n = (this.#owned.get(ownerKey) ?? 1) - 1;
    if (n <= 0) this.#owned.delete(ownerKey);
    else this.#owned.set(ownerKey, n);
  }

  version(): string {
    if (this.#version === undefined) {
      const h = createHash('sha256');
      for (const key of [...this.#records.keys()].sort()) {
        const r = this.#records.get(key)!;
        h.update(JSON.stringify([key, r.service, r.entry.metadata.labels ?? null, r.entry.spec]));
        h.update('\n');
      }
      this.#version = h.digest('hex').slice(0, 12);
    }
    return this.#version;
  }

  onChange(listener: (change: RegistryChange) => void): void {
    this.#listeners.push(listener);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#timer?.clear();
    this.#timer = undefined;
  }

  #changed(change: RegistryChange): void {
    this.#version = undefined;
    for (const l of this.#listeners) l(change);
  }

  /** Sets the one timer for the earliest expiry, unless it is already set for that time or earlier. */
  #schedule(): void {
    if (this.#closed) return;
    let earliest = Number.POSITIVE_INFINITY;
    for (const r of this.#records.values()) if (r.expiresAt < earliest) earliest = r.expiresAt;
    if (earliest === Number.POSITIVE_INFINITY || earliest >= this.#timerAt) return;
    this.#timer?.clear();
    this.#timerAt = earliest;
    // Background housekeeping: the clock's timer does not keep the process alive.
    this.#timer = this.#clock.setTimer(() => this.#expire(), Math.max(0, earliest - this.#clock.now()));
  }

  #expire(): void {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = this.#clock.now();
    const removed: WorkloadRef[] = [];
    for (const [key, r] of this.#records) {
      if (r.expiresAt <= now) {
        this.#remove(key, r);
        removed.push({ namespace: r.entry.metadata.namespace ?? 'default', name: r.entry.metadata.name });
      }
    }
    this.#schedule();
    if (removed.length > 0) this.#changed({ kind: 'delta', upserted: [], removed });
  }
}
