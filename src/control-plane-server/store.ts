/**
 * What the control-plane server needs from its storage, whichever backs it: a watched
 * directory plus in-memory registry (one process), or etcd (several replicas share both).
 * The HTTP layer, the push hub and the status only talk to these interfaces.
 *
 * @module
 */
import type { ConfigIssue } from '../config/issues.ts';
import type { AnyResource } from '../config/resource.ts';
import type { ApplyResponse, Rejection, WireResource } from '../control-plane/protocol.ts';

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
  delete(kind: string, namespace: string, name: string, origin: string): Promise<{ deleted: boolean; version: string }>;
  close(): Promise<void>;
}

/** A registered workload: a WorkloadEntry with a lease. */
export interface WorkloadRecord {
  /** The WorkloadEntry as served (`metadata.name`, `metadata.namespace`, `spec.address/ports/labels/locality/weight`). */
  readonly entry: WireResource;
  readonly service: string;
  readonly leaseMs: number;
  /** When the lease ends unless renewed (epoch ms). */
  readonly expiresAt: number;
}

/** The registry. Records whose lease ends are removed (and the change is pushed). */
export interface RegistryStore {
  start(): Promise<void>;
  /** Creates or replaces the record `entry.metadata.namespace/name`, with a fresh lease. */
  register(entry: WireResource, service: string, leaseMs: number): Promise<WorkloadRecord>;
  /** Extends the lease; resolves false when the record is gone (expired or deregistered). */
  renew(namespace: string, name: string): Promise<WorkloadRecord | undefined>;
  /** Removes the record; resolves false when it did not exist. */
  deregister(namespace: string, name: string): Promise<boolean>;
  /** Every live record. */
  list(): readonly WorkloadRecord[];
  /** Content version of `list()` (same content → same version on every replica). */
  version(): string;
  /** Called after each change (register, deregister, expiry), without debouncing. */
  onChange(listener: () => void): void;
  close(): Promise<void>;
}

/** Somewhere replicas share small values (the token signing key). The file store needs none. */
export interface SharedValues {
  /** Stores `value` under `key` unless a value is there; resolves to the value that is there now. */
  putIfAbsent(key: string, value: string): Promise<string>;
}
