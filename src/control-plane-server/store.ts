/**
 * What the control-plane server needs from its storage, whichever backs it: a watched
 * directory plus in-memory registry (one process), or etcd (several replicas share both).
 * The HTTP layer, the push hub and the status only talk to these interfaces.
 *
 * @module
 */
import type { ConfigIssue } from '../config/issues.ts';
import type { AnyResource } from '../config/resource.ts';
import type { HealthCondition } from './workload-group.ts';
import type { ApplyResponse, Rejection, SkippedValue, WireResource, WorkloadRef } from '../control-plane/protocol.ts';

/** The config being served: validated resources and their content version. */
export interface ConfigState {
  /** `contentVersion(resources)`: the same content gives the same version on every replica. */
  readonly version: string;
  readonly resources: readonly AnyResource[];
  /**
   * The analysis findings of this set (IST0101, …). Advisory by default: they are reported
   * (logged once, in `/status`), and refuse config only with `--analysis blocking`.
   */
  readonly findings: readonly ConfigIssue[];
}

/** Health of a source, for the status. */
export interface SourceHealth {
  readonly kind: 'file' | 'etcd';
  /** The directory, or the etcd endpoints. */
  readonly location: string;
  readonly healthy: boolean;
  readonly error?: string;
  /**
   * Stored values that are not served because they are invalid (etcd: a value that is not JSON,
   * not a valid resource, or not the resource its key names). Each is skipped, as istiod skips an
   * invalid object, and reported until it is repaired; the source is then unhealthy.
   */
  readonly skipped?: readonly SkippedValue[];
}

/**
 * A config source. A change is validated as a whole set (schema + analysis, the same
 * `checkDocuments` embedded meshes use); an invalid set is refused, recorded as a
 * {@link Rejection}, and the last good state keeps being served. Analysis findings refuse a
 * set only in `blocking` mode; otherwise they are served with it ({@link ConfigState.findings}).
 */
export interface ConfigStore {
  readonly health: SourceHealth;
  /** Loads the first state. Rejects when there is no valid first state (a bad directory, etcd unreachable). */
  start(): Promise<void>;
  current(): ConfigState;
  /** Called after each accepted change, with the new state. */
  onChange(listener: (state: ConfigState) => void): void;
  /** Refused changes, newest first (bounded, e.g. 20). */
  rejections(): readonly Rejection[];
  /**
   * Creates or replaces resources (by kind/namespace/name), validating the whole resulting set.
   * Resolves when the change is committed (the change listener may fire before or after).
   * Throws `ConfigError` (core/errors, carrying every issue) when the resulting set is invalid.
   */
  apply(resources: readonly WireResource[], origin: string): Promise<ApplyResponse>;
  /** Deletes one resource; resolves false when it does not exist. Validates the resulting set. */
  delete(kind: string, namespace: string, name: string, origin: string): Promise<{ deleted: boolean; version: string; warnings: readonly string[] }>;
  close(): Promise<void>;
}

/** A registered workload: a WorkloadEntry with a lease. */
export interface WorkloadRecord {
  /** The WorkloadEntry as served (`metadata.name`, `metadata.namespace`, `spec.address/ports/labels/locality/weight`). */
  readonly entry: WireResource;
  /** The owner: the service of the token that registered it (with the entry's namespace). */
  readonly service: string;
  readonly leaseMs: number;
  /** When the lease ends unless renewed: epoch ms in etcd's registry, the clock's ms in the in-memory one. */
  readonly expiresAt: number;
}

/**
 * What changed in the registry: records created or replaced and records removed, or `reset`
 * when the whole list was read again (e.g. after an etcd compaction) and may differ in any way.
 */
export type RegistryChange =
  | { readonly kind: 'delta'; readonly upserted: readonly WorkloadRecord[]; readonly removed: readonly WorkloadRef[] }
  | { readonly kind: 'reset' };

/**
 * The registry. Records whose lease ends are removed (and the change is pushed). A record belongs
 * to the service that registered it (`WorkloadRecord.service`, in the entry's namespace): only
 * that owner replaces, renews or deregisters it.
 */
export interface RegistryStore {
  start(): Promise<void>;
  /**
   * Creates the record `entry.metadata.namespace/name` with a fresh lease, or replaces it when
   * `service` owns it. Rejects with a `ControlPlaneError` `CONFLICT` when another service owns it.
   */
  register(entry: WireResource, service: string, leaseMs: number): Promise<WorkloadRecord>;
  /**
   * Extends the lease; resolves undefined when the record is gone (expired or deregistered).
   * With `owner`, rejects with a `ControlPlaneError` `FORBIDDEN` when another service owns it.
   */
  renew(namespace: string, name: string, owner?: string): Promise<WorkloadRecord | undefined>;
  /**
   * Sets the record's `Healthy` status condition (its workload's probe reported a transition),
   * keeping its lease, and pushes the change; resolves undefined when the record is gone.
   * `owner` as for {@link renew}.
   */
  health(namespace: string, name: string, condition: HealthCondition, owner?: string): Promise<WorkloadRecord | undefined>;
  /** Removes the record; resolves false when it did not exist. `owner` as for {@link renew}. */
  deregister(namespace: string, name: string, owner?: string): Promise<boolean>;
  /** Every live record. */
  list(): readonly WorkloadRecord[];
  /** How many live records `namespace/service` owns. */
  owned(namespace: string, service: string): number;
  /** Content version of `list()` (same content → same version on every replica). */
  version(): string;
  /** Called after each change (register, deregister, expiry), without debouncing. */
  onChange(listener: (change: RegistryChange) => void): void;
  /** Stored records that are not served because they are invalid (etcd), for the status. */
  skipped?(): readonly SkippedValue[];
  close(): Promise<void>;
}

/** Somewhere replicas share small values (the token signing key, the CA). The file store needs none. */
export interface SharedValues {
  /** Stores `value` under `key` unless a value is there; resolves to the value that is there now. */
  putIfAbsent(key: string, value: string): Promise<string>;
  /**
   * Replaces the value under `key` when it is `expected`, atomically; resolves to whether it did and
   * the value that is there now (the new one, or another replica's). Without it, shared values never change.
   */
  compareAndSwap?(key: string, expected: string, value: string): Promise<{ readonly swapped: boolean; readonly value: string }>;
  /**
   * Calls `listener` with each new value of `key` (another replica's change), and `onDelete` when
   * the key is not there (deleted, or gone when the watch starts), until closed.
   */
  watch?(key: string, listener: (value: string) => void, onDelete?: () => void): SharedWatch;
}

/** A running {@link SharedValues.watch}. */
export interface SharedWatch {
  close(): Promise<void>;
}
