/**
 * The workload registry of `meshlet control-plane` replicas kept in etcd: each record is
 * `{ entry, service, leaseMs, lease }` (JSON) under `<prefix>/registry/<namespace>/<name>`,
 * attached to its own etcd lease with TTL `ceil(leaseMs / 1000)`. etcd removes expired records,
 * so expiry works whichever replica dies; a renewal is a keepalive of the lease named in the
 * record, so any replica can renew any record. Every replica keeps a watch-maintained cache.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { WireResource } from '../../control-plane/protocol.ts';
import type { RegistryStore, WorkloadRecord } from '../store.ts';
import type { EtcdClient, KeyValue } from './client.ts';
import type { EtcdLogger } from './config-store.ts';
import { PrefixWatch, type WatchEvent } from './watch.ts';

/** Options of {@link EtcdRegistryStore}. */
export interface EtcdRegistryStoreOptions {
  /** Key prefix shared by the replicas. @defaultValue '/meshlet' */
  readonly prefix?: string;
  /** Namespace of entries without one. @defaultValue 'default' */
  readonly defaultNamespace?: string;
  /** Where watch trouble is reported. */
  readonly logger?: EtcdLogger;
  /** How long register/deregister wait for the watch to deliver their own write. @defaultValue 2000 */
  readonly settleMs?: number;
}

/** The stored JSON of one record. */
interface StoredRecord {
  readonly entry: WireResource;
  readonly service: string;
  readonly leaseMs: number;
  /** The etcd lease id (int64 as a string). */
  readonly lease: string;
}

interface Cached {
  readonly record: WorkloadRecord;
  readonly lease: string;
}

function decode(kv: KeyValue): StoredRecord | undefined {
  try {
    const v = JSON.parse(kv.value) as Partial<StoredRecord>;
    if (typeof v.entry !== 'object' || v.entry === null || typeof v.service !== 'string' || typeof v.leaseMs !== 'number') return undefined;
    return { entry: v.entry, service: v.service, leaseMs: v.leaseMs, lease: typeof v.lease === 'string' && v.lease !== '' ? v.lease : kv.lease };
  } catch {
    return undefined;
  }
}

/**
 * A {@link RegistryStore} backed by etcd leases. `expiresAt` is exact on the replica that
 * granted or last renewed a lease; other replicas estimate it as "seen + leaseMs" (a renewal
 * elsewhere does not write the record, so they do not hear of it).
 */
export class EtcdRegistryStore implements RegistryStore {
  readonly #client: EtcdClient;
  readonly #root: string;
  readonly #defaultNamespace: string;
  readonly #logger: EtcdLogger | undefined;
  readonly #settleMs: number;
  readonly #watch: PrefixWatch;
  readonly #cache = new Map<string, Cached>();
  #version = '';
  readonly #listeners: (() => void)[] = [];
  #started: Promise<void> | undefined;
  #watchDown = false;

  /** A registry over `client` (shared with the config store); call {@link start} before use. */
  constructor(client: EtcdClient, options: EtcdRegistryStoreOptions = {}) {
    this.#client = client;
    this.#root = `${(options.prefix ?? '/meshlet').replace(/\/+$/, '')}/registry/`;
    this.#defaultNamespace = options.defaultNamespace ?? 'default';
    this.#logger = options.logger;
    this.#settleMs = options.settleMs ?? 2000;
    this.#watch = new PrefixWatch(client, this.#root, {
      onSnapshot: (kvs) => this.#onSnapshot(kvs),
      onEvents: (events) => this.#onEvents(events),
      onError: (err) => {
        if (!this.#watchDown) this.#logger?.warn(`etcd registry watch: ${err.message}; retrying`);
        this.#watchDown = true;
      },
      onConnected: () => {
        if (this.#watchDown) this.#logger?.info?.('etcd registry watch: resumed');
        this.#watchDown = false;
      },
    });
    this.#version = this.#computeVersion();
  }

  /** Lists the registry and watches it. Rejects when etcd is unreachable. */
  start(): Promise<void> {
    this.#started ??= this.#watch.start();
    return this.#started;
  }

  /** Stores the record on a fresh lease of `ceil(leaseMs / 1000)` s; a replaced record's lease is revoked. */
  async register(entry: WireResource, service: string, leaseMs: number): Promise<WorkloadRecord> {
    const namespace = entry.metadata.namespace ?? this.#defaultNamespace;
    const key = this.#key(namespace, entry.metadata.name);
    const lease = await this.#client.grantLease(Math.max(1, Math.ceil(leaseMs / 1000)));
    const value: StoredRecord = { entry: { ...entry, metadata: { ...entry.metadata, namespace } }, service, leaseMs, lease: lease.id };
    const res = await this.#client.put(key, JSON.stringify(value), { lease: lease.id, prevKv: true });
    const old = res.prev === undefined ? undefined : decode(res.prev);
    if (old !== undefined && old.lease !== lease.id) await this.#revoke(old.lease);
    const record: WorkloadRecord = { entry: value.entry, service, leaseMs, expiresAt: Date.now() + lease.ttlSeconds * 1000 };
    await this.#watch.waitFor(res.revision, this.#settleMs);
    const cached = this.#cache.get(key);
    if (cached?.lease === lease.id) this.#cache.set(key, { record, lease: lease.id });
    return record;
  }

  /** Keeps the record's lease alive (whichever replica granted it); undefined when the record or lease is gone. */
  async renew(namespace: string, name: string): Promise<WorkloadRecord | undefined> {
    const key = this.#key(namespace, name);
    const kv = await this.#client.get(key);
    const stored = kv === undefined ? undefined : decode(kv);
    if (stored === undefined || stored.lease === '') return undefined;
    const ttl = await this.#client.keepAlive(stored.lease);
    if (ttl <= 0) return undefined;
    const record: WorkloadRecord = { entry: stored.entry, service: stored.service, leaseMs: stored.leaseMs, expiresAt: Date.now() + ttl * 1000 };
    if (this.#cache.get(key)?.lease === stored.lease) this.#cache.set(key, { record, lease: stored.lease });
    return record;
  }

  /** Deletes the record and revokes its lease; false when there was none. */
  async deregister(namespace: string, name: string): Promise<boolean> {
    const res = await this.#client.delete(this.#key(namespace, name), { prevKv: true });
    const old = res.prev[0] === undefined ? undefined : decode(res.prev[0]);
    if (old !== undefined && old.lease !== '') await this.#revoke(old.lease);
    if (res.deleted > 0) await this.#watch.waitFor(res.revision, this.#settleMs);
    return res.deleted > 0;
  }

  /** Every live record, sorted by namespace/name (from the watch-maintained cache). */
  list(): readonly WorkloadRecord[] {
    return [...this.#cache.keys()].sort().map((k) => this.#cache.get(k)!.record);
  }

  /** A hash of the sorted records: the same on every replica for the same content. */
  version(): string {
    return this.#version;
  }

  /** Called after every change seen by the watch (any replica, expiry), without debouncing. */
  onChange(listener: () => void): void {
    this.#listeners.push(listener);
  }

  /** Stops watching. Records stay (their leases keep running): another replica serves them. */
  async close(): Promise<void> {
    await this.#watch.close();
  }

  #key(namespace: string, name: string): string {
    return `${this.#root}${namespace}/${name}`;
  }

  async #revoke(lease: string): Promise<void> {
    try {
      await this.#client.revokeLease(lease);
    } catch (err) {
      this.#logger?.warn(`etcd registry: could not revoke lease ${lease} (it will expire): ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  #put(kv: KeyValue): void {
    const stored = decode(kv);
    if (stored === undefined) {
      this.#logger?.warn(`etcd registry: ignoring ${kv.key}: not a registry record`);
      this.#cache.delete(kv.key);
      return;
    }
    const prev = this.#cache.get(kv.key);
    const expiresAt = prev?.lease === stored.lease ? prev.record.expiresAt : Date.now() + stored.leaseMs;
    this.#cache.set(kv.key, { record: { entry: stored.entry, service: stored.service, leaseMs: stored.leaseMs, expiresAt }, lease: stored.lease });
  }

  #onSnapshot(kvs: readonly KeyValue[]): void {
    this.#cache.clear();
    for (const kv of kvs) this.#put(kv);
    this.#changed(false);
  }

  #onEvents(events: readonly WatchEvent[]): void {
    for (const e of events) {
      if (e.type === 'DELETE') this.#cache.delete(e.kv.key);
      else this.#put(e.kv);
    }
    this.#changed(true);
  }

  /** Recomputes the version; tells the listeners on every change event, and on a re-list when the content differs. */
  #changed(always: boolean): void {
    const version = this.#computeVersion();
    if (version === this.#version && !always) return;
    this.#version = version;
    for (const l of this.#listeners) {
      try {
        l();
      } catch (err) {
        this.#logger?.warn(`etcd registry: a change listener threw: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  /** A hash of the sorted entries (key, service, entry): the same on every replica for the same content. */
  #computeVersion(): string {
    const h = createHash('sha256');
    for (const key of [...this.#cache.keys()].sort()) {
      const { record } = this.#cache.get(key)!;
      h.update(JSON.stringify([key.slice(this.#root.length), record.service, record.entry]));
      h.update('\n');
    }
    return h.digest('hex').slice(0, 12);
  }
}
