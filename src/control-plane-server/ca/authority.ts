/**
 * The control plane's CA: signs workload certificates whose only SAN is the SPIFFE ID of the
 * caller's token, keeps the trust bundle, and rotates the root.
 *
 * At first start a root for the trust domain is generated and kept in `<dataDir>/ca.json` (mode
 * 0600), exactly like the token signing key; replicas that share a {@link SharedValues} (etcd)
 * agree on one through `putIfAbsent('ca', …)`. A provided CA (`--ca-cert`, `--ca-key`, …) is
 * used instead; one that differs from the stored CA starts a rotation (the old roots stay trusted
 * until finalized). A rotation changes the whole stored CA in one compare-and-swap, and every
 * replica watches the shared key, so all of them sign with the new root and push the new bundle.
 *
 * @module
 */
import { X509Certificate } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { CaInfo, CertificateResponse, RotateRequest, TrustBundleEvent } from '../../control-plane/protocol.ts';
import { type Clock, systemClock, type Timer } from '../../core/clock.ts';
import { InvalidArgumentError } from '../../core/errors.ts';
import { writeFileAtomic } from '../../core/write-file-atomic.ts';
import { spiffeUri } from '../../security/identity/spiffe.ts';
import { CertificateAuthority, type IssuedServingCertificate } from '../../security/pki/index.ts';
import { ControlPlaneError } from '../errors.ts';
import type { ServerLogger } from '../logger.ts';
import type { SharedValues, SharedWatch } from '../store.ts';
import { readLocalCa, writeLocalCa } from './local-copy.ts';
import { type CaMaterial, checkCaMaterial, loadProvidedCa, type ProvidedCaFiles } from './provided.ts';
import { bundleVersion, CA_FILE, type CaState, describeCertificate, parseCaState, pemCertificates, SHARED_CA_KEY, sameCertificate, serializeCaState, unionRoots } from './state.ts';

/** Default lifetime of workload certificates: 24 h (Istio's `DEFAULT_WORKLOAD_CERT_TTL`). */
export const DEFAULT_CERT_TTL_MS = 24 * 3600_000;
/** Shortest workload certificate lifetime. */
export const MIN_CERT_TTL_MS = 60_000;
/** Lifetime of a generated root: 10 years (Istio's self-signed root). */
export const DEFAULT_ROOT_TTL_MS = 10 * 365 * 24 * 3600_000;
/** Default trust domain (MeshConfig `trustDomain`). */
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

/** Options of {@link ControlPlaneCa.open}. */
export interface ControlPlaneCaOptions {
  /** Keeps `ca.json`. */
  readonly dataDir: string;
  /** Where replicas share the CA (etcd). */
  readonly shared?: SharedValues;
  /** @defaultValue 'cluster.local' */
  readonly trustDomain?: string;
  /** Lifetime of workload certificates, at least {@link MIN_CERT_TTL_MS}, at most what the signer has left. @defaultValue 24 h */
  readonly certTtlMs?: number;
  /** Sign with this CA instead of a generated root. */
  readonly provided?: ProvidedCaFiles;
  /** Lifetime of generated roots (first start, rotation). @defaultValue 10 years */
  readonly rootTtlMs?: number;
  readonly logger?: ServerLogger;
  /** Wall-clock time, epoch ms (certificate validity is wall-clock time). @defaultValue Date.now */
  readonly now?: () => number;
  /** Timers (a rotation's overlap). @defaultValue the system clock */
  readonly clock?: Clock;
}

/** The identity a certificate is issued for. */
export interface IssueFor {
  readonly namespace: string;
  readonly serviceAccount: string;
  /** Shorter than the configured lifetime (admin issuance). */
  readonly ttlMs?: number;
}

const TRUST_DOMAIN = /^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$/;

/** Checks a trust domain (SPIFFE: lower-case letters, digits, dots, dashes, underscores). */
export function checkTrustDomain(td: string): string {
  if (typeof td !== 'string' || !TRUST_DOMAIN.test(td) || td.length > 255) {
    throw new InvalidArgumentError(`trust domain must be lower-case letters, digits, dots, dashes and underscores (a SPIFFE trust domain), got ${JSON.stringify(td)}`);
  }
  return td;
}

/** The control plane's CA. Create with {@link ControlPlaneCa.open}. */
export class ControlPlaneCa {
  readonly #o: ControlPlaneCaOptions;
  readonly #trustDomain: string;
  readonly #certTtlMs: number;
  readonly #file: string;
  readonly #now: () => number;
  #state: CaState;
  #text: string;
  #signer: CertificateAuthority;
  #bundle: TrustBundleEvent;
  #watch: SharedWatch | undefined;
  #finalizeTimer: Timer | undefined;
  #closed = false;
  readonly #listeners = new Set<(bundle: TrustBundleEvent) => void>();
  /** Changes are made one at a time. */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(o: ControlPlaneCaOptions, state: CaState, text: string, signer: CertificateAuthority, trustDomain: string, certTtlMs: number) {
    this.#o = o;
    this.#trustDomain = trustDomain;
    this.#certTtlMs = certTtlMs;
    this.#file = join(o.dataDir, CA_FILE);
    this.#now = o.now ?? Date.now;
    this.#state = state;
    this.#text = text;
    this.#signer = signer;
    this.#bundle = { version: bundleVersion(state.roots), roots: state.roots };
  }

  /**
   * Loads (or creates) the CA; see the module comment. Rejects with an `InvalidArgumentError`
   * naming the file and the problem (a damaged `ca.json`, a provided CA that does not check out,
   * a certificate lifetime out of range).
   */
  static async open(o: ControlPlaneCaOptions): Promise<ControlPlaneCa> {
    const now = o.now ?? Date.now;
    const trustDomain = checkTrustDomain(o.trustDomain ?? DEFAULT_TRUST_DOMAIN);
    await mkdir(o.dataDir, { recursive: true });
    const file = join(o.dataDir, CA_FILE);
    const localText = await readLocalCa(file);
    const local = localText === undefined ? undefined : parseCaState(localText, file);
    const provided = o.provided === undefined ? undefined : await loadProvidedCa(o.provided, now());
    let text: string;
    let state: CaState;
    const shared = o.shared;
    if (shared === undefined) {
      state = provided === undefined ? (local ?? (await generatedState(trustDomain, o.rootTtlMs, 1))) : withProvided(local, provided);
      text = local !== undefined && state === local ? localText! : serializeCaState(state);
    } else {
      // Offer what this replica has (or would generate); the stored CA wins.
      const offer = provided === undefined ? (local ?? (await generatedState(trustDomain, o.rootTtlMs, 1))) : withProvided(local, provided);
      text = await shared.putIfAbsent(SHARED_CA_KEY, serializeCaState(offer));
      state = parseCaState(text, 'the shared CA (etcd key shared/ca)');
      if (provided !== undefined) {
        // Provided files are authoritative: a different signer than the stored one starts a rotation.
        for (let tries = 0; ; tries++) {
          const next = withProvided(state, provided);
          if (next === state) break;
          if (shared.compareAndSwap === undefined) throw new InvalidArgumentError('the shared store cannot change the CA (no compareAndSwap); cannot switch to the provided CA');
          const r = await shared.compareAndSwap(SHARED_CA_KEY, text, serializeCaState(next));
          text = r.value;
          state = parseCaState(text, 'the shared CA (etcd key shared/ca)');
          if (r.swapped || tries > 5) break;
        }
      }
    }
    const signer = loadSigner(state, 'the CA');
    const certTtlMs = checkCertTtl(o.certTtlMs ?? DEFAULT_CERT_TTL_MS, state, now());
    await writeLocalCa(file, local === undefined ? undefined : { text: localText!, state: local }, { text, state }, { shared: shared !== undefined, logger: o.logger, now: now() });
    const ca = new ControlPlaneCa(o, state, text, signer, trustDomain, certTtlMs);
    if (local === undefined) o.logger?.info?.(`CA: ${state.origin === 'generated' && shared === undefined ? 'generated a root' : 'using the CA'} ${describeCertificate(state.root).subject} for trust domain ${trustDomain} (${file})`);
    if (ca.rotating) o.logger?.warn(`CA: ${state.roots.length} roots are trusted (a rotation is in progress); ${ca.#whenFinalized()}`);
    ca.#armFinalize();
    ca.#watch = shared?.watch?.(SHARED_CA_KEY, (value) => {
      ca.#queue = ca.#queue.then(() => ca.#adopt(value)).catch((err: unknown) => o.logger?.warn(`CA: ignoring a shared CA change: ${(err as Error).message}`));
    });
    return ca;
  }

  /** Its trust domain (SPIFFE IDs). */
  get trustDomain(): string {
    return this.#trustDomain;
  }

  /** Lifetime of the certificates it issues. */
  get certTtlMs(): number {
    return this.#certTtlMs;
  }

  /** The trust bundle now (pushed to workloads as `trust-bundle` events). */
  get bundle(): TrustBundleEvent {
    return this.#bundle;
  }

  /** True while a rotation overlaps (roots other than the signer's are trusted). */
  get rotating(): boolean {
    return this.#state.roots.length > 1;
  }

  /** Calls `listener` with the new bundle after every change (this replica's or another's). */
  onChange(listener: (bundle: TrustBundleEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** What `GET /v1/ca` answers. */
  info(): CaInfo {
    const s = this.#state;
    const [signer, ...chain] = pemCertificates(s.certChain) as [string, ...string[]];
    return {
      trustDomain: this.#trustDomain,
      certTtlMs: this.#certTtlMs,
      origin: s.origin,
      signer: describeCertificate(signer),
      chain: chain.map(describeCertificate),
      roots: s.roots.map(describeCertificate),
      trustBundleVersion: this.#bundle.version,
      rotating: this.rotating,
      ...(s.finalizeAt === undefined || !this.rotating ? {} : { finalizeAt: new Date(s.finalizeAt).toISOString() }),
      generation: s.generation,
    };
  }

  /**
   * Signs a CSR for an identity: the certificate's only SAN is its SPIFFE ID, whatever the CSR
   * asks for. Throws a `ControlPlaneError` `INVALID` for a CSR that does not parse or whose
   * signature does not verify.
   */
  async issue(csrPem: string, who: IssueFor): Promise<CertificateResponse> {
    const spiffeId = spiffeUri({ trustDomain: this.#trustDomain, namespace: who.namespace, serviceAccount: who.serviceAccount });
    const now = this.#now();
    const signerEnd = Date.parse(new X509Certificate(pemCertificates(this.#state.certChain)[0]!).validTo);
    // Never past the signer's own expiry (what is left of it may be less than the configured lifetime).
    const ttlMs = Math.min(who.ttlMs ?? this.#certTtlMs, signerEnd - now);
    if (ttlMs < MIN_CERT_TTL_MS) throw new ControlPlaneError('UNAVAILABLE', `the CA's signing certificate expires at ${new Date(signerEnd).toISOString()}: rotate it (meshlet ca rotate)`);
    const bundle = this.#bundle;
    let signed: Awaited<ReturnType<CertificateAuthority['sign']>>;
    try {
      signed = await this.#signer.sign(csrPem, { spiffeId, ttlMs, now });
    } catch (err) {
      throw new ControlPlaneError('INVALID', `certificate request: ${(err as Error).message}`, { cause: err });
    }
    return {
      spiffeId,
      certChain: signed.certChainPem,
      trustBundle: bundle.roots,
      trustBundleVersion: bundle.version,
      notBefore: signed.notBefore,
      notAfter: signed.notAfter,
    };
  }

  /** The control plane's own TLS serving certificate (serving-tls.ts), from the signer in use. */
  issueServing(names: readonly string[], ttlMs: number): Promise<IssuedServingCertificate> {
    return this.#signer.issueServing({ names, ttlMs, now: this.#now() });
  }

  /**
   * Starts a rotation (a new root, generated or given: new certificates are signed by it, the
   * bundle holds old and new roots) or, with `finalize`, ends one (only the signer's root stays).
   * With a shared store the change is one compare-and-swap: a concurrent change on another
   * replica makes it fail with `CONFLICT` (nothing changed; look and retry).
   */
  rotate(req: RotateRequest): Promise<CaInfo> {
    const run = this.#queue.then(() => this.#rotate(req));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #rotate(req: RotateRequest): Promise<CaInfo> {
    const s = this.#state;
    let next: CaState;
    if (req.overlapMs !== undefined) {
      if (req.finalize === true) throw new ControlPlaneError('INVALID', 'rotate: finalize takes no overlap');
      if (typeof req.overlapMs !== 'number' || !Number.isFinite(req.overlapMs) || req.overlapMs < this.#certTtlMs) {
        throw new ControlPlaneError('INVALID', `rotate: the overlap must be at least the certificate lifetime (--cert-ttl, ${this.#certTtlMs} ms), so every workload renews from the new root before the old one is dropped; got ${String(req.overlapMs)}`);
      }
    }
    if (req.finalize === true) {
      if (req.certChain !== undefined || req.key !== undefined || req.root !== undefined) throw new ControlPlaneError('INVALID', 'rotate: finalize takes no certificate or key');
      if (!this.rotating) throw new ControlPlaneError('CONFLICT', 'rotate --finalize: no rotation in progress (the trust bundle holds one root)');
      const { finalizeAt: _f, ...rest } = s;
      next = { ...rest, generation: s.generation + 1, roots: [s.root] };
    } else if (req.certChain !== undefined || req.key !== undefined) {
      if (typeof req.certChain !== 'string' || typeof req.key !== 'string') throw new ControlPlaneError('INVALID', 'rotate: give both certChain and key (PEM), or neither to generate a root');
      let m: CaMaterial;
      try {
        m = checkCaMaterial({ cert: req.certChain, key: req.key, root: req.root }, { cert: 'certChain', key: 'key', chain: 'certChain', root: 'root' }, this.#now());
      } catch (err) {
        throw new ControlPlaneError('INVALID', `rotate: ${(err as Error).message}`, { cause: err });
      }
      if (sameCertificate(pemCertificates(m.certChain)[0]!, pemCertificates(s.certChain)[0]!)) throw new ControlPlaneError('CONFLICT', 'rotate: that CA signs already');
      next = { format: 1, generation: s.generation + 1, origin: 'provided', ...m, roots: unionRoots(s.roots, [m.root]) };
    } else {
      const g = await generatedState(this.#trustDomain, this.#o.rootTtlMs, s.generation + 1);
      next = { ...g, roots: unionRoots(s.roots, [g.root]) };
    }
    if (req.overlapMs !== undefined) next = { ...next, finalizeAt: Math.round(this.#now() + req.overlapMs) };
    else if (req.finalize !== true && next.finalizeAt !== undefined) {
      const { finalizeAt: _f, ...rest } = next;
      next = rest;
    }
    loadSigner(next, 'rotate');
    checkCertTtl(this.#certTtlMs, next, this.#now());
    const text = serializeCaState(next);
    const shared = this.#o.shared;
    if (shared !== undefined) {
      if (shared.compareAndSwap === undefined) throw new ControlPlaneError('UNAVAILABLE', 'rotate: the shared store cannot change the CA (no compareAndSwap)');
      const r = await shared.compareAndSwap(SHARED_CA_KEY, this.#text, text);
      if (!r.swapped) {
        await this.#adopt(r.value);
        throw new ControlPlaneError('CONFLICT', 'rotate: another replica changed the CA at the same time; nothing was changed here (meshlet ca show, then retry)');
      }
    }
    await this.#install(next, text);
    this.#o.logger?.info?.(
      req.finalize === true
        ? `CA: rotation finalized; the trust bundle holds only ${describeCertificate(next.root).subject}`
        : `CA: rotating to ${describeCertificate(next.root).subject}; ${next.roots.length} roots trusted: ${this.#whenFinalized()}`,
    );
    return this.info();
  }

  /** Another replica's change (or this one's, seen again through the watch). */
  async #adopt(text: string): Promise<void> {
    if (text === this.#text) return;
    const state = parseCaState(text, 'the shared CA (etcd key shared/ca)');
    if (state.generation < this.#state.generation) return;
    await this.#install(state, text);
    this.#o.logger?.info?.(`CA: picked up generation ${state.generation} from the shared store (${state.roots.length} root(s) trusted)`);
  }

  async #install(state: CaState, text: string): Promise<void> {
    const signer = loadSigner(state, 'the CA');
    this.#state = state;
    this.#text = text;
    this.#signer = signer;
    const before = this.#bundle.version;
    this.#bundle = { version: bundleVersion(state.roots), roots: state.roots };
    await writeFileAtomic(this.#file, text, { mode: 0o600 });
    this.#armFinalize();
    if (this.#bundle.version !== before) {
      for (const l of [...this.#listeners]) {
        try {
          l(this.#bundle);
        } catch (err) {
          this.#o.logger?.warn(`CA: a bundle listener failed: ${(err as Error).message}`);
        }
      }
    }
  }

  /**
   * Sets the timer of a rotation's overlap: when it ends, this replica finalizes (with replicas,
   * the first to do it wins; the others' compare-and-swap fails and they adopt its change).
   */
  #armFinalize(): void {
    this.#finalizeTimer?.clear();
    this.#finalizeTimer = undefined;
    const at = this.#state.finalizeAt;
    if (at === undefined || !this.rotating || this.#closed) return;
    const wait = at - this.#now(); // a timer cannot wait longer than 2^31-1 ms: step
    this.#finalizeTimer = (this.#o.clock ?? systemClock).setTimer(
      () => {
        if (this.#now() < at) return this.#armFinalize();
        const generation = this.#state.generation;
        this.rotate({ finalize: true }).then(
          () => this.#o.logger?.info?.(`CA: the rotation's overlap ended at ${new Date(at).toISOString()}; finalized`),
          (err: unknown) => {
            // Another replica finalized first (CONFLICT), or did already (no rotation): nothing to do.
            if (this.#state.generation === generation) this.#o.logger?.warn(`CA: finalizing the rotation failed: ${(err as Error).message}`);
          },
        );
      },
      Math.max(0, Math.min(wait, 2 ** 31 - 1)),
    );
  }

  /** How the rotation in progress ends: by itself at `finalizeAt` (`rotate --overlap`), or with `rotate --finalize`. */
  #whenFinalized(): string {
    const at = this.#state.finalizeAt;
    if (at === undefined) return "drop the old ones with 'meshlet ca rotate --finalize' once every workload has a new certificate";
    return `the old ones are dropped by themselves at ${new Date(at).toISOString()} (rotate --overlap), or earlier with 'meshlet ca rotate --finalize'`;
  }

  /** Stops watching the shared CA. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#finalizeTimer?.clear();
    await this.#watch?.close();
    await this.#queue.catch(() => undefined);
  }
}

async function generatedState(trustDomain: string, rootTtlMs: number | undefined, generation: number): Promise<CaState> {
  const root = await CertificateAuthority.createRoot({ trustDomain, ttlMs: rootTtlMs ?? DEFAULT_ROOT_TTL_MS });
  return { format: 1, generation, origin: 'generated', certChain: root.certPem, key: root.keyPem, root: root.rootPem, roots: [root.rootPem] };
}

/** The stored state with the provided CA signing: unchanged when it signs already, else a rotation to it. */
function withProvided(stored: CaState | undefined, p: CaMaterial): CaState {
  if (stored !== undefined && sameCertificate(pemCertificates(stored.certChain)[0]!, pemCertificates(p.certChain)[0]!)) return stored;
  return { format: 1, generation: (stored?.generation ?? 0) + 1, origin: 'provided', ...p, roots: unionRoots(stored?.roots ?? [], [p.root]) };
}

function loadSigner(state: CaState, where: string): CertificateAuthority {
  try {
    return CertificateAuthority.load({ certChainPem: state.certChain, keyPem: state.key, rootsPem: state.root });
  } catch (err) {
    throw new InvalidArgumentError(`${where}: the signing certificate and key do not load: ${(err as Error).message}`, { cause: err });
  }
}

/** Checks the workload certificate lifetime against the bounds and the signer's remaining life. */
export function checkCertTtl(ttlMs: number, state: CaState, now: number): number {
  if (!Number.isFinite(ttlMs) || ttlMs < MIN_CERT_TTL_MS) throw new InvalidArgumentError(`certificate lifetime (--cert-ttl) must be at least 1m, got ${ttlMs} ms`);
  const signerEnd = Date.parse(new X509Certificate(pemCertificates(state.certChain)[0]!).validTo);
  if (ttlMs > signerEnd - now) {
    throw new InvalidArgumentError(`certificate lifetime (--cert-ttl) ${Math.round(ttlMs / 60_000)}m is longer than the CA has left (it expires ${new Date(signerEnd).toISOString()}); shorten it or rotate the CA`);
  }
  return Math.round(ttlMs);
}
