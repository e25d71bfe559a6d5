/**
 * The last-known-good cache: the last config and endpoints a mesh applied from the control
 * plane, and the control plane's MeshConfig it had then (its last `mesh-config` event),
 * persisted as JSON in `<cacheDir>/<namespace>.<service>.json`, so a mesh that starts while the
 * control plane is unreachable can serve the config it had before under the MeshConfig it had
 * (as Envoy keeps what istiod built with its last mesh config). Writes are atomic (temp file +
 * fsync + rename, mode 0600) and serialised; a corrupt file — a malformed MeshConfig in it too —
 * is ignored whole, with a warning. A file written before the MeshConfig was kept has none and
 * still loads.
 *
 * @module
 */
import { writeFileAtomic } from '../core/write-file-atomic.ts';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MeshConfigEvent, WireResource } from './protocol.ts';
import { checkMeshConfigEvent } from './pushed-events.ts';

/** What the cache holds. */
export interface CachedState {
  readonly configVersion: string;
  readonly endpointsVersion: string;
  readonly resources: readonly WireResource[];
  readonly workloads: readonly WireResource[];
  /** The control plane's MeshConfig in use (its `mesh-config` event as received); absent in a file written before it was kept, or when none was received. */
  readonly meshConfig?: MeshConfigEvent;
}

/** Format marker inside the file. */
const FORMAT = 'meshlet.cache/v1';

function isWireList(v: unknown): v is WireResource[] {
  return Array.isArray(v) && v.every((r) => r !== null && typeof r === 'object' && typeof (r as { kind?: unknown }).kind === 'string');
}

/** The cache file of one workload. */
export class SnapshotCache {
  /** Where the file lives. */
  readonly file: string;
  readonly #dir: string;
  readonly #warn: (message: string) => void;
  #writing: Promise<void> = Promise.resolve();

  constructor(dir: string, namespace: string, service: string, warn: (message: string) => void) {
    this.#dir = dir;
    this.file = join(dir, `${namespace}.${service}.json`);
    this.#warn = warn;
  }

  /** Reads the cache; undefined when there is none, or (with a warning) when it is unreadable or corrupt. */
  async read(): Promise<CachedState | undefined> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as { code?: unknown }).code !== 'ENOENT') this.#warn(`meshlet: cannot read the config cache ${this.file}: ${String(e)}`);
      return undefined;
    }
    try {
      const v = JSON.parse(text) as Record<string, unknown>;
      if (v.format !== FORMAT) throw new Error(`not a meshlet cache (format ${JSON.stringify(v.format)})`);
      if (typeof v.configVersion !== 'string' || typeof v.endpointsVersion !== 'string') throw new Error('versions missing');
      if (!isWireList(v.resources) || !isWireList(v.workloads)) throw new Error('resources or workloads missing');
      const state: CachedState = { configVersion: v.configVersion, endpointsVersion: v.endpointsVersion, resources: v.resources, workloads: v.workloads };
      if (v.meshConfig === undefined) return state;
      try {
        return { ...state, meshConfig: checkMeshConfigEvent(v.meshConfig) };
      } catch (e) {
        throw new Error(`meshConfig: ${(e as Error).message}`);
      }
    } catch (e) {
      this.#warn(`meshlet: ignoring the corrupt config cache ${this.file}: ${e instanceof Error ? e.message : String(e)}`);
      return undefined;
    }
  }

  /** Writes the state (after the writes before it); failures are warned about, never thrown. */
  write(state: CachedState): Promise<void> {
    const body = `${JSON.stringify({ format: FORMAT, savedAt: new Date().toISOString(), ...state })}\n`;
    this.#writing = this.#writing.then(async () => {
      try {
        await mkdir(this.#dir, { recursive: true });
        await writeFileAtomic(this.file, body, { mode: 0o600 });
      } catch (e) {
        this.#warn(`meshlet: cannot write the config cache ${this.file}: ${String(e)}`);
      }
    });
    return this.#writing;
  }

  /** Resolves when every write started so far has finished. */
  flush(): Promise<void> {
    return this.#writing;
  }
}
