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
import type { ServerLogger } from './logger.ts';
import { RegistrationsWriter, readRegistrations, type StoredRegistration } from './registry-file.ts';
import type { RegistryChange, RegistryStore, WorkloadRecord } from './store.ts';
import { type HealthCondition, withCondition } from './workload-group.ts';

/** Options of {@link MemoryRegistry}. */
export interface MemoryRegistryOptions {
  /** The time line leases run on (`expiresAt` is on it) and the expiry timer. @defaultValue systemClock */
  readonly clock?: Clock;
  /**
   * Keep the registrations in this file (`<dataDir>/registrations.json`): `start()` restores the
   * records whose lease is still running, with what is left of it, so a restart (or a crash) is
   * not noticed by the workloads nor by their callers, and gives one more lease to those whose
   * lease ended less than {@link RESTORE_GRACE_MS} before (see `start()`). @defaultValue none (memory only)
   */
  readonly file?: string;
  /** Wall-clock epoch ms, to carry leases across processes in {@link file}. @defaultValue Date.now */
  readonly wallClock?: () => number;
  /** Where restoring and storing trouble is reported. */
  readonly logger?: ServerLogger;
}

/**
 * How long after its lease ended a stored record is still restored (for one more lease): 45
 * minutes, istiod's bound on keeping an auto-registered WorkloadEntry through its own absence
 * (`shouldCleanupEntry`: 1.5 × the maximum connection age, 30 minutes in Istio's istiod
 * deployment). An older one belongs to a workload that has had every chance to register again,
 * and its address may be another workload's by now.
 */
export const RESTORE_GRACE_MS = 45 * 60_000;

/** How long after a renewal the file is written at the latest (renewals only move expiries later). */
const RENEWAL_WRITE_DELAY_MS = 1000;

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
  readonly #file: string | undefined;
  readonly #wall: () => number;
  readonly #logger: ServerLogger | undefined;
  readonly #writer: RegistrationsWriter | undefined;
  #renewalWrite: Timer | undefined;

  constructor(options: MemoryRegistryOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#file = options.file;
    this.#wall = options.wallClock ?? Date.now;
    this.#logger = options.logger;
    this.#writer = this.#file === undefined ? undefined : new RegistrationsWriter(this.#file, () => this.#stored(), this.#logger);
  }

  /**
   * Restores the stored registrations (with {@link MemoryRegistryOptions.file}): a record whose
   * lease is still running keeps what is left of it; one whose lease ended while the control plane
   * was down gets one more lease, since its workload could not renew meanwhile — its next renewal
   * finds it, and callers keep routing to it; a workload that is gone is dropped when that lease
   * ends. (istiod does not remove an auto-registered WorkloadEntry whose istiod went away either:
   * `shouldCleanupEntry` keeps one marked connected for 1.5 × the maximum connection age.) One
   * whose lease ended more than {@link RESTORE_GRACE_MS} ago is dropped.
   */
  async start(): Promise<void> {
    if (this.#file === undefined) return;
    const wall = this.#wall();
    const now = this.#clock.now();
    let restored = 0;
    let ended = 0;
    let stale = 0;
    for (const r of await readRegistrations(this.#file, this.#logger)) {
      const left = r.expiresAtEpochMs - wall;
      if (left <= -RESTORE_GRACE_MS) {
        stale++;
        continue;
      }
      if (left <= 0) ended++;
      const ns = r.entry.metadata.namespace ?? 'default';
      const key = keyOf(ns, r.entry.metadata.name);
      if (!this.#records.has(key)) this.#owned.set(`${ns}/${r.service}`, (this.#owned.get(`${ns}/${r.service}`) ?? 0) + 1);
      // A lease never runs longer than granted, whatever the stored time says (a clock set back).
      this.#records.set(key, { entry: r.entry, service: r.service, leaseMs: r.leaseMs, expiresAt: now + (left <= 0 ? r.leaseMs : Math.min(left, r.leaseMs)) });
      restored++;
    }
    if (restored > 0) {
      this.#logger?.info?.(
        `restored ${restored} registration(s) from ${this.#file}${ended > 0 ? ` (${ended} whose lease ended while it was down kept for one more lease: their workloads could not renew meanwhile; one that does not renew is dropped when it ends)` : ''}`,
      );
    }
    if (stale > 0) this.#logger?.info?.(`dropped ${stale} stored registration(s) from ${this.#file} whose lease ended more than ${RESTORE_GRACE_MS / 60_000} minutes ago`);
    this.#version = undefined;
    this.#schedule();
    if (ended > 0 || stale > 0) void this.#writer?.save();
  }

  /** The live records as stored in the file. */
  #stored(): StoredRegistration[] {
    const now = this.#clock.now();
    const wall = this.#wall();
    const out: StoredRegistration[] = [];
    for (const r of this.#records.values()) {
      if (r.expiresAt > now) out.push({ entry: r.entry, service: r.service, leaseMs: r.leaseMs, expiresAtEpochMs: wall + (r.expiresAt - now) });
    }
    return out;
  }

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
    // Answered once stored: an accepted registration survives a crash right after.
    await this.#writer?.save();
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
    // It is stored within a second (renewals come every third of the lease: no write each).
    if (this.#writer !== undefined && this.#renewalWrite === undefined && !this.#closed) {
      this.#renewalWrite = this.#clock.setTimer(() => {
        this.#renewalWrite = undefined;
        void this.#writer?.save();
      }, RENEWAL_WRITE_DELAY_MS);
    }
    return rec;
  }

  async health(namespace: string, name: string, condition: HealthCondition, owner?: string): Promise<WorkloadRecord | undefined> {
    const key = keyOf(namespace, name);
    const old = this.#live(key);
    if (old === undefined) return undefined;
    if (owner !== undefined && old.service !== owner) throw notOwner(namespace, name, old.service, owner, 'report health');
    const rec: WorkloadRecord = { ...old, entry: withCondition(old.entry, condition) };
    this.#records.set(key, rec);
    this.#changed({ kind: 'delta', upserted: [rec], removed: [] });
    // Stored before it is answered, as a registration: a restart keeps the workload's health.
    await this.#writer?.save();
    return rec;
  }

  async deregister(namespace: string, name: string, owner?: string): Promise<boolean> {
    const key = keyOf(namespace, name);
    const old = this.#live(key);
    if (old === undefined) return false;
    if (owner !== undefined && old.service !== owner) throw notOwner(namespace, name, old.service, owner, 'deregister');
    this.#remove(key, old);
    this.#changed({ kind: 'delta', upserted: [], removed: [{ namespace, name }] });
    await this.#writer?.save();
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
        // The whole entry, as the etcd registry: an annotation (health-checks-enabled) changes what is an endpoint.
        h.update(JSON.stringify([key, r.service, r.entry]));
        h.update('\n');
      }
      this.#version = h.digest('hex').slice(0, 12);
    }
    return this.#version;
  }

  onChange(listener: (change: RegistryChange) => void): void {
    this.#listeners.push(listener);
  }

  /** Stops the expiry timer; with a file, writes the registrations a last time (their leases keep running). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#timer?.clear();
    this.#timer = undefined;
    this.#renewalWrite?.clear();
    this.#renewalWrite = undefined;
    await this.#writer?.save();
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
    if (removed.length > 0) {
      this.#changed({ kind: 'delta', upserted: [], removed });
      void this.#writer?.save();
    }
  }
}
