/**
 * The registered workloads one namespace's workloads see, kept up to date change by change: the
 * records a service visible to the namespace selects (selection.ts). Each view has a content
 * version of its own (a digest of the entries it holds, so a registration no workload of the
 * namespace can see changes nothing for it), the full `endpoints` event, and for every change the
 * `endpoints-delta` event from the previous version to the next.
 *
 * The version is updated in O(1) per changed entry: it is derived from the XOR of the SHA-256
 * digests of the entries held (and their count), which does not depend on order, so every
 * replica gets the same version for the same view.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { AnyResource } from '../config/resource.ts';
import type { EndpointsDeltaEvent, EndpointsEvent, WireResource, WorkloadRef } from '../control-plane/protocol.ts';
import { VisibleSelection } from './selection.ts';
import type { RegistryChange, WorkloadRecord } from './store.ts';

/** What changed in a view, ready to send. */
export interface ViewChange {
  /** The version before the change. */
  readonly base: string;
  /** The version after it. */
  readonly version: string;
  /** The `endpoints-delta` event data (JSON of an {@link EndpointsDeltaEvent}). */
  readonly delta: Buffer;
}

interface Held {
  readonly entry: WireResource;
  readonly digest: Buffer;
}

const keyOf = (namespace: string, name: string): string => `${namespace}/${name}`;
const entryKey = (e: WireResource): string => keyOf(e.metadata.namespace ?? 'default', e.metadata.name);

function digestOf(entry: WireResource): Buffer {
  return createHash('sha256').update(JSON.stringify(entry)).digest();
}

/** The registered workloads visible to one namespace. */
export class EndpointView {
  readonly namespace: string;
  #selection: VisibleSelection;
  readonly #held = new Map<string, Held>();
  readonly #acc = Buffer.alloc(32);
  #version = '';
  #full: Buffer | undefined;

  /** A view for `namespace` over the config `resources` and the registry's `records`. */
  constructor(namespace: string, resources: readonly AnyResource[], records: readonly WorkloadRecord[]) {
    this.namespace = namespace;
    this.#selection = new VisibleSelection(resources, namespace);
    for (const r of records) if (this.#selection.selects(r.entry)) this.#put(entryKey(r.entry), r.entry);
    this.#rehash();
  }

  /** The content version of what the view holds. */
  get version(): string {
    return this.#version;
  }

  /** How many registered workloads the view holds. */
  get size(): number {
    return this.#held.size;
  }

  /** The `endpoints` event data (JSON of an {@link EndpointsEvent}) of the current version. */
  full(): Buffer {
    if (this.#full === undefined) {
      const event: EndpointsEvent = { version: this.#version, workloads: [...this.#held.keys()].sort().map((k) => this.#held.get(k)!.entry) };
      this.#full = Buffer.from(JSON.stringify(event));
    }
    return this.#full;
  }

  /** Applies a registry change; what changed for this view, or undefined when it sees no difference. */
  apply(change: RegistryChange, records: () => readonly WorkloadRecord[]): ViewChange | undefined {
    if (change.kind === 'reset') return this.#resync(records());
    const upserted = new Map<string, WireResource>();
    const removed = new Map<string, WorkloadRef>();
    for (const ref of change.removed) {
      const key = keyOf(ref.namespace, ref.name);
      if (this.#drop(key)) removed.set(key, ref);
    }
    for (const r of change.upserted) {
      const key = entryKey(r.entry);
      if (this.#selection.selects(r.entry)) {
        if (this.#put(key, r.entry)) {
          upserted.set(key, r.entry);
          removed.delete(key);
        }
      } else if (this.#drop(key)) {
        removed.set(key, { namespace: r.entry.metadata.namespace ?? 'default', name: r.entry.metadata.name });
        upserted.delete(key);
      }
    }
    return this.#changed([...upserted.values()], [...removed.values()]);
  }

  /** Selects again for a new config (services added, removed or re-labelled); what changed, if anything. */
  reconfigure(resources: readonly AnyResource[], records: () => readonly WorkloadRecord[]): ViewChange | undefined {
    const selection = new VisibleSelection(resources, this.namespace);
    if (selection.key === this.#selection.key) return undefined;
    this.#selection = selection;
    return this.#resync(records());
  }

  /** Compares the view with the whole registry and applies the difference. */
  #resync(records: readonly WorkloadRecord[]): ViewChange | undefined {
    const next = new Map<string, WireResource>();
    for (const r of records) if (this.#selection.selects(r.entry)) next.set(entryKey(r.entry), r.entry);
    const removed: WorkloadRef[] = [];
    for (const [key, h] of [...this.#held]) {
      if (!next.has(key) && this.#drop(key)) removed.push({ namespace: h.entry.metadata.namespace ?? 'default', name: h.entry.metadata.name });
    }
    const upserted: WireResource[] = [];
    for (const [key, entry] of next) if (this.#put(key, entry)) upserted.push(entry);
    return this.#changed(upserted, removed);
  }

  #changed(upserted: WireResource[], removed: WorkloadRef[]): ViewChange | undefined {
    if (upserted.length === 0 && removed.length === 0) return undefined;
    const base = this.#version;
    this.#rehash();
    const event: EndpointsDeltaEvent = { version: this.#version, base, workloads: upserted, removed };
    return { base, version: this.#version, delta: Buffer.from(JSON.stringify(event)) };
  }

  /** Holds `entry` under `key`; false when it held the same content already. */
  #put(key: string, entry: WireResource): boolean {
    const digest = digestOf(entry);
    const old = this.#held.get(key);
    if (old !== undefined) {
      if (old.digest.equals(digest)) return false;
      this.#xor(old.digest);
    }
    this.#xor(digest);
    this.#held.set(key, { entry, digest });
    return true;
  }

  /** Drops `key`; false when it was not held. */
  #drop(key: string): boolean {
    const old = this.#held.get(key);
    if (old === undefined) return false;
    this.#xor(old.digest);
    this.#held.delete(key);
    return true;
  }

  #xor(digest: Buffer): void {
    for (let i = 0; i < 32; i++) this.#acc[i] = this.#acc[i]! ^ digest[i]!;
  }

  #rehash(): void {
    this.#full = undefined;
    this.#version = createHash('sha256').update(this.#acc).update(String(this.#held.size)).digest('hex').slice(0, 12);
  }
}
