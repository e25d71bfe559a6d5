/**
 * The registrations of a single control plane (no etcd), kept in `<dataDir>/registrations.json`
 * so that a restart — graceful or a crash — does not forget the workloads: a restarted server
 * serves the records whose lease is still running, with the lease they have left, and the
 * workloads' next renewals find them. Without it, every caller would be pushed an endpoint set
 * without them until each workload noticed (a 404 on renewal) and registered again.
 *
 * Leases are kept as wall-clock expiry times (epoch ms): the in-memory registry's clock is
 * monotonic and does not carry across processes.
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import type { WireResource } from '../control-plane/protocol.ts';
import { writeFileAtomic } from '../core/write-file-atomic.ts';
import type { ServerLogger } from './logger.ts';

/** The name of the file in the data dir. */
export const REGISTRATIONS_FILE = 'registrations.json';

/** One stored registration. */
export interface StoredRegistration {
  readonly entry: WireResource;
  readonly service: string;
  readonly leaseMs: number;
  /** When the lease ends unless renewed, epoch ms. */
  readonly expiresAtEpochMs: number;
}

interface FileShape {
  readonly version: 1;
  readonly registrations: readonly StoredRegistration[];
}

function valid(r: unknown): r is StoredRegistration {
  if (typeof r !== 'object' || r === null) return false;
  const v = r as Partial<StoredRegistration>;
  const meta = v.entry?.metadata as { name?: unknown } | undefined;
  return (
    typeof v.entry === 'object' &&
    v.entry !== null &&
    typeof meta?.name === 'string' &&
    typeof v.service === 'string' &&
    typeof v.leaseMs === 'number' &&
    v.leaseMs > 0 &&
    typeof v.expiresAtEpochMs === 'number'
  );
}

/**
 * Reads the stored registrations; an absent file is none, an unreadable or corrupt one is none
 * with a warning (the workloads register again on their next renewal).
 */
export async function readRegistrations(file: string, logger?: ServerLogger): Promise<StoredRegistration[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    logger?.warn(`could not read the stored registrations ${file} (${(err as Error).message}): starting with an empty registry; workloads register again on their next lease renewal`);
    return [];
  }
  try {
    const parsed = JSON.parse(text) as Partial<FileShape>;
    if (parsed.version !== 1 || !Array.isArray(parsed.registrations)) throw new Error('not a registrations file (version 1)');
    const ok = parsed.registrations.filter(valid);
    if (ok.length !== parsed.registrations.length) logger?.warn(`${file}: skipped ${parsed.registrations.length - ok.length} malformed registration(s)`);
    return ok;
  } catch (err) {
    logger?.warn(`the stored registrations ${file} are unreadable (${(err as Error).message}): starting with an empty registry; workloads register again on their next lease renewal`);
    return [];
  }
}

/**
 * Writes the registrations, one write at a time: a {@link save} while a write is running is
 * taken by the next write (which reads the then current records), so writes never pile up.
 */
export class RegistrationsWriter {
  readonly #file: string;
  readonly #snapshot: () => StoredRegistration[];
  readonly #logger: ServerLogger | undefined;
  #running: Promise<void> | undefined;
  #next: Promise<void> | undefined;
  #failed = false;

  constructor(file: string, snapshot: () => StoredRegistration[], logger?: ServerLogger) {
    this.#file = file;
    this.#snapshot = snapshot;
    this.#logger = logger;
  }

  /** Resolves once a write that started after this call finished (never rejects: failures are logged). */
  save(): Promise<void> {
    if (this.#running === undefined) {
      this.#running = this.#write().finally(() => {
        this.#running = undefined;
      });
      return this.#running;
    }
    this.#next ??= this.#running.then(() => {
      this.#next = undefined;
      return this.save();
    });
    return this.#next;
  }

  async #write(): Promise<void> {
    const doc: FileShape = { version: 1, registrations: this.#snapshot() };
    try {
      await writeFileAtomic(this.#file, `${JSON.stringify(doc)}\n`, { mode: 0o600 });
      if (this.#failed) this.#logger?.info?.(`stored registrations written to ${this.#file} again`);
      this.#failed = false;
    } catch (err) {
      if (!this.#failed) this.#logger?.warn(`could not store the registrations in ${this.#file} (${(err as Error).message}): a restart would forget them until the workloads register again`);
      this.#failed = true;
    }
  }
}
