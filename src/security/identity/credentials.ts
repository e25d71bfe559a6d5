/**
 * The workload's own TLS credentials — its certificate (SPIFFE URI SAN), private key and the
 * trust bundle it verifies peers with — and the one place the rest of the mesh reads them from.
 *
 * Sources (files written by cert-manager or SPIRE, a development CA directory, the control
 * plane's CA) push new credentials into a {@link CredentialHolder}; the outbound transport and
 * the servers read {@link CredentialHolder.current} for each new connection and subscribe to
 * rebuild their TLS contexts, so a rotated certificate is used for new connections at once while
 * connections already open drain.
 *
 * @module
 */
import { type Clock, systemClock } from '../../core/clock.ts';

/**
 * One issue of a workload's credentials.
 * @category Identity
 */
export interface WorkloadCredentials {
  /** PEM: the leaf certificate first, then any intermediates up to (not including) the root. */
  readonly certChain: string;
  /** PEM PKCS#8 private key of the leaf. */
  readonly privateKey: string;
  /** PEM: every root this workload trusts (more than one while a root rotates). */
  readonly trustBundle: string;
  /** The leaf's SPIFFE ID, `spiffe://<td>/ns/<ns>/sa/<sa>`. */
  readonly spiffeId: string;
  /** The leaf's validity, epoch ms. */
  readonly notBefore: number;
  readonly notAfter: number;
  /** Increases with every change (certificate or trust bundle); a pool or context built from an older generation is stale. */
  readonly generation: number;
}

/** Credentials as a source delivers them (the holder numbers the generation). */
export type CredentialUpdate = Omit<WorkloadCredentials, 'generation'>;

/** Called with each new issue of the credentials. */
export type CredentialListener = (c: WorkloadCredentials) => void;

/**
 * Holds the current credentials of one mesh and tells subscribers when they change.
 * @category Identity
 */
export class CredentialHolder {
  #current: WorkloadCredentials | undefined;
  #generation = 0;
  readonly #listeners = new Set<CredentialListener>();
  #waiters: ((c: WorkloadCredentials) => void)[] = [];
  #expected = false;
  readonly #pendingListeners = new Set<() => void>();
  /**
   * Set while a source that renews the certificate by itself runs (a dev CA, the control plane's
   * CA): asks it to renew now (once per certificate; nothing when a renewal is under way). A new
   * mTLS connection that would present an expired certificate calls it and waits for the renewal
   * ({@link next}): after a process freeze (AWS Lambda between invocations, SIGSTOP) the overdue
   * renewal timer runs only after the I/O that arrived during the freeze — or later, where the
   * monotonic clock stood still — so the first calls would present the old certificate and be
   * refused. Undefined for files (renewed by others). See {@link renewalFor}.
   */
  renewer: (() => void) | undefined = undefined;

  /** The credentials in use, or undefined while there are none (no identity configured, or not issued yet). */
  get current(): WorkloadCredentials | undefined {
    return this.#current;
  }

  /**
   * True while an identity is configured but no certificate has been issued yet (a control plane
   * that has not answered the CSR): calls that would use mTLS must fail, not go out in plaintext.
   */
  get pending(): boolean {
    return this.#expected && this.#current === undefined;
  }

  /** Says whether a certificate is expected (an identity source runs); listeners of {@link onPendingChange} hear a change. */
  expect(expected: boolean): void {
    const before = this.pending;
    this.#expected = expected;
    if (this.pending !== before) for (const l of [...this.#pendingListeners]) l();
  }

  /** Calls `listener` when {@link pending} changes without new credentials (an identity source gave up); returns the unsubscribe function. */
  onPendingChange(listener: () => void): () => void {
    this.#pendingListeners.add(listener);
    return () => this.#pendingListeners.delete(listener);
  }

  /**
   * Installs a new issue; listeners are called synchronously, a listener that throws does not
   * stop the others. A trust bundle without a certificate is refused: Node would fall back to its
   * public roots, trusting any web certificate as a mesh peer.
   */
  set(update: CredentialUpdate): WorkloadCredentials {
    if (!/-----BEGIN CERTIFICATE-----/.test(update.trustBundle ?? '')) throw new TypeError(`the credentials of ${update.spiffeId} have an empty trust bundle (no PEM certificate): refused, since TLS would fall back to the public root CAs`);
    const c: WorkloadCredentials = Object.freeze({ ...update, generation: ++this.#generation });
    this.#current = c;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w(c);
    for (const l of [...this.#listeners]) {
      try {
        l(c);
      } catch {
        // A listener's failure is its own; the credentials are installed.
      }
    }
    return c;
  }

  /** Resolves with the current credentials, or the next ones when there are none yet. */
  ready(): Promise<WorkloadCredentials> {
    const c = this.#current;
    if (c !== undefined) return Promise.resolve(c);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /**
   * For a connection about to present `c`: undefined when it may (still valid by the wall clock,
   * or no source renews it: {@link renewer}), else the credentials that replace it — installed
   * already, or the next ones within `ms` once the source is asked to renew (undefined if none
   * came: `c` is presented, and refused, as before). The wait runs on `clock` (the mesh's, as the
   * connect timeout that bounds it) and does not keep the process alive.
   */
  renewalFor(c: WorkloadCredentials, ms: number, clock: Clock = systemClock): Promise<WorkloadCredentials | undefined> | undefined {
    if (c.notAfter > Date.now()) return undefined;
    const cur = this.#current;
    if (cur !== undefined && cur.generation !== c.generation && cur.notAfter > Date.now()) return Promise.resolve(cur);
    const renew = this.renewer;
    if (renew === undefined) return undefined;
    const next = new Promise<WorkloadCredentials | undefined>((resolve) => {
      const timer = clock.setTimer(() => {
        this.#waiters = this.#waiters.filter((w) => w !== done);
        resolve(undefined);
      }, ms);
      const done = (n: WorkloadCredentials): void => {
        timer.clear();
        resolve(n);
      };
      this.#waiters.push(done);
    });
    renew();
    return next;
  }

  /** Calls `listener` on every change from now on; returns the unsubscribe function. */
  subscribe(listener: CredentialListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
