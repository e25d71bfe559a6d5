/**
 * The identity source for credentials in files (cert-manager, SPIRE's spiffe-helper, any tool):
 * read and checked at start (the mesh does not start with credentials it cannot use), then
 * watched and reloaded.
 *
 * Files change the ways the config watcher already handles (`src/config/watch.ts`,
 * `src/config/reloader.ts`): renamed over (atomic writers, spiffe-helper), a Kubernetes Secret
 * volume's `..data` symlink swap (cert-manager), or written in place (read only once quiet for
 * `settleMs`). Three files are never replaced together, so a reload can read a new certificate
 * with the old key: the pair is checked before anything is installed, and a mismatched pair is
 * read again after `settleMs` (the other file is normally written by then); only if it still does
 * not match is it reported. Any bad update keeps the last good credentials and warns, naming the
 * file and why.
 *
 * @module
 */
import { type Clock, systemClock, type Timer } from '../../core/clock.ts';
import { Reloader } from '../../config/reloader.ts';
import { type ConfigWatcher, watchConfigPaths } from '../../config/watch.ts';
import type { WallClock } from '../pki/ca.ts';
import type { CredentialHolder, CredentialUpdate, WorkloadCredentials } from './credentials.ts';
import { CredentialFileError, type CredentialFiles, readCredentialFiles } from './file-credentials.ts';
import { type IdentityLog, type IdentitySource, isoTime } from './source.ts';
import { parseSpiffeUri } from './spiffe.ts';

/** Options of {@link FileIdentitySource}. */
export interface FileIdentitySourceOptions {
  readonly files: CredentialFiles;
  readonly holder: CredentialHolder;
  readonly log: IdentityLog;
  /** Timers of the debounce and settle waits. @defaultValue the system clock */
  readonly clock?: Clock;
  /** Wall-clock time for expiry checks. @defaultValue `Date.now` */
  readonly wallClock?: WallClock;
  /** How long a file written in place, or a mismatched pair, must be quiet before it is read again. @defaultValue 1000 */
  readonly settleMs?: number;
  /** Quiet time after the last event before reloading. @defaultValue 100 */
  readonly debounceMs?: number;
  /**
   * The mesh's trust domain, then its aliases: a certificate whose SPIFFE ID is of none of them,
   * or not in Istio's form, is used but warned about (the mesh's peers refuse it).
   */
  readonly trustDomains?: readonly string[];
}

const MAX_TIMER_MS = 2 ** 31 - 1;

function sameCredentials(a: CredentialUpdate, b: CredentialUpdate | undefined): boolean {
  return b !== undefined && a.certChain === b.certChain && a.privateKey === b.privateKey && a.trustBundle === b.trustBundle;
}

/**
 * Credentials from files, watched.
 * @category Identity
 */
export class FileIdentitySource implements IdentitySource {
  readonly kind = 'files' as const;
  readonly #o: FileIdentitySourceOptions;
  readonly #wall: WallClock;
  readonly #clock: Clock;
  readonly #settleMs: number;
  readonly #reloader: Reloader;
  #watcher: ConfigWatcher | undefined;
  #retryTimer: Timer | undefined;
  #expiryTimer: Timer | undefined;
  /** A mismatched pair was already read again once since the last file event. */
  #mismatchRetried = false;
  /** The last warning, so a file that stays bad is reported once. */
  #lastWarning: string | undefined;
  #closed = false;

  constructor(o: FileIdentitySourceOptions) {
    this.#o = o;
    this.#wall = o.wallClock ?? { now: () => Date.now() };
    this.#clock = o.clock ?? systemClock;
    this.#settleMs = o.settleMs ?? 1000;
    this.#reloader = new Reloader({
      debounceMs: o.debounceMs ?? 100,
      maxDebounceMs: 1000,
      settleMs: this.#settleMs,
      clock: this.#clock,
      reload: (attempt) => this.#reload(attempt),
      onError: (e) => this.#warn(`meshlet: reloading the identity files failed: ${String(e)}`),
    });
  }

  /** Reads the files (rejecting with a {@link CredentialFileError} when they cannot be used), installs them and starts watching. */
  async start(): Promise<void> {
    const update = await readCredentialFiles(this.#o.files, this.#wall.now());
    this.#install(update);
    const { certFile, keyFile, caFile } = this.#o.files;
    this.#watcher = watchConfigPaths([...new Set([certFile, keyFile, caFile])], {
      onEvent: (e) => {
        this.#mismatchRetried = false;
        this.#reloader.event(e);
      },
      onError: (e) => this.#warn(`meshlet: identity files: ${e.message}`),
      onLost: (path, reason) => this.#warn(`meshlet: lost the watch on identity file ${path}: ${reason}; the last good certificate stays in use`),
      onRestored: (path) => this.#reloader.event({ path, type: 'change' }),
      clock: this.#clock,
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#retryTimer?.clear();
    this.#expiryTimer?.clear();
    this.#watcher?.close();
    await this.#reloader.close();
  }

  #install(update: CredentialUpdate): WorkloadCredentials {
    const c = this.#o.holder.set(update);
    this.#watchExpiry(c);
    this.#checkIdentity(c.spiffeId);
    return c;
  }

  /** Warns when the certificate's identity is one the mesh's own peers refuse (another trust domain, not Istio's form). */
  #checkIdentity(spiffeId: string): void {
    const domains = this.#o.trustDomains;
    if (domains === undefined || domains.length === 0) return;
    const id = parseSpiffeUri(spiffeId);
    const file = this.#o.files.certFile;
    if (id === undefined) {
      this.#warn(
        `meshlet: the certificate in ${file} names ${spiffeId}, which is not in Istio's form spiffe://<trust domain>/ns/<namespace>/sa/<service account>: meshlet servers refuse it as a client certificate, and meshlet clients accept it as a server only through a DestinationRule's subjectAltNames (Istio sidecars accept it)`,
      );
      return;
    }
    if (!domains.includes(id.trustDomain)) {
      const ours = domains.join(' or ');
      this.#warn(
        `meshlet: the certificate in ${file} names ${spiffeId}, of trust domain ${id.trustDomain}, but this mesh's trust domain is ${ours}: peers of ${ours} refuse it (wrong trust domain). Set createMesh's trustDomain (or trustDomainAliases) to the certificate's`,
      );
    }
  }

  /** Warns when the certificate in use expires with no newer one written (peers refuse it from then on). */
  #watchExpiry(c: WorkloadCredentials): void {
    this.#expiryTimer?.clear();
    const left = c.notAfter - this.#wall.now();
    // setTimeout holds at most 2^31-1 ms (24.8 days): a longer wait is done in steps.
    this.#expiryTimer = this.#clock.setTimer(() => {
      if (this.#closed || this.#o.holder.current !== c) return;
      if (c.notAfter > this.#wall.now()) return this.#watchExpiry(c);
      this.#warn(`meshlet: the certificate in ${this.#o.files.certFile} (${c.spiffeId}) expired at ${isoTime(c.notAfter)} and no newer one was written; peers refuse it until the files are renewed`);
    }, Math.min(Math.max(0, left), MAX_TIMER_MS));
  }

  #warn(message: string): void {
    if (message === this.#lastWarning) return;
    this.#lastWarning = message;
    this.#o.log.warn(message);
  }

  async #reload(attempt: { current(): Promise<boolean> }): Promise<void> {
    let update: CredentialUpdate;
    try {
      update = await readCredentialFiles(this.#o.files, this.#wall.now());
    } catch (e) {
      if (!(await attempt.current())) return; // the files changed while being read: read again once they settle
      if (e instanceof CredentialFileError && e.reason === 'key-mismatch' && !this.#mismatchRetried) {
        // Probably half-updated (one file of the pair replaced, the other not yet): read again once settled.
        this.#mismatchRetried = true;
        this.#retryTimer?.clear();
        this.#retryTimer = this.#clock.setTimer(() => {
          if (!this.#closed) this.#reloader.event({ path: this.#o.files.keyFile, type: 'change' });
        }, this.#settleMs);
        return;
      }
      const cur = this.#o.holder.current;
      const keeping = cur === undefined ? 'no certificate is in use' : `the last good certificate (${cur.spiffeId}, valid until ${isoTime(cur.notAfter)}) stays in use`;
      this.#warn(`meshlet: identity files not loaded: ${(e as Error).message}; ${keeping}`);
      return;
    }
    if (!(await attempt.current()) || this.#closed) return;
    this.#lastWarning = undefined;
    this.#mismatchRetried = false;
    if (sameCredentials(update, this.#o.holder.current)) return;
    const c = this.#install(update);
    this.#o.log.info?.(`meshlet: identity ${c.spiffeId} reloaded from ${this.#o.files.certFile} (valid until ${isoTime(c.notAfter)})`);
  }
}
