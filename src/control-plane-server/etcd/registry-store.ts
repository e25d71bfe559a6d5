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
import { checkDocuments } from '../../config/load-config.ts';
import { fromObjects } from '../../config/load.ts';
import type { SkippedValue, WireResource, WorkloadRef } from '../../control-plane/protocol.ts';
import { ControlPlaneError } from '../errors.ts';
import { notOwner } from '../memory-registry.ts';
import type { RegistryChange, RegistryStore, WorkloadRecord } from '../store.ts';
import { type HealthCondition, withCondition } from '../workload-group.ts';
import type { EtcdClient, KeyValue } from './client.ts';
import type { EtcdLogger } from './config-store.ts';
import { StallGrace } from './stall-grace.ts';
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

/** Attempts of a guarded registry write that keeps losing races before it gives up (409). */
const MAX_ATTEMPTS = 5;

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
  /** Stored values under the prefix that are not valid records (skipped, reported in the status). */
  readonly #skipped = new Map<string, SkippedValue>();
  #version = '';
  readonly #listeners: ((change: RegistryChange) => void)[] = [];
  #started: Promise<void> | undefined;
  #watchDown = false;
  /** Records etcd expired during (or right after) its own outage, still served for a lease. */
  readonly #grace: StallGrace;
  /** Keys this replica is deregistering: their deletion is not an expiry. */
  readonly #deregistering = new Set<string>();
  /** Records held by the event batch or snapshot being applied (logged once per batch). */
  #heldNow = 0;

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
    this.#grace = new StallGrace(client, (key) => {
      if (!this.#cache.has(key)) this.#changed({ kind: 'delta', upserted: [], removed: [this.#ref(key)] }, true);
    });
    this.#version = this.#computeVersion();
  }

  /** Lists the registry and watches it. Rejects when etcd is unreachable. */
  start(): Promise<void> {
    this.#started ??= this.#watch.start();
    return this.#started;
  }

  /**
   * Stores the record on a fresh lease of `ceil(leaseMs / 1000)` s, in a txn that holds only if
   * the key is still as read (absent, or a record of the same owner, whose lease is then revoked).
   */
  async register(entry: WireResource, service: string, leaseMs: number): Promise<WorkloadRecord> {
    const namespace = entry.metadata.namespace ?? this.#defaultNamespace;
    const key = this.#key(namespace, entry.metadata.name);
    const value0: Omit<StoredRecord, 'lease'> = { entry: { ...entry, metadata: { ...entry.metadata, namespace } }, service, leaseMs };
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const current = await this.#client.get(key);
      const old = current === undefined ? undefined : decode(current);
      // A stored record is alive: etcd deletes it when its lease ends.
      if (old !== undefined && old.service !== service) throw notOwner(namespace, entry.metadata.name, old.service, service, 'register');
      const lease = await this.#client.grantLease(Math.max(1, Math.ceil(leaseMs / 1000)));
      const value: StoredRecord = { ...value0, lease: lease.id };
      const res = await this.#client.txn(
        [{ key, target: 'MOD', result: 'EQUAL', revision: current?.modRevision ?? 0 }],
        [{ put: { key, value: JSON.stringify(value), lease: lease.id } }],
      );
      if (!res.succeeded) {
        await this.#revoke(lease.id);
        continue;
      }
      if (old !== undefined && old.lease !== '' && old.lease !== lease.id) await this.#revoke(old.lease);
      const record: WorkloadRecord = { entry: value.entry, service, leaseMs, expiresAt: Date.now() + lease.ttlSeconds * 1000 };
      await this.#watch.waitFor(res.revision, this.#settleMs);
      const cached = this.#cache.get(key);
      if (cached?.lease === lease.id) this.#cache.set(key, { record, lease: lease.id });
      return record;
    }
    throw new ControlPlaneError('CONFLICT', `register: workload ${namespace}/${entry.metadata.name} kept changing during ${MAX_ATTEMPTS} attempts; try again`);
  }

  /** Keeps the record's lease alive (whichever replica granted it); undefined when the record or lease is gone. */
  async renew(namespace: string, name: string, owner?: string): Promise<WorkloadRecord | undefined> {
    const key = this.#key(namespace, name);
    const kv = await this.#client.get(key);
    const stored = kv === undefined ? undefined : decode(kv);
    if (stored === undefined || stored.lease === '') return undefined;
    if (owner !== undefined && stored.service !== owner) throw notOwner(namespace, name, stored.service, owner, 'renew');
    const ttl = await this.#client.keepAlive(stored.lease);
    if (ttl <= 0) return undefined;
    const expiresAt = Date.now() + ttl * 1000;
    // Only the expiry changes: the record read above may be older than the cached one (a health
    // report written while the keepalive was in flight), so the cached content is kept.
    const cached = this.#cache.get(key);
    if (cached?.lease === stored.lease) {
      const record: WorkloadRecord = { ...cached.record, expiresAt };
      this.#cache.set(key, { record, lease: stored.lease });
      return record;
    }
    return { entry: stored.entry, service: stored.service, leaseMs: stored.leaseMs, expiresAt };
  }

  /** Writes the record's `Healthy` condition on its own lease (guarded: only as read); undefined when the record is gone. */
  async health(namespace: string, name: string, condition: HealthCondition, owner?: string): Promise<WorkloadRecord | undefined> {
    const key = this.#key(namespace, name);
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const kv = await this.#client.get(key);
      const stored = kv === undefined ? undefined : decode(kv);
      if (kv === undefined || stored === undefined || stored.lease === '') return undefined;
      if (owner !== undefined && stored.service !== owner) throw notOwner(namespace, name, stored.service, owner, 'report health');
      const value: StoredRecord = { ...stored, entry: withCondition(stored.entry, condition) };
      const put = { key, value: JSON.stringify(value), lease: stored.lease };
      const res = await this.#client.txn([{ key, target: 'MOD', result: 'EQUAL', revision: kv.modRevision }], [{ put }]);
      if (!res.succeeded) continue;
      await this.#watch.waitFor(res.revision, this.#settleMs);
      return this.#cache.get(key)?.record ?? { entry: value.entry, service: value.service, leaseMs: value.leaseMs, expiresAt: Date.now() + value.leaseMs };
    }
    throw new ControlPlaneError('CONFLICT', `report health: workload ${namespace}/${name} kept changing during ${MAX_ATTEMPTS} attempts; try again`);
  }

  /** Deletes the record (guarded: only as read, so only the owner's) and revokes its lease; false when there was none. */
  async deregister(namespace: string, name: string, owner?: string): Promise<boolean> {
    const key = this.#key(namespace, name);
    this.#deregistering.add(key);
    try {
      return await this.#deregister(key, namespace, name, owner);
    } finally {
      this.#deregistering.delete(key);
    }
  }

  async #deregister(key: string, namespace: string, name: string, owner: string | undefined): Promise<boolean> {
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const kv = await this.#client.get(key);
      if (kv === undefined) return this.#releaseHeld(key, owner);
      const old = decode(kv);
      if (owner !== undefined && old !== undefined && old.service !== owner) throw notOwner(namespace, name, old.service, owner, 'deregister');
      const res = await this.#client.txn([{ key, target: 'MOD', result: 'EQUAL', revision: kv.modRevision }], [{ delete: { key } }]);
      if (!res.succeeded) continue;
      if (old !== undefined && old.lease !== '') await this.#revoke(old.lease);
      await this.#watch.waitFor(res.revision, this.#settleMs);
      return true;
    }
    throw new ControlPlaneError('CONFLICT', `deregister: workload ${namespace}/${name} kept changing during ${MAX_ATTEMPTS} attempts; try again`);
  }

  /** A held record's workload deregistered (etcd had already expired it): it stops being served here. */
  #releaseHeld(key: string, owner: string | undefined): boolean {
    const held = this.#grace.has(key) ? this.#merged().get(key) : undefined;
    if (held === undefined) return false;
    const [namespace = '', name = ''] = key.slice(this.#root.length).split('/');
    if (owner !== undefined && held.service !== owner) throw notOwner(namespace, name, held.service, owner, 'deregister');
    this.#grace.release(key);
    this.#changed({ kind: 'delta', upserted: [], removed: [this.#ref(key)] }, true);
    return true;
  }

  /** The cached records and the held ones (a cached record replaces a hold), by key. */
  #merged(): Map<string, WorkloadRecord> {
    const all = new Map<string, WorkloadRecord>();
    for (const [k, r] of this.#grace.entries()) all.set(k, r);
    for (const [k, c] of this.#cache) all.set(k, c.record);
    return all;
  }

  /** Every live record, sorted by namespace/name (from the watch-maintained cache, with the records held after an etcd outage). */
  list(): readonly WorkloadRecord[] {
    const all = this.#merged();
    return [...all.keys()].sort().map((k) => all.get(k)!);
  }

  /** How many records of the cache `namespace/service` owns (other replicas' latest writes may be in flight). */
  owned(namespace: string, service: string): number {
    let n = 0;
    for (const record of this.#merged().values()) if (record.service === service && (record.entry.metadata.namespace ?? this.#defaultNamespace) === namespace) n++;
    return n;
  }

  /** Values under the registry prefix that are not valid records (skipped). */
  skipped(): readonly SkippedValue[] {
    return [...this.#skipped.values()];
  }

  /** A hash of the sorted records: the same on every replica for the same content. */
  version(): string {
    return this.#version;
  }

  /** Called after every change seen by the watch (any replica, expiry), without debouncing. */
  onChange(listener: (change: RegistryChange) => void): void {
    this.#listeners.push(listener);
  }

  /** Stops watching. Records stay (their leases keep running): another replica serves them. */
  async close(): Promise<void> {
    this.#grace.close();
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

  /** Why a stored value is not a valid record for its key, or undefined. */
  #problem(kv: KeyValue, stored: StoredRecord | undefined): string | undefined {
    if (stored === undefined) return 'not a registry record (JSON with entry, service and leaseMs)';
    const [namespace, name, extra] = kv.key.slice(this.#root.length).split('/');
    const meta = stored.entry.metadata as { namespace?: unknown; name?: unknown } | undefined;
    if (extra !== undefined || meta?.name !== name || (meta?.namespace ?? this.#defaultNamespace) !== namespace) {
      return `the key names ${namespace}/${name} but the entry is ${String(meta?.namespace)}/${String(meta?.name)}`;
    }
    const checked = checkDocuments(fromObjects([stored.entry], kv.key), { analysis: 'off', defaultNamespace: this.#defaultNamespace });
    if (!checked.ok || checked.resources[0]?.kind !== 'WorkloadEntry') {
      const reasons = checked.issues.ofLevel('error').map(String);
      return `not a valid WorkloadEntry${reasons.length > 0 ? `: ${reasons.join('; ')}` : ''}`;
    }
    return undefined;
  }

  /** Caches a stored record; a value that is not a valid record is skipped (reported, never served). Returns the record or undefined. */
  #put(kv: KeyValue): WorkloadRecord | undefined {
    const stored = decode(kv);
    const problem = this.#problem(kv, stored);
    if (problem !== undefined || stored === undefined) {
      if (!this.#skipped.has(kv.key)) this.#logger?.warn(`etcd registry: skipping ${kv.key}: ${problem}`);
      this.#skipped.set(kv.key, { key: kv.key, reasons: [problem ?? 'not a registry record'] });
      this.#cache.delete(kv.key);
      return undefined;
    }
    this.#skipped.delete(kv.key);
    this.#grace.release(kv.key);
    const prev = this.#cache.get(kv.key);
    const expiresAt = prev?.lease === stored.lease ? prev.record.expiresAt : Date.now() + stored.leaseMs;
    const record: WorkloadRecord = { entry: stored.entry, service: stored.service, leaseMs: stored.leaseMs, expiresAt };
    this.#cache.set(kv.key, { record, lease: stored.lease });
    return record;
  }

  /** A record etcd removed: held when that may be etcd's own outage (see {@link StallGrace}); true when held. */
  #expired(key: string, record: WorkloadRecord): boolean {
    if (this.#deregistering.has(key) || !this.#grace.shouldHold(record)) return false;
    this.#grace.hold(key, record);
    this.#heldNow++;
    return true;
  }

  #ref(key: string): WorkloadRef {
    const [namespace = '', name = ''] = key.slice(this.#root.length).split('/');
    return { namespace, name };
  }

  #logHeld(): void {
    if (this.#heldNow === 0) return;
    this.#logger?.warn(
      `etcd registry: etcd removed ${this.#heldNow} record(s) while or right after it was unavailable (their workloads could not renew); still serving them for one lease, so that their workloads register again on their next renewal`,
    );
    this.#heldNow = 0;
  }

  #onSnapshot(kvs: readonly KeyValue[]): void {
    const before = new Map(this.#cache);
    this.#cache.clear();
    this.#skipped.clear();
    for (const kv of kvs) this.#put(kv);
    for (const [key, { record }] of before) if (!this.#cache.has(key) && !this.#skipped.has(key)) this.#expired(key, record);
    this.#logHeld();
    this.#changed({ kind: 'reset' }, false);
  }

  #onEvents(events: readonly WatchEvent[]): void {
    const upserted = new Map<string, WorkloadRecord>();
    const removed = new Map<string, WorkloadRef>();
    for (const e of events) {
      const prev = this.#cache.get(e.kv.key);
      let had = prev !== undefined;
      const rec = e.type === 'DELETE' ? undefined : this.#put(e.kv);
      if (e.type === 'DELETE') {
        this.#cache.delete(e.kv.key);
        this.#skipped.delete(e.kv.key);
        if (prev !== undefined && this.#expired(e.kv.key, prev.record)) had = false;
      }
      if (rec !== undefined) {
        upserted.set(e.kv.key, rec);
        removed.delete(e.kv.key);
      } else {
        upserted.delete(e.kv.key);
        if (had) removed.set(e.kv.key, this.#ref(e.kv.key));
      }
    }
    this.#logHeld();
    this.#changed({ kind: 'delta', upserted: [...upserted.values()], removed: [...removed.values()] }, true);
  }

  /** Recomputes the version; tells the listeners on every change event, and on a re-list when the content differs. */
  #changed(change: RegistryChange, always: boolean): void {
    const version = this.#computeVersion();
    if (version === this.#version && !always) return;
    this.#version = version;
    for (const l of this.#listeners) {
      try {
        l(change);
      } catch (err) {
        this.#logger?.warn(`etcd registry: a change listener threw: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  /** A hash of the sorted entries (key, service, entry): the same on every replica for the same content. */
  #computeVersion(): string {
    const h = createHash('sha256');
    const all = this.#merged();
    for (const key of [...all.keys()].sort()) {
      const record = all.get(key)!;
      h.update(JSON.stringify([key.slice(this.#root.length), record.service, record.entry]));
      h.update('\n');
    }
    return h.digest('hex').slice(0, 12);
  }
}
