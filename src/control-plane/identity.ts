/**
 * The workload's certificate from the control plane's CA (`identity: 'control-plane'`): the mesh
 * makes its key locally, sends a CSR with its token (`POST /v1/certificates`), checks what comes
 * back (its own key, a chain to a root of the bundle) and installs it into the mesh's
 * {@link CredentialHolder}. It renews at half the certificate's lifetime counted from its receipt
 * (Istio's `SECRET_GRACE_PERIOD_RATIO` 0.5, jittered by ±0.01 as `rotateTime` does), with a new key each time; a failed renewal is retried with
 * the reconnect backoff while the current certificate keeps serving. A trust bundle pushed on the
 * watch stream (a root rotation) is installed at once, as a new generation.
 *
 * Startup mirrors the config's: {@link ControlPlaneIdentity.start} resolves with the first
 * certificate; after `startupTimeoutMs` without one it rejects (or, with `failOpen`, resolves
 * without an identity and keeps trying). A 401/403 rejects at once.
 *
 * @module
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { Clock, Random, Timer } from '../core/clock.ts';
import { MeshletError } from '../core/errors.ts';
import type { CredentialHolder, WorkloadCredentials } from '../security/identity/credentials.ts';
import { parseSpiffeUri, spiffeUri } from '../security/identity/spiffe.ts';
import { createCsr, generateKeyPair } from '../security/pki/index.ts';
import { type BackoffOptions, fullJitterMs } from './backoff.ts';
import { type CallRequest, HttpStatusError, isAuthFailure } from './http.ts';
import { CERTIFICATES_PATH, type CertificateRequest, type CertificateResponse, type TrustBundleEvent } from './protocol.ts';

/** Istio's `SECRET_GRACE_PERIOD_RATIO`: a certificate is renewed when this share of its lifetime is left. */
export const RENEW_AT_RATIO = 0.5;
/**
 * Istio's `SECRET_GRACE_PERIOD_RATIO_JITTER`: the ratio moves by up to this much either way, so a
 * fleet started together does not renew at one moment (±15 minutes of a 24-hour certificate).
 */
export const RENEW_JITTER_RATIO = 0.01;

/** Options of {@link ControlPlaneIdentity}. */
export interface ControlPlaneIdentityOptions {
  /** One call to the control plane, failing over between its URLs. */
  call<T>(req: CallRequest): Promise<T>;
  readonly holder: CredentialHolder;
  /** Who the mesh says it is (the CSR names it; the token's identity is what is issued). */
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  /** The parts of the identity the mesh's options set explicitly: an issued identity that differs in them is warned about. */
  readonly explicit?: { readonly trustDomain?: boolean; readonly serviceAccount?: boolean };
  /** Without a token (an `--insecure` control plane) the request names the identity. */
  readonly hasToken: boolean;
  readonly startupTimeoutMs: number;
  readonly failOpen: boolean;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: { warn(message: string): void; info?(message: string): void };
  /** Retry backoff after a failed issuance. @defaultValue 250 ms base, 15 s cap */
  readonly backoff?: BackoffOptions;
  /** Wall-clock time in epoch ms (certificate validity). @defaultValue Date.now */
  readonly wallNow?: () => number;
  /**
   * Whether the mesh asked for this identity (`identity: 'control-plane'`) rather than getting it
   * by default: a control plane without a CA (an older one: 404) then fails the start instead of
   * leaving the mesh without an identity.
   */
  readonly required?: boolean;
  /** Called after each certificate or bundle is installed. */
  readonly onInstalled?: (c: WorkloadCredentials) => void;
}

interface Startup {
  resolve(): void;
  reject(e: Error): void;
  timer: Timer;
  last: Error | undefined;
}

const pemList = (text: string): string[] => (text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((p) => `${p}\n`);

/** Checks an answer: the leaf carries our key and the SPIFFE ID, and chains to a root of the bundle. Throws naming what is wrong. */
export function checkIssued(res: CertificateResponse, privateKeyPem: string): { leaf: X509Certificate } {
  if (res === null || typeof res !== 'object' || typeof res.certChain !== 'string' || !Array.isArray(res.trustBundle) || typeof res.spiffeId !== 'string') {
    throw new Error('the answer is not a certificate response (certChain, trustBundle, spiffeId)');
  }
  const chain = pemList(res.certChain).map((p) => new X509Certificate(p));
  const roots = res.trustBundle.flatMap((r) => pemList(String(r))).map((p) => new X509Certificate(p));
  const leaf = chain[0];
  if (leaf === undefined) throw new Error('the answer holds no certificate');
  if (roots.length === 0) throw new Error('the answer holds no trust bundle');
  if (!leaf.checkPrivateKey(createPrivateKey(privateKeyPem))) throw new Error("the certificate is not for this workload's key");
  if (!(leaf.subjectAltName ?? '').split(', ').includes(`URI:${res.spiffeId}`)) throw new Error(`the certificate does not name ${res.spiffeId}`);
  let at = leaf;
  for (const c of chain.slice(1)) {
    if (!at.verify(c.publicKey)) throw new Error(`${(at.subject ?? '').replaceAll('\n', ', ') || 'the leaf'} is not signed by the next certificate of the chain`);
    at = c;
  }
  if (!issuedByOne(at, roots)) throw new Error('the certificate does not chain to a root of the trust bundle');
  return { leaf };
}

const issuedByOne = (top: X509Certificate, roots: readonly X509Certificate[]): boolean => roots.some((r) => top.checkIssued(r) && top.verify(r.publicKey));

/** Whether the last certificate of `certChain` (PEM) is signed by one of `rootsPem` (PEM); false when either does not parse. */
function chainsTo(certChain: string, rootsPem: readonly string[]): boolean {
  try {
    const chain = pemList(certChain);
    const top = chain[chain.length - 1];
    if (top === undefined) return false;
    return issuedByOne(new X509Certificate(top), rootsPem.flatMap((r) => pemList(String(r))).map((p) => new X509Certificate(p)));
  } catch {
    return false;
  }
}

/** The mesh's certificate from the control plane. */
export class ControlPlaneIdentity {
  readonly #o: ControlPlaneIdentityOptions;
  readonly #wallNow: () => number;
  #timer: Timer | undefined;
  #startup: Startup | undefined;
  #attempt = 0;
  #closed = false;
  #failing = false;
  /** The failing renewal has said that the current certificate expired. */
  #warnedExpired = false;
  #warnedIdentity = '';
  /** A bundle pushed while a request was in flight (it may be newer than the answer's). */
  #pushed: TrustBundleEvent | undefined;
  #requesting = false;
  /** A connection asked for a renewal of the current certificate ({@link CredentialHolder.renewer}). */
  #kicked = false;
  /** A trust bundle came on the watch stream: the control plane has a CA, so a 404 from its CA is not "no CA". */
  #bundleSeen = false;
  /** Stopped asking because the CA answered 404 (taken for a control plane without a CA). */
  #noCa = false;
  /** Installs a renewed certificate at its notBefore (it arrived not valid yet, the current one still is). */
  #deferred: Timer | undefined;

  constructor(o: ControlPlaneIdentityOptions) {
    this.#o = o;
    this.#wallNow = o.wallNow ?? Date.now;
  }

  /**
   * Stops waiting for the first certificate (the mesh starts without one: its config came from
   * the cache or failOpen because the control plane is unreachable); it keeps trying.
   */
  degrade(why: string): void {
    const s = this.#startup;
    if (s === undefined) return;
    this.#startup = undefined;
    s.timer.clear();
    this.#o.logger.warn(`meshlet: starting without a workload certificate (${why}); still asking the control plane's CA${s.last === undefined ? '' : `: ${s.last.message}`}`);
    s.resolve();
  }

  /** Gets the first certificate (see the module comment). */
  start(): Promise<void> {
    // Until the first certificate, calls that would use mTLS fail rather than go out in plaintext.
    this.#o.holder.expect(true);
    this.#o.holder.renewer = () => this.#kick();
    return new Promise<void>((resolve, reject) => {
      const timer = this.#o.clock.setTimer(() => this.#timeout(), this.#o.startupTimeoutMs, true);
      this.#startup = { resolve, reject, timer, last: undefined };
      this.#run();
    });
  }

  /** A connection found the certificate expired (its renewal timer is late: the process was frozen): renew now, once per certificate. */
  #kick(): void {
    if (this.#closed || this.#noCa || this.#requesting || this.#kicked) return;
    this.#kicked = true;
    this.#schedule(0, false);
  }

  #timeout(): void {
    const s = this.#startup;
    if (s === undefined) return;
    this.#startup = undefined;
    const why = s.last === undefined ? '' : `; last error: ${s.last.message}`;
    if (this.#o.failOpen) {
      this.#o.logger.warn(`meshlet: starting without a workload certificate (failOpen): none from the control plane within ${this.#o.startupTimeoutMs} ms${why}; still trying`);
      s.resolve();
      return;
    }
    s.reject(new MeshletError('MESHLET_ERR_CONTROL_PLANE', `control plane CA: no workload certificate within ${this.#o.startupTimeoutMs} ms (startupTimeoutMs)${why}`, { cause: s.last }));
  }

  #run(): void {
    if (this.#closed) return;
    void this.#issue().then(
      (delay) => this.#schedule(delay, false),
      (err: unknown) => this.#failed(err as Error),
    );
  }

  #schedule(delayMs: number, keepAlive: boolean): void {
    if (this.#closed) return;
    this.#timer?.clear();
    this.#timer = this.#o.clock.setTimer(() => this.#run(), Math.max(0, delayMs), keepAlive);
  }

  /** One issuance; resolves with the delay until the next (half the lifetime). */
  async #issue(): Promise<number> {
    const o = this.#o;
    const asked = spiffeUri({ trustDomain: o.trustDomain, namespace: o.namespace, serviceAccount: o.serviceAccount });
    const keys = generateKeyPair();
    const csr = await createCsr(keys, { spiffeId: asked });
    const body: CertificateRequest = o.hasToken ? { csr } : { csr, namespace: o.namespace, serviceAccount: o.serviceAccount };
    let res: CertificateResponse;
    this.#requesting = true;
    this.#pushed = undefined;
    try {
      res = await o.call<CertificateResponse>({ method: 'POST', path: CERTIFICATES_PATH, body });
    } finally {
      this.#requesting = false;
    }
    if (this.#closed) return 0;
    let leaf: X509Certificate;
    try {
      ({ leaf } = checkIssued(res, keys.privateKeyPem));
    } catch (err) {
      throw new MeshletError('MESHLET_ERR_CONTROL_PLANE', `control plane CA: refusing the certificate it issued: ${(err as Error).message}`, { cause: err });
    }
    const notBefore = typeof res.notBefore === 'number' ? res.notBefore : Date.parse(leaf.validFrom);
    const notAfter = typeof res.notAfter === 'number' ? res.notAfter : Date.parse(leaf.validTo);
    const now = this.#wallNow();
    // Expired on arrival (the control plane's clock is behind this host's by more than the lifetime):
    // installing it would renew at once, in a loop; it is a failure, retried with the backoff.
    if (notAfter <= now) throw new MeshletError('MESHLET_ERR_CONTROL_PLANE', `control plane CA: refusing the certificate it issued: it expired at ${new Date(notAfter).toISOString()} by this host's clock (${new Date(now).toISOString()}); is the control plane's clock or this host's wrong?`);
    // A bundle pushed while the request was in flight may be newer than the answer's.
    const pushed = this.#pushed as TrustBundleEvent | undefined;
    const trustBundle = pushed !== undefined && pushed.version !== res.trustBundleVersion ? pushed.roots.join('') : res.trustBundle.join('');
    this.#pushed = undefined;
    const current = o.holder.current;
    const renewal = current !== undefined;
    const update = { certChain: res.certChain, privateKey: keys.privateKeyPem, trustBundle, spiffeId: res.spiffeId, notBefore, notAfter };
    this.#deferred?.clear();
    this.#deferred = undefined;
    // Not valid yet by this host's clock (the CA's clock is ahead, e.g. one replica's): peers whose
    // clocks agree with this host's would refuse it until its notBefore, so a current certificate
    // that is still valid then (and chains to the bundle) keeps serving until that moment.
    const keep = notBefore > now && current !== undefined && current.notAfter > notBefore && chainsTo(current.certChain, pemList(trustBundle));
    let c: WorkloadCredentials | undefined;
    if (keep) {
      this.#deferred = o.clock.setTimer(
        () => {
          this.#deferred = undefined;
          if (this.#closed) return;
          // A bundle pushed meanwhile is the newer one.
          const installed = o.holder.set({ ...update, trustBundle: o.holder.current?.trustBundle ?? update.trustBundle });
          o.onInstalled?.(installed);
        },
        notBefore - now,
        false,
      );
      o.logger.warn(
        `meshlet: the certificate the control plane issued (${res.spiffeId}) is not valid before ${new Date(notBefore).toISOString()} by this host's clock (${new Date(now).toISOString()}): the current one (valid until ${new Date(current.notAfter).toISOString()}) keeps serving until then; check the clocks of the control plane and this host`,
      );
    } else c = o.holder.set(update);
    if (res.spiffeId !== asked && res.spiffeId !== this.#warnedIdentity && this.#differsExplicitly(res.spiffeId)) {
      this.#warnedIdentity = res.spiffeId;
      o.logger.warn(`meshlet: the control plane issued ${res.spiffeId} (the token's identity), not ${asked} (the mesh's namespace, serviceAccount and trustDomain options); peers and policies see ${res.spiffeId}`);
    }
    if (notBefore > now && c !== undefined) {
      o.logger.warn(`meshlet: the certificate the control plane issued (${res.spiffeId}) is not valid before ${new Date(notBefore).toISOString()} by this host's clock (${new Date(now).toISOString()}): peers whose clocks agree with this host's refuse it until then; check the clocks of the control plane and this host`);
    }
    // A mesh that started without one (from the cache, failOpen) is issued its first here.
    if (this.#failing) o.logger.warn(`meshlet: workload certificate ${renewal ? 'renewed again' : 'issued'} (${res.spiffeId}, valid until ${new Date(notAfter).toISOString()})`);
    this.#failing = false;
    this.#kicked = false;
    this.#warnedExpired = false;
    this.#attempt = 0;
    if (c !== undefined) o.onInstalled?.(c);
    const s = this.#startup;
    if (s !== undefined) {
      this.#startup = undefined;
      s.timer.clear();
      s.resolve();
    }
    // Istio's rotateTime: the lifetime counts from when the certificate was received, not from its
    // notBefore (which the CA backdates for clock skew: a 2-minute certificate would renew at once),
    // and the grace ratio is jittered.
    const r = this.#o.random;
    const ratio = Math.min(1, Math.max(0, RENEW_AT_RATIO + r.next() * RENEW_JITTER_RATIO * (r.next() < 0.5 ? -1 : 1)));
    return (notAfter - this.#wallNow()) * (1 - ratio);
  }

  /** Whether the issued identity contradicts what the mesh's options say (not mere defaults). */
  #differsExplicitly(issued: string): boolean {
    const o = this.#o;
    const id = parseSpiffeUri(issued);
    if (id === undefined) return true;
    return id.namespace !== o.namespace || (o.explicit?.serviceAccount === true && id.serviceAccount !== o.serviceAccount) || (o.explicit?.trustDomain === true && id.trustDomain !== o.trustDomain);
  }

  #failed(err: Error): void {
    if (this.#closed) return;
    const cause = (err as { cause?: unknown }).cause ?? err;
    const s = this.#startup;
    // A control plane that pushed a trust bundle has a CA: its 404 (a proxy in front of it that does
    // not route the CA's path, say) is a failure, retried, never a reason to drop mTLS.
    if (cause instanceof HttpStatusError && cause.status === 404 && !this.#o.required && !this.#bundleSeen) {
      // A control plane without a CA (older than this mesh): no identity by default, and nothing to retry.
      this.#o.logger.warn(`meshlet: the control plane has no CA (${err.message}); running without a workload certificate (no mTLS). Upgrade it, or set identity: 'none' to silence this`);
      this.#noCa = true;
      this.#o.holder.expect(false);
      this.#o.holder.renewer = undefined;
      if (s !== undefined) {
        this.#startup = undefined;
        s.timer.clear();
        s.resolve();
      }
      return;
    }
    if (s !== undefined) {
      s.last = err;
      // Retrying with the same token cannot help.
      if (isAuthFailure(cause) || (cause instanceof HttpStatusError && cause.status === 404 && !this.#bundleSeen)) {
        this.#startup = undefined;
        s.timer.clear();
        s.reject(new MeshletError('MESHLET_ERR_CONTROL_PLANE', `control plane CA: ${err.message}`, { cause: err }));
        this.close();
        return;
      }
    } else {
      const c = this.#o.holder.current;
      const expired = c !== undefined && c.notAfter <= this.#wallNow();
      const left = c === undefined ? '' : expired ? '; THE CURRENT CERTIFICATE HAS EXPIRED' : `; the current certificate is valid until ${new Date(c.notAfter).toISOString()}`;
      if (!this.#failing) this.#o.logger.warn(`meshlet: renewing the workload certificate failed, retrying${left}: ${err.message}`);
      else if (expired && !this.#warnedExpired && c !== undefined) {
        // The renewal has been failing since before the certificate expired: say so once at its expiry, since from now on peers refuse it.
        this.#o.logger.warn(`meshlet: the workload certificate (${c.spiffeId}) expired at ${new Date(c.notAfter).toISOString()} and renewing it still fails: peers refuse it until the control plane's CA issues a new one; retrying: ${err.message}`);
      }
      if (expired) this.#warnedExpired = true;
    }
    this.#failing = true;
    // A refusal that is not an outage (a 4xx but 408/429) is retried at the slowest pace.
    const transient = !(cause instanceof HttpStatusError) || cause.status >= 500 || cause.status === 408 || cause.status === 429;
    const delay = transient ? fullJitterMs(this.#attempt++, this.#o.random, this.#o.backoff) : (this.#o.backoff?.maxMs ?? 15_000);
    this.#schedule(delay, s !== undefined);
  }

  /**
   * A `trust-bundle` event: installed at once (same certificate, new roots, a new generation).
   */
  trustBundle(event: TrustBundleEvent): void {
    if (this.#closed) return;
    this.#bundleSeen = true;
    if (this.#noCa) {
      // It was taken for a control plane without a CA; its bundle says otherwise: calls that need mTLS wait for the certificate.
      this.#noCa = false;
      this.#o.logger.warn('meshlet: the control plane pushed a trust bundle, so it has a CA: asking it for a workload certificate again (calls that need mTLS wait for it)');
      this.#o.holder.expect(true);
      this.#schedule(0, false);
      return;
    }
    const c = this.#o.holder.current;
    const roots = event.roots.join('');
    if (this.#requesting) this.#pushed = event;
    // Before the first certificate: the answer carries the bundle.
    if (c === undefined) return;
    if (c.trustBundle === roots) return;
    const { generation: _g, ...rest } = c;
    const next = this.#o.holder.set({ ...rest, trustBundle: roots });
    this.#o.logger.info?.(`meshlet: trust bundle ${event.version} installed (${event.roots.length} root(s))`);
    this.#o.onInstalled?.(next);
    // The bundle no longer holds the root of this workload's certificate (a rotation was finalized):
    // peers refuse it from now on, so a certificate from the current root is asked for at once
    // rather than at the next renewal, hours away.
    if (!this.#requesting && !chainsTo(c.certChain, event.roots)) {
      this.#o.logger.warn(`meshlet: the trust bundle ${event.version} no longer holds the root of this workload's certificate (${c.spiffeId}); renewing it now`);
      this.#schedule(0, false);
    }
  }

  /**
   * The watch stream came up again: the control plane answers. A renewal that has been failing is
   * tried now rather than when its backoff ends (up to 15 s later, with a certificate that may have
   * expired during the outage: every new mTLS connection is refused until it is renewed).
   */
  reconnected(): void {
    if (this.#closed || !this.#failing || this.#requesting || this.#noCa) return;
    this.#schedule(0, this.#startup !== undefined);
  }

  /** Stops renewing; a request in flight is not waited for (its answer is dropped, and closing the agent ends it). */
  close(): Promise<void> {
    this.#closed = true;
    this.#o.holder.renewer = undefined;
    this.#timer?.clear();
    this.#deferred?.clear();
    this.#startup?.timer.clear();
    return Promise.resolve();
  }
}
