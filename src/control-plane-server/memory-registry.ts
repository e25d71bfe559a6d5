/**
 * The in-process registry of one control-plane server: registered workloads with leases.
 * One timer, set for the earliest expiry, removes every record whose lease ended.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { WireResource } from '../control-plane/protocol.ts';
import type { RegistryStore, WorkloadRecord } from './store.ts';

/** Options of {@link MemoryRegistry}. */
export interface MemoryRegistryOptions {
  /** Current time in epoch ms. @defaultValue Date.now */
  readonly now?: () => number;
}

const keyOf = (namespace: string, name: string): string => `${namespace}/${name}`;

/** A {@link RegistryStore} kept in memory (a single control-plane replica). */
export class MemoryRegistry implements RegistryStore {
  readonly #records = new Map<string, WorkloadRecord>();
  readonly #listeners: (() => void)[] = [];
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  #version: string | undefined;
  #closed = false;

  constructor(options: MemoryRegistryOptions = {}) {
    this.#now = options.now ?? Date.now;
  }

  async start(): Promise<void> {}

  async register(entry: WireResource, service: string, leaseMs: number): Promise<WorkloadRecord> {
    const ns = entry.metadata.namespace ?? 'default';
    const rec: WorkloadRecord = { entry, service, leaseMs, expiresAt: this.#now() + leaseMs };
    this.#records.set(keyOf(ns, entry.metadata.name), rec);
    this.#schedule();
    this.#changed();
    return rec;
  }

  async renew(namespace: string, name: string): Promise<WorkloadRecord | undefined> {
    const key = keyOf(namespace, name);
    const old = this.#records.get(key);
    if (old === undefined || old.expiresAt <= this.#now()) return undefined;
    const rec: WorkloadRecord = { ...old, expiresAt: this.#now() + old.leaseMs };
    this.#records.set(key, rec);
    // A renewal only pushes the expiry later; the timer fires at the old time and reschedules.
    return rec;
  }

  async deregister(namespace: string, name: string): Promise<boolean> {
    if (!this.#records.delete(keyOf(namespace, name))) return false;
    this.#changed();
    return true;
  }

  list(): readonly WorkloadRecord[] {
    return [...this.#records.values()];
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

  onChange(listener: () => void): void {
    this.#listeners.push(listener);
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #changed(): void {
    this.#version = undefined;
    for (const l of this.#listeners) l();
  }

  /** Sets the one timer for the earliest expiry, unless it is already set for that time or earlier. */
  #schedule(): void {
    if (this.#closed) return;
    let earliest = Number.POSITIVE_INFINITY;
    for (const r of this.#records.values()) if (r.expiresAt < earliest) earliest = r.expiresAt;
    if (earliest === Number.POSITIVE_INFINITY || earliest >= this.#timerAt) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = earliest;
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, earliest - this.#now()));
    this.#timer.unref();
  }

  #expire(): void {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = this.#now();
    let removed = false;
    for (const [key, r] of this.#records) {
      if (r.expiresAt <= now) {
        this.#records.delete(key);
        removed = true;
      }
    }
    this.#schedule();
    if (removed) this.#changed();
  }
}
