/**
 * The control plane's TLS (istiod's 15012): a serving certificate from the operator's PKI
 * (files, re-read when they change, as cert-manager replaces them), or one the control plane
 * issues itself from its CA (`--tls auto`), renewed at half its life and reissued when the CA's
 * roots change, as istiod issues and rotates its DNS certificate. A new certificate goes into
 * the listening server with `setSecureContext`: connections already open (watch streams) keep
 * theirs; new ones get the new one.
 *
 * Also writes `<dataDir>/root-cert.pem` (the trust bundle: every root workloads trust, as
 * Istio's `istio-ca-root-cert` ConfigMap holds it), which is what clients verify an `auto`
 * certificate with.
 *
 * @module
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import type { Server as HttpsServer } from 'node:https';
import type { Clock, Timer } from '../core/clock.ts';
import { InvalidArgumentError } from '../core/errors.ts';
import { writeFileAtomic } from '../core/write-file-atomic.ts';
import { privateKeyFrom } from '../security/pki/index.ts';
import type { ControlPlaneCa } from './ca/authority.ts';
import type { ServerLogger } from './logger.ts';

/**
 * How the control plane serves TLS: `{ certFile, keyFile }` (a certificate of your PKI, with its
 * chain, and its key; re-read every `reloadMs`), or `{ auto: true }` (issued by the control
 * plane's own CA for `sans` and the default names, renewed at half of `ttlMs`).
 */
export type ServingTlsOptions =
  | { readonly certFile: string; readonly keyFile: string; readonly reloadMs?: number }
  | { readonly auto: true; readonly sans?: readonly string[]; readonly ttlMs?: number };

/** Lifetime of an `auto` serving certificate: 30 days (renewed at half of it, and whenever the CA's roots change). */
export const DEFAULT_SERVING_CERT_TTL_MS = 30 * 24 * 3600_000;
/** Shortest `auto` lifetime (`--tls-cert-ttl`): renewed at half of it, with a minute between tries when renewing fails. */
export const MIN_SERVING_CERT_TTL_MS = 10 * 60_000;
/** Longest `auto` lifetime: a year (a certificate's life is what a stolen key is worth). */
export const MAX_SERVING_CERT_TTL_MS = 365 * 24 * 3600_000;

/** Checks an `auto` certificate's lifetime; `what` names it in the error (`--tls-cert-ttl`, `tls.ttlMs`). */
export function checkServingCertTtl(ttlMs: number, what: string, given: string = String(ttlMs)): number {
  if (!Number.isFinite(ttlMs) || ttlMs < MIN_SERVING_CERT_TTL_MS || ttlMs > MAX_SERVING_CERT_TTL_MS) {
    throw new InvalidArgumentError(`${what}: the serving certificate's lifetime must be from 10m to 8760h (365 days), got ${given}; it is renewed at half of it`);
  }
  return ttlMs;
}

/** How often `certFile`/`keyFile` are read again for a replaced certificate. */
export const DEFAULT_TLS_RELOAD_MS = 60_000;
/** A failed renewal is tried again this much later. */
const RETRY_MS = 60_000;
/** `<dataDir>/root-cert.pem`: the trust bundle, to give clients (Istio's `root-cert.pem`). */
export const ROOT_CERT_FILE = 'root-cert.pem';

/** The certificate being served. */
export interface ServedCertificate {
  /** The leaf, then its chain (PEM). */
  readonly certChain: string;
  readonly key: string;
  /** Its SANs: DNS names and IP addresses. */
  readonly names: readonly string[];
  /** Epoch ms. */
  readonly notAfter: number;
}

interface Deps {
  readonly ca: ControlPlaneCa;
  readonly clock: Clock;
  /** Wall-clock time, epoch ms. */
  readonly now: () => number;
  /** The listen address (`--host`): named in an `auto` certificate unless it is a wildcard. */
  readonly host: string;
  readonly logger: ServerLogger;
  /** `<dataDir>/root-cert.pem`, named in the start-up line. @defaultValue "root-cert.pem of the data dir" */
  readonly rootCertPath?: string | undefined;
}

/** The names of an `auto` certificate besides the given ones: localhost, the loopback addresses, the host's name, and the listen address (every interface's for a wildcard). */
export function defaultServingNames(host: string): string[] {
  const names = ['localhost', '127.0.0.1', '::1'];
  const h = os.hostname().toLowerCase();
  if (h !== '' && /^[a-z0-9.-]+$/.test(h)) names.push(h);
  if (host !== '0.0.0.0' && host !== '::' && host !== '') names.push(host);
  else {
    for (const list of Object.values(os.networkInterfaces())) {
      for (const a of list ?? []) if (!a.internal && !(a.family === 'IPv6' && a.address.startsWith('fe80:'))) names.push(a.address);
    }
  }
  return names;
}

function readPem(file: string, flag: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`${flag} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
}

/** Reads and checks a serving certificate and its key: a certificate, its own key, not expired. */
export function loadServingFiles(certFile: string, keyFile: string, now: number): ServedCertificate {
  const certChain = readPem(certFile, '--tls-cert');
  const key = readPem(keyFile, '--tls-key');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(certChain);
  } catch (err) {
    throw new InvalidArgumentError(`--tls-cert ${certFile}: not a PEM certificate (${(err as Error).message})`, { cause: err });
  }
  let keyObject: ReturnType<typeof privateKeyFrom>;
  try {
    keyObject = privateKeyFrom(key, `--tls-key ${keyFile}`);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message, { cause: err });
  }
  if (!leaf.checkPrivateKey(keyObject)) throw new InvalidArgumentError(`--tls-key ${keyFile}: this key is not the key of the certificate in --tls-cert ${certFile} (${leaf.subject || leaf.subjectAltName || 'no subject'})`);
  const notAfter = leaf.validToDate.getTime();
  if (notAfter <= now) throw new InvalidArgumentError(`--tls-cert ${certFile}: the certificate expired at ${leaf.validToDate.toISOString()}`);
  const names = (leaf.subjectAltName ?? '')
    .split(', ')
    .filter((s) => s.startsWith('DNS:') || s.startsWith('IP Address:'))
    .map((s) => s.slice(s.indexOf(':') + 1));
  return { certChain, key, names, notAfter };
}

/** The control plane's serving certificate; see the module comment. */
export class ServingTls {
  readonly #o: ServingTlsOptions;
  readonly #d: Deps;
  #current: ServedCertificate;
  #server: HttpsServer | undefined;
  #timer: Timer | undefined;
  #offCa: (() => void) | undefined;
  #closed = false;
  /** The files' content last refused (not warned about again). */
  #refused: string | undefined;
  #issuing: Promise<void> = Promise.resolve();

  private constructor(o: ServingTlsOptions, d: Deps, first: ServedCertificate) {
    this.#o = o;
    this.#d = d;
    this.#current = first;
  }

  /** Loads the files, or issues the first `auto` certificate; throws naming what is wrong. */
  static async open(o: ServingTlsOptions, d: Deps): Promise<ServingTls> {
    if ('auto' in o) {
      if (o.ttlMs !== undefined) checkServingCertTtl(o.ttlMs, 'tls.ttlMs', `${o.ttlMs} ms`);
      const names = [...new Set([...(o.sans ?? []), ...defaultServingNames(d.host)])];
      const t = new ServingTls(o, d, await issue(d.ca, names, o.ttlMs ?? DEFAULT_SERVING_CERT_TTL_MS));
      d.logger.info?.(`TLS: serving a certificate from the control plane's CA for ${names.join(', ')} (until ${new Date(t.#current.notAfter).toISOString()}); clients verify it with ${d.rootCertPath ?? `${ROOT_CERT_FILE} of the data dir`}`);
      t.#offCa = d.ca.onChange(() => t.#renew('the CA roots changed'));
      t.#arm();
      return t;
    }
    const t = new ServingTls(o, d, loadServingFiles(o.certFile, o.keyFile, d.now()));
    t.#arm();
    return t;
  }

  /** The certificate served now. */
  get current(): ServedCertificate {
    return this.#current;
  }

  /** Options for `https.createServer`. */
  get secureOptions(): { cert: string; key: string } {
    return { cert: this.#current.certChain, key: this.#current.key };
  }

  /** The server to give new certificates to. */
  attach(server: HttpsServer): void {
    this.#server = server;
  }

  #install(next: ServedCertificate): void {
    this.#current = next;
    this.#server?.setSecureContext({ cert: next.certChain, key: next.key });
  }

  #arm(delayMs?: number): void {
    this.#timer?.clear();
    if (this.#closed) return;
    const o = this.#o;
    if ('auto' in o) {
      // At half the certificate's life (Istio's defaultCertGracePeriodRatio), or the retry delay.
      const c = this.#current;
      const issuedAt = c.notAfter - Math.min(o.ttlMs ?? DEFAULT_SERVING_CERT_TTL_MS, c.notAfter - this.#d.now());
      const wait = delayMs ?? Math.max(0, issuedAt + (c.notAfter - issuedAt) / 2 - this.#d.now());
      this.#timer = this.#d.clock.setTimer(() => this.#renew('half of its lifetime passed'), Math.min(wait, 2 ** 31 - 1));
    } else {
      this.#timer = this.#d.clock.setTimer(() => this.#reload(), o.reloadMs ?? DEFAULT_TLS_RELOAD_MS);
    }
  }

  #renew(why: string): void {
    const o = this.#o;
    if (!('auto' in o) || this.#closed) return;
    this.#issuing = this.#issuing.then(async () => {
      if (this.#closed) return;
      try {
        this.#install(await issue(this.#d.ca, this.#current.names, o.ttlMs ?? DEFAULT_SERVING_CERT_TTL_MS));
        this.#d.logger.info?.(`TLS: renewed the serving certificate (${why}); valid until ${new Date(this.#current.notAfter).toISOString()}`);
        this.#arm();
      } catch (err) {
        this.#d.logger.warn(`TLS: renewing the serving certificate failed (${why}): ${(err as Error).message}; the current one (until ${new Date(this.#current.notAfter).toISOString()}) is served, retrying in ${RETRY_MS / 1000} s`);
        this.#arm(RETRY_MS);
      }
    });
  }

  #reload(): void {
    const o = this.#o;
    if ('auto' in o || this.#closed) return;
    let seen = '';
    try {
      seen = readFileSync(o.certFile, 'utf8') + readFileSync(o.keyFile, 'utf8');
    } catch {
      // Unreadable for a moment (a replacement in progress), or gone: checked below, once.
    }
    if (seen !== this.#current.certChain + this.#current.key && seen !== this.#refused) {
      try {
        const next = loadServingFiles(o.certFile, o.keyFile, this.#d.now());
        this.#install(next);
        this.#refused = undefined;
        this.#d.logger.info?.(`TLS: serving the replaced certificate of ${o.certFile} (valid until ${new Date(next.notAfter).toISOString()})`);
      } catch (err) {
        // A bad replacement (or half of one): the current certificate is kept; said once per content.
        this.#refused = seen;
        this.#d.logger.warn(`TLS: not serving the changed files (${(err as Error).message}); the certificate loaded before (until ${new Date(this.#current.notAfter).toISOString()}) is served`);
      }
    }
    this.#arm();
  }

  /** Stops renewing and reloading. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#timer?.clear();
    this.#offCa?.();
    await this.#issuing;
  }
}

async function issue(ca: ControlPlaneCa, names: readonly string[], ttlMs: number): Promise<ServedCertificate> {
  try {
    const c = await ca.issueServing(names, ttlMs);
    return { certChain: c.certChainPem, key: c.keyPem, names, notAfter: c.notAfter };
  } catch (err) {
    throw new InvalidArgumentError(`TLS: cannot issue the serving certificate: ${(err as Error).message}`, { cause: err });
  }
}

/** Writes `<dataDir>/root-cert.pem`: the roots of the CA's trust bundle (mode 0644: public). */
export async function writeRootCert(dataDir: string, ca: ControlPlaneCa): Promise<void> {
  await writeFileAtomic(join(dataDir, ROOT_CERT_FILE), ca.bundle.roots.join(''), { mode: 0o644 });
}
