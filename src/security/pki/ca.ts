/**
 * A certificate authority that issues workload certificates as Istio's CA issues them
 * (`security/pkg/pki/util/generate_cert.go`): empty subject, the SPIFFE ID as the only SAN
 * (critical, because the subject is empty), digitalSignature + keyEncipherment, serverAuth +
 * clientAuth, not a CA, a random 128-bit serial, notBefore two minutes back for clock skew,
 * notAfter no later than the CA's own.
 *
 * @module
 */
import { createPublicKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { asn1js, authorityKeyIdentifier, basicConstraints, embed, extension, extKeyUsage, keyIdentifier, keyUsageBits, name, serverSan, uriSan } from './asn1.ts';
import { issuerParts, parseCertificate, signCertificate } from './certificate.ts';
import { verifyCsr } from './csr.ts';
import { generateKeyPair, type KeyAlgorithm, privateKeyFrom } from './keys.ts';
import { OID } from './oids.ts';
import { parsePemBundle } from './pem.ts';

/**
 * Istio's `ClockSkewGracePeriod`: a leaf's notBefore is this far before the moment it is issued.
 * @category Identity
 */
export const CLOCK_SKEW_GRACE_MS = 2 * 60_000;

/**
 * A self-signed root's default lifetime: 10 years, Istio's `DefaultSelfSignedCACertTTL`.
 * @category Identity
 */
export const DEFAULT_ROOT_TTL_MS = 3650 * 24 * 3_600_000;

/**
 * Wall-clock time for certificate validity, epoch milliseconds.
 * @category Identity
 */
export interface WallClock {
  now(): number;
}

const systemWallClock: WallClock = Object.freeze({ now: () => Date.now() });

/**
 * A certificate the CA issued: the leaf then the intermediates up to (not including) the root,
 * and the leaf's validity (epoch ms, whole seconds as written in the certificate).
 * @category Identity
 */
export interface IssuedCertificate {
  readonly certChainPem: string;
  readonly notBefore: number;
  readonly notAfter: number;
}

/** Options of {@link CertificateAuthority.createRoot}. */
export interface CreateRootOptions {
  /** The trust domain; the root's subject is `O=<trustDomain>`, as Istio's self-signed root. */
  readonly trustDomain: string;
  /**
   * The root's lifetime.
   * @defaultValue 10 years
   */
  readonly ttlMs?: number;
  /**
   * Wall-clock time (epoch ms) for the root's validity and for issuing.
   * @defaultValue `Date.now`
   */
  readonly clock?: WallClock;
  /**
   * The root's key.
   * @defaultValue `'ECDSA-P256'`
   */
  readonly keyAlgorithm?: KeyAlgorithm;
}

/** Options of {@link CertificateAuthority.load}. */
export interface LoadCaOptions {
  /** PEM: the CA's certificate first, then its issuers up to the root (the root may be left out when `rootsPem` has it). */
  readonly certChainPem: string;
  /** PEM: the CA certificate's private key. */
  readonly keyPem: string;
  /** PEM: the trusted roots; the chain must end at one of them. Optional when the chain ends in a self-signed root. */
  readonly rootsPem?: string;
  /**
   * Wall-clock time (epoch ms) for issuing.
   * @defaultValue `Date.now`
   */
  readonly clock?: WallClock;
}

/** Options of {@link CertificateAuthority.sign}. */
export interface SignOptions {
  /** The identity the certificate proves: its only SAN (a URI), whatever the CSR asked for. */
  readonly spiffeId: string;
  /** Lifetime; notAfter is clamped to the CA certificate's own notAfter. */
  readonly ttlMs: number;
  /** The moment of issue, epoch ms (defaults to the CA's clock). */
  readonly now?: number;
}

/** Options of {@link CertificateAuthority.issueServing}. */
export interface ServingCertificateOptions {
  /** DNS names and IP addresses (IPv4 or IPv6) the certificate names (its SANs); at least one. */
  readonly names: readonly string[];
  /** Lifetime; notAfter is clamped to the CA certificate's own notAfter. */
  readonly ttlMs: number;
  /** The moment of issue, epoch ms (defaults to the CA's clock). */
  readonly now?: number;
}

/** A serving certificate and its freshly generated key. */
export interface IssuedServingCertificate extends IssuedCertificate {
  readonly keyPem: string;
}

const DNS_NAME = /^(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*\.?$/i;

/** An IP address as the 4 or 16 bytes of an iPAddress SAN. */
export function ipAddressBytes(ip: string): Uint8Array {
  if (isIPv4(ip)) return Uint8Array.from(ip.split('.').map(Number));
  if (!isIPv6(ip)) throw new Error(`"${ip}" is not an IP address`);
  let text = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4 !== null) {
    const b = ipAddressBytes(v4[1] as string);
    text = `${text.slice(0, -(v4[1] as string).length)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head = '', tail] = text.split('::') as [string, string | undefined];
  const parts = (s: string) => (s === '' ? [] : s.split(':'));
  const h = parts(head);
  const t = tail === undefined ? [] : parts(tail);
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const n = Number.parseInt(g, 16);
    out[i * 2] = n >> 8;
    out[i * 2 + 1] = n & 0xff;
  });
  return out;
}

function isSelfSigned(c: X509Certificate): boolean {
  return c.checkIssued(c) && c.verify(c.publicKey);
}

function validSpiffeId(id: string): void {
  let url: URL;
  try {
    url = new URL(id);
  } catch {
    throw new Error(`"${id}" is not a SPIFFE ID (spiffe://<trust domain>/<path>)`);
  }
  if (url.protocol !== 'spiffe:' || url.hostname === '' || url.search !== '' || url.hash !== '' || url.port !== '' || url.username !== '') throw new Error(`"${id}" is not a SPIFFE ID (spiffe://<trust domain>/<path>)`);
}

/**
 * A CA: a root, or an intermediate with its chain, and its private key. Issues workload
 * certificates from CSRs.
 * @category Identity
 */
export class CertificateAuthority {
  readonly #cert: X509Certificate;
  readonly #certPem: string;
  readonly #key: KeyObject;
  readonly #keyPem: string;
  readonly #chainPem: string;
  readonly #rootPem: string;
  readonly #subjectDer: Buffer;
  readonly #subjectKeyId: Buffer | undefined;
  readonly #clock: WallClock;

  private constructor(p: { cert: X509Certificate; certPem: string; key: KeyObject; keyPem: string; chainPem: string; rootPem: string; clock: WallClock }) {
    this.#cert = p.cert;
    this.#certPem = p.certPem;
    this.#key = p.key;
    this.#keyPem = p.keyPem;
    this.#chainPem = p.chainPem;
    this.#rootPem = p.rootPem;
    this.#clock = p.clock;
    const parts = issuerParts(p.certPem, 'the CA certificate');
    this.#subjectDer = parts.subjectDer;
    this.#subjectKeyId = parts.subjectKeyId;
  }

  /**
   * Generates a self-signed root as Istio's self-signed CA makes one: subject
   * `O=<trustDomain>`, CA:TRUE, keyCertSign and cRLSign, a subjectKeyIdentifier.
   */
  static async createRoot(opts: CreateRootOptions): Promise<CertificateAuthority> {
    const trustDomain = opts.trustDomain;
    if (typeof trustDomain !== 'string' || trustDomain === '' || /[/\s:]/.test(trustDomain)) throw new Error(`trust domain "${String(trustDomain)}" is not a trust domain (a name like cluster.local)`);
    const ttlMs = opts.ttlMs ?? DEFAULT_ROOT_TTL_MS;
    if (!Number.isFinite(ttlMs) || ttlMs < 1000) throw new Error(`the root's lifetime must be at least a second (got ${ttlMs} ms)`);
    const clock = opts.clock ?? systemWallClock;
    const keys = generateKeyPair(opts.keyAlgorithm ?? 'ECDSA-P256');
    const key = privateKeyFrom(keys.privateKeyPem, 'the root key');
    const publicKey = createPublicKey(keys.publicKeyPem);
    const now = clock.now();
    const subject = name([{ oid: OID.organizationName, value: trustDomain }]);
    const certPem = signCertificate(
      {
        issuer: subject,
        subject: name([{ oid: OID.organizationName, value: trustDomain }]),
        notBefore: now,
        notAfter: now + ttlMs,
        publicKey,
        extensions: [extension(OID.keyUsage, true, keyUsageBits([5, 6])), extension(OID.basicConstraints, true, basicConstraints(true)), extension(OID.subjectKeyIdentifier, false, new asn1js.OctetString({ valueHex: keyIdentifier(publicKey) }))],
      },
      key,
    );
    return new CertificateAuthority({ cert: parseCertificate(certPem, 'the root'), certPem, key, keyPem: keys.privateKeyPem, chainPem: '', rootPem: certPem, clock });
  }

  /**
   * Loads a CA from PEM: a root (self-signed), or an intermediate whose chain leads to a root
   * in `certChainPem` or `rootsPem`. Throws naming what is wrong: no certificate, a key that is
   * not the certificate's, a certificate that is not a CA, a chain that does not verify.
   */
  static load(opts: LoadCaOptions): CertificateAuthority {
    const certs = parsePemBundle(opts.certChainPem);
    if (certs.length === 0) throw new Error('the CA certificate chain holds no certificate (no "-----BEGIN CERTIFICATE-----" block)');
    const parsed = certs.map((pem, i) => parseCertificate(pem, i === 0 ? 'the CA certificate' : `certificate ${i + 1} of the CA chain`));
    const cert = parsed[0] as X509Certificate;
    const key = privateKeyFrom(opts.keyPem, 'the CA key');
    if (!cert.checkPrivateKey(key)) throw new Error('the CA key does not belong to the CA certificate (their public keys differ)');
    if (!cert.ca) throw new Error(`the CA certificate (${cert.subject || 'empty subject'}) is not a CA (basicConstraints CA:TRUE is missing)`);
    for (let i = 0; i + 1 < parsed.length; i++) {
      const child = parsed[i] as X509Certificate;
      const parent = parsed[i + 1] as X509Certificate;
      if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) throw new Error(`certificate ${i + 1} of the CA chain is not signed by certificate ${i + 2} (the chain must go from the CA up to the root, in order)`);
    }
    const roots = opts.rootsPem === undefined ? [] : parsePemBundle(opts.rootsPem);
    if (opts.rootsPem !== undefined && roots.length === 0) throw new Error('the roots hold no certificate (no "-----BEGIN CERTIFICATE-----" block)');
    const top = parsed[parsed.length - 1] as X509Certificate;
    let rootPem: string;
    let chain: string[];
    if (isSelfSigned(top)) {
      rootPem = certs[certs.length - 1] as string;
      chain = certs.slice(0, -1);
      if (roots.length > 0 && !roots.some((r) => parseCertificate(r, 'a root').fingerprint256 === top.fingerprint256)) throw new Error(`the CA chain ends at root "${top.subject}", which is not among the given roots`);
    } else {
      const root = roots.find((r) => {
        const rc = parseCertificate(r, 'a root');
        return top.checkIssued(rc) && top.verify(rc.publicKey);
      });
      if (root === undefined) throw new Error(roots.length === 0 ? `the CA chain ends at "${top.subject}", which is not self-signed, and no roots were given to complete it` : `the CA chain ends at "${top.subject}", which none of the given roots signed`);
      rootPem = root;
      chain = certs;
    }
    return new CertificateAuthority({ cert, certPem: certs[0] as string, key, keyPem: opts.keyPem, chainPem: chain.join(''), rootPem, clock: opts.clock ?? systemWallClock });
  }

  /** The CA's own certificate (PEM). */
  get certPem(): string {
    return this.#certPem;
  }

  /** The CA's private key (PEM). */
  get keyPem(): string {
    return this.#keyPem;
  }

  /** The CA certificate and the intermediates above it, up to but not including the root ('' for a root CA): what follows a leaf in its chain. */
  get chainPem(): string {
    return this.#chainPem;
  }

  /** The root this CA's chain ends at (PEM); the CA's own certificate for a root CA. */
  get rootPem(): string {
    return this.#rootPem;
  }

  /** The CA certificate's notAfter, epoch ms. */
  get notAfter(): number {
    return this.#cert.validToDate.getTime();
  }

  /**
   * Issues a workload certificate for the CSR's public key, once the CSR's signature checks.
   * The certificate names `spiffeId` and nothing else the CSR asks for.
   */
  async sign(csrPem: string, opts: SignOptions): Promise<IssuedCertificate> {
    validSpiffeId(opts.spiffeId);
    if (!Number.isFinite(opts.ttlMs) || opts.ttlMs < 1000) throw new Error(`a certificate's lifetime must be at least a second (got ${opts.ttlMs} ms)`);
    const now = opts.now ?? this.#clock.now();
    const caNotAfter = this.notAfter;
    if (!(now < caNotAfter)) throw new Error(`the CA certificate expired at ${new Date(caNotAfter).toISOString()}`);
    const { publicKey } = verifyCsr(csrPem);
    const notBefore = Math.floor((now - CLOCK_SKEW_GRACE_MS) / 1000) * 1000;
    const notAfter = Math.floor(Math.min(now + opts.ttlMs, caNotAfter) / 1000) * 1000;
    const extensions = [
      extension(OID.keyUsage, true, keyUsageBits([0, 2])),
      extension(OID.extKeyUsage, false, extKeyUsage([OID.serverAuth, OID.clientAuth])),
      extension(OID.basicConstraints, true, basicConstraints(false)),
      ...(this.#subjectKeyId === undefined ? [] : [extension(OID.authorityKeyIdentifier, false, authorityKeyIdentifier(this.#subjectKeyId))]),
      // Critical because the subject is empty (RFC 5280 §4.2.1.6), as Istio writes it.
      extension(OID.subjectAltName, true, uriSan([opts.spiffeId])),
    ];
    const leaf = signCertificate({ issuer: embed(this.#subjectDer, "the CA's subject"), subject: name([]), notBefore, notAfter, publicKey, extensions }, this.#key);
    return { certChainPem: leaf + this.#chainPem, notBefore, notAfter };
  }

  /**
   * Issues a TLS serving certificate (a server's, e.g. the control plane's own) with a new
   * ECDSA P-256 key: the DNS names and IP addresses as SANs, the first DNS name (else address)
   * as the subject's CN, serverAuth only, not a CA. Throws naming a name that is neither.
   */
  async issueServing(opts: ServingCertificateOptions): Promise<IssuedServingCertificate> {
    if (opts.names.length === 0) throw new Error('a serving certificate needs at least one DNS name or IP address');
    const dns: string[] = [];
    const ips: Uint8Array[] = [];
    for (const n of opts.names) {
      if (isIPv4(n) || isIPv6(n)) ips.push(ipAddressBytes(n));
      else if (DNS_NAME.test(n) && n.length <= 253) dns.push(n.toLowerCase().replace(/\.$/, ''));
      else throw new Error(`"${n}" is neither a DNS name nor an IP address`);
    }
    if (!Number.isFinite(opts.ttlMs) || opts.ttlMs < 1000) throw new Error(`a certificate's lifetime must be at least a second (got ${opts.ttlMs} ms)`);
    const now = opts.now ?? this.#clock.now();
    const caNotAfter = this.notAfter;
    if (!(now < caNotAfter)) throw new Error(`the CA certificate expired at ${new Date(caNotAfter).toISOString()}`);
    const keys = generateKeyPair('ECDSA-P256');
    const publicKey = createPublicKey(keys.publicKeyPem);
    const notBefore = Math.floor((now - CLOCK_SKEW_GRACE_MS) / 1000) * 1000;
    const notAfter = Math.floor(Math.min(now + opts.ttlMs, caNotAfter) / 1000) * 1000;
    const extensions = [
      extension(OID.keyUsage, true, keyUsageBits([0, 2])),
      extension(OID.extKeyUsage, false, extKeyUsage([OID.serverAuth])),
      extension(OID.basicConstraints, true, basicConstraints(false)),
      ...(this.#subjectKeyId === undefined ? [] : [extension(OID.authorityKeyIdentifier, false, authorityKeyIdentifier(this.#subjectKeyId))]),
      extension(OID.subjectAltName, false, serverSan(dns, ips)),
    ];
    const subject = name([{ oid: OID.commonName, value: dns[0] ?? (opts.names[0] as string) }]);
    const leaf = signCertificate({ issuer: embed(this.#subjectDer, "the CA's subject"), subject, notBefore, notAfter, publicKey, extensions }, this.#key);
    return { certChainPem: leaf + this.#chainPem, keyPem: keys.privateKeyPem, notBefore, notAfter };
  }
}
