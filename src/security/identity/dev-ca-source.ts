/**
 * The identity source for a development CA directory (`meshlet ca init <dir>`): the mesh makes
 * its own key, issues itself a certificate for
 * `spiffe://<trust domain>/ns/<namespace>/sa/<service account>` from the CA, renews it at half its
 * lifetime (Istio's default `SECRET_GRACE_PERIOD_RATIO` of 0.5) on the mesh's clock, and follows
 * the directory: a rotated CA (`meshlet ca rotate`) is used for a new certificate at once, a
 * changed trust bundle (the overlap, or `--finalize`) is installed as it is.
 *
 * @module
 */
import { type Clock, systemClock, type Timer } from '../../core/clock.ts';
import { Reloader } from '../../config/reloader.ts';
import { type ConfigWatcher, watchConfigPaths } from '../../config/watch.ts';
import type { WallClock } from '../pki/ca.ts';
import { createCsr } from '../pki/csr.ts';
import { type DevCa, loadDevCa } from '../pki/dev-ca.ts';
import { generateKeyPair, type KeyAlgorithm } from '../pki/keys.ts';
import type { CredentialHolder } from './credentials.ts';
import { type IdentityLog, type IdentitySource, isoTime } from './source.ts';
import { spiffeUri } from './spiffe.ts';

/**
 * A dev CA's default workload certificate lifetime: 24 h, Istio's `DEFAULT_WORKLOAD_CERT_TTL`.
 * @category Identity
 */
export const DEFAULT_WORKLOAD_CERT_TTL_MS = 24 * 3_600_000;

/** After a failed renewal, how long until the next try (or half the time left, if that is sooner). */
const RETRY_MS = 60_000;

/** Options of {@link DevCaIdentitySource}. */
export interface DevCaIdentitySourceOptions {
  readonly dir: string;
  /** The mesh's trust domain; the CA must be for it. */
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly holder: CredentialHolder;
  readonly log: IdentityLog;
  /** Renewal and reload timers. @defaultValue the system clock */
  readonly clock?: Clock;
  /** Wall-clock time for the certificates' validity. @defaultValue `Date.now` */
  readonly wallClock?: WallClock;
  /** @defaultValue 24 h */
  readonly ttlMs?: number;
  /** @defaultValue 'ECDSA-P256' */
  readonly keyAlgorithm?: KeyAlgorithm;
  /** How long CA files written in place (or a mismatched pair) must be quiet before they are read. @defaultValue 1000 */
  readonly settleMs?: number;
}

/**
 * Certificates from a development CA directory, renewed and following rotations.
 * @category Identity
 */
export class DevCaIdentitySource implements IdentitySource {
  readonly kind = 'dev-ca' as const;
  readonly #o: DevCaIdentitySourceOptions;
  readonly #clock: Clock;
  readonly #wall: WallClock;
  readonly #spiffeId: string;
  readonly #reloader: Reloader;
  #ca: DevCa | undefined;
  #watcher: ConfigWatcher | undefined;
  #renewal: Timer | undefined;
  #retry: Timer | undefined;
  #retried = false;
  #lastWarning: string | undefined;
  #closed = false;
  /** A connection asked for a renewal of the current certificate (CredentialHolder.renewer). */
  #kicked = false;

  constructor(o: DevCaIdentitySourceOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.#wall = o.wallClock ?? { now: () => Date.now() };
    this.#spiffeId = spiffeUri({ trustDomain: o.trustDomain, namespace: o.namespace, serviceAccount: o.serviceAccount });
    this.#reloader = new Reloader({
      debounceMs: 100,
      maxDebounceMs: 1000,
      settleMs: o.settleMs ?? 1000,
      reload: (attempt) => this.#reload(attempt),
      onError: (e) => this.#warn(`meshlet: reloading the dev CA ${o.dir} failed: ${String(e)}`),
    });
  }

  /** The SPIFFE ID this source issues for. */
  get spiffeId(): string {
    return this.#spiffeId;
  }

  /** Loads the CA (rejecting when the directory is not a usable dev CA of the mesh's trust domain), issues the first certificate and starts watching. */
  async start(): Promise<void> {
    const ca = await loadDevCa(this.#o.dir, this.#wall);
    this.#checkTrustDomain(ca);
    this.#ca = ca;
    await this.#issue();
    this.#o.holder.renewer = () => this.#kick();
    this.#watcher = watchConfigPaths([this.#o.dir], {
      onEvent: (e) => {
        this.#retried = false;
        this.#reloader.event(e);
      },
      onError: (e) => this.#warn(`meshlet: dev CA: ${e.message}`),
      onLost: (path, reason) => this.#warn(`meshlet: lost the watch on the dev CA ${path}: ${reason}; the last good certificate stays in use`),
      onRestored: (path) => this.#reloader.event({ path, type: 'change' }),
      clock: this.#clock,
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#o.holder.renewer = undefined;
    this.#renewal?.clear();
    this.#retry?.clear();
    this.#watcher?.close();
    await this.#reloader.close();
  }

  #checkTrustDomain(ca: DevCa): void {
    if (ca.trustDomain !== this.#o.trustDomain) throw new Error(`the dev CA in ${this.#o.dir} is for trust domain "${ca.trustDomain}" but the mesh's trustDomain is "${this.#o.trustDomain}" (set createMesh's trustDomain, or make the CA with \`meshlet ca init --trust-domain ${this.#o.trustDomain}\`)`);
  }

  #warn(message: string): void {
    if (message === this.#lastWarning) return;
    this.#lastWarning = message;
    this.#o.log.warn(message);
  }

  /** Issues a certificate from the current CA with a new key, installs it and schedules its renewal. */
  async #issue(): Promise<void> {
    const ca = this.#ca as DevCa;
    const keys = generateKeyPair(this.#o.keyAlgorithm ?? 'ECDSA-P256');
    const csr = await createCsr(keys, { spiffeId: this.#spiffeId });
    const issued = await ca.ca.sign(csr, { spiffeId: this.#spiffeId, ttlMs: this.#o.ttlMs ?? DEFAULT_WORKLOAD_CERT_TTL_MS, now: this.#wall.now() });
    if (this.#closed) return;
    this.#o.holder.set({ certChain: issued.certChainPem, privateKey: keys.privateKeyPem, trustBundle: ca.bundlePem, spiffeId: this.#spiffeId, notBefore: issued.notBefore, notAfter: issued.notAfter });
    this.#kicked = false;
    this.#lastWarning = undefined;
    if (issued.notAfter >= ca.ca.notAfter) {
      // Cut short at the CA's own expiry: a renewal from this CA cannot last longer (and in the CA's
      // last minutes, half of the backdated lifetime is already past: renewing at half would loop at
      // once). The next try is at the expiry, unless the CA is rotated first.
      this.#warn(`meshlet: the dev CA ${this.#o.dir} expires at ${isoTime(ca.ca.notAfter)}, so ${this.#spiffeId}'s certificate ends then too and cannot be renewed past it: rotate the CA (meshlet ca rotate ${this.#o.dir})`);
      this.#schedule(issued.notAfter - this.#wall.now());
      return;
    }
    this.#schedule(issued.notBefore + (issued.notAfter - issued.notBefore) / 2 - this.#wall.now());
  }

  /** A connection found the certificate expired (its renewal timer is late: the process was frozen): renew now, once per certificate. */
  #kick(): void {
    if (this.#closed || this.#kicked) return;
    this.#kicked = true;
    this.#schedule(0);
  }

  #schedule(ms: number): void {
    this.#renewal?.clear();
    this.#renewal = this.#clock.setTimer(() => void this.#renew(), Math.max(0, ms));
  }

  async #renew(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#issue();
      this.#o.log.info?.(`meshlet: identity ${this.#spiffeId} renewed from the dev CA ${this.#o.dir} (valid until ${isoTime(this.#o.holder.current?.notAfter ?? 0)})`);
    } catch (e) {
      const cur = this.#o.holder.current;
      const left = cur === undefined ? 0 : cur.notAfter - this.#wall.now();
      this.#warn(`meshlet: renewing ${this.#spiffeId} from the dev CA ${this.#o.dir} failed: ${(e as Error).message}; ${cur !== undefined && left > 0 ? `the current certificate is valid until ${isoTime(cur.notAfter)}` : 'the current certificate has expired'}`);
      this.#schedule(left > 0 ? Math.min(RETRY_MS, left / 2) : RETRY_MS);
    }
  }

  async #reload(attempt: { current(): Promise<boolean> }): Promise<void> {
    let next: DevCa;
    try {
      next = await loadDevCa(this.#o.dir, this.#wall);
      this.#checkTrustDomain(next);
    } catch (e) {
      if (!(await attempt.current()) || this.#closed) return;
      if (!this.#retried && /does not belong|not among the given roots/.test((e as Error).message)) {
        // A rotation read half-way (new certificate, old key or bundle): read again once settled.
        this.#retried = true;
        this.#retry?.clear();
        this.#retry = this.#clock.setTimer(() => {
          if (!this.#closed) this.#reloader.event({ path: this.#o.dir, type: 'change' });
        }, this.#o.settleMs ?? 1000);
        return;
      }
      this.#warn(`meshlet: dev CA ${this.#o.dir} not reloaded: ${(e as Error).message}; the last good certificate stays in use`);
      return;
    }
    if (!(await attempt.current()) || this.#closed) return;
    this.#retried = false;
    const prev = this.#ca as DevCa;
    this.#ca = next;
    if (next.ca.certPem !== prev.ca.certPem) {
      await this.#issue();
      this.#o.log.info?.(`meshlet: the dev CA ${this.#o.dir} was rotated; ${this.#spiffeId} re-issued from the new root`);
      return;
    }
    const cur = this.#o.holder.current;
    if (cur !== undefined && next.bundlePem !== cur.trustBundle) {
      this.#o.holder.set({ certChain: cur.certChain, privateKey: cur.privateKey, trustBundle: next.bundlePem, spiffeId: cur.spiffeId, notBefore: cur.notBefore, notAfter: cur.notAfter });
      this.#o.log.info?.(`meshlet: the dev CA ${this.#o.dir}'s trust bundle changed; it now holds ${next.bundlePem.split('-----BEGIN CERTIFICATE-----').length - 1} root(s)`);
    }
  }
}
