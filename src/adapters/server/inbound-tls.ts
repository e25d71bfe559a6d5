/**
 * The mesh-wide state the servers' mTLS reads: the PeerAuthentication that applies to this
 * workload (recomputed from each config), the workload's certificate, key and trust bundle (from
 * the mesh's {@link CredentialHolder}, checked when they change), the trust domains a peer may
 * belong to, and how a connection is refused (closed, logged at debug with the reason, published
 * on `meshlet:inbound:refused`).
 *
 * A peer certificate is accepted as Envoy's SPIFFE validator does it under Istio: it must chain
 * to the trust bundle, be valid now, and carry exactly one SPIFFE URI SAN in Istio's form whose
 * trust domain is the mesh's `trustDomain` or one of its `trustDomainAliases`.
 *
 * @module
 */
import { constants } from 'node:crypto';
import type { Socket } from 'node:net';
import { createSecureContext, type PeerCertificate, type SecureContextOptions, type TLSSocket } from 'node:tls';
import type { AnyResource } from '../../config/resource.ts';
import type { PeerIdentity } from '../../core/context.ts';
import { formatHostPort } from '../../core/host-port.ts';
import { channels, type InboundRefusedMessage, type WorkloadIdentity } from '../../core/observe.ts';
import type { CredentialHolder, WorkloadCredentials } from '../../security/identity/credentials.ts';
import { validityProblem } from '../../security/identity/peer-validity.ts';
import { identityOfCertificate, SPIFFE_PREFIX, uriSans } from '../../security/identity/spiffe.ts';
import { composePeerAuthentication, type EffectivePeerAuthentication, type MtlsMode, mtlsModeForPort } from '../../security/peer-authentication.ts';
import { closeConnection } from './close-connection.ts';
import { plainAddress } from './peer.ts';

/**
 * The ALPN protocols a mesh server accepts, in its order of preference: HTTP/1.1 as curl and
 * Node clients offer it, Istio's in-mesh names (`istio-http/1.1`, … as an Istio sidecar or
 * meshlet's client offers them), and `h2` last (a client that offers HTTP/1.1 too keeps speaking
 * it, as before). Whatever ALPN settled on, a connection that opens with the HTTP/2 preface is
 * served as HTTP/2 (an Istio sidecar or meshlet client with an HTTP/2 cluster speaks HTTP/2 over
 * `istio`), as Envoy's codec AUTO does. A client that offers none of these is refused with TLS's
 * `no_application_protocol` alert (Node's servers cannot go on without ALPN as Envoy does); a
 * client that offers no ALPN at all is accepted.
 */
export const SERVER_ALPN = Object.freeze(['http/1.1', 'istio-http/1.1', 'istio-http/1.0', 'http/1.0', 'istio', 'istio-h2', 'h2']);

/**
 * The TLS 1.2 cipher suites a mesh server accepts: Istio's `SupportedCiphers` for the inbound mTLS
 * of sidecars (`pilot/pkg/security/authn/utils`): ECDHE and RSA key exchange with AES-GCM only —
 * no CBC, no SHA-1 MACs. TLS 1.3 suites are Node's (all AEAD). TLS 1.0 and 1.1 are refused.
 */
export const ISTIO_INBOUND_CIPHERS = ['ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'AES256-GCM-SHA384', 'AES128-GCM-SHA256'].join(':');

/** How long a new connection may take to send its first bytes and to finish its TLS handshake (Envoy's listener filter timeout). */
export const HANDSHAKE_TIMEOUT_MS = 15_000;

/** Options of {@link InboundTls}. */
export interface InboundTlsOptions {
  readonly credentials: CredentialHolder;
  readonly workload: WorkloadIdentity;
  readonly rootNamespace: string;
  readonly trustDomain: string;
  readonly trustDomainAliases?: readonly string[];
  readonly warn: (message: string) => void;
  /** Refused connections are logged here, with the reason. */
  readonly debug?: (message: string) => void;
}

/** The result of checking a peer's certificate. */
export type PeerVerdict = { readonly ok: true; readonly peer: PeerIdentity } | { readonly ok: false; readonly reason: string };

/** Node's (OpenSSL's) verification error codes, in words. */
function verifyErrorText(code: string | undefined): string {
  switch (code) {
    case 'CERT_HAS_EXPIRED':
      return 'certificate expired (CERT_HAS_EXPIRED)';
    case 'CERT_NOT_YET_VALID':
      return 'certificate not yet valid (CERT_NOT_YET_VALID)';
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'CERT_UNTRUSTED':
    // A root of the same name in the bundle (every Istio and dev CA root is O=<trust domain>) did not sign it.
    case 'CERT_SIGNATURE_FAILURE':
      return `unknown CA: the certificate does not chain to the trust bundle (${code})`;
    default:
      return `certificate not verified (${code ?? 'unknown error'})`;
  }
}

/** The mTLS policy and credentials of one mesh's servers. */
export class InboundTls {
  readonly #o: InboundTlsOptions;
  #pa: EffectivePeerAuthentication;
  readonly #trustDomains: ReadonlySet<string>;
  /** The secure context options of the credentials in use, and their generation (0: none usable). */
  #context: { readonly options: SecureContextOptions; readonly generation: number; readonly spiffeId: string } | undefined;
  readonly #unsubscribe: () => void;
  readonly #said = new Set<string>();

  constructor(o: InboundTlsOptions, resources: readonly AnyResource[]) {
    this.#o = o;
    this.#pa = this.#compose(resources);
    this.#trustDomains = new Set([o.trustDomain, ...(o.trustDomainAliases ?? [])]);
    const current = o.credentials.current;
    if (current !== undefined) this.#take(current);
    this.#unsubscribe = o.credentials.subscribe((c) => this.#take(c));
  }

  #compose(resources: readonly AnyResource[]): EffectivePeerAuthentication {
    const w = this.#o.workload;
    return composePeerAuthentication(resources, { namespace: w.namespace, labels: w.labels }, this.#o.rootNamespace);
  }

  /** Recomputes the PeerAuthentication from a new config; new connections get the new mode. */
  install(resources: readonly AnyResource[]): void {
    this.#pa = this.#compose(resources);
    for (const l of this.#installed) l();
  }

  readonly #installed = new Set<() => void>();

  /** Calls `listener` after a new config's PeerAuthentication is in force; returns the unsubscribe function. */
  onInstall(listener: () => void): () => void {
    this.#installed.add(listener);
    return () => this.#installed.delete(listener);
  }

  /** The PeerAuthentication in force. */
  get peerAuthentication(): EffectivePeerAuthentication {
    return this.#pa;
  }

  /** The mode of a local port. */
  modeFor(port: number): MtlsMode {
    return mtlsModeForPort(this.#pa, port);
  }

  /** The secure context options of the credentials in use, or undefined when there are none (or they are unusable). */
  get context(): { readonly options: SecureContextOptions; readonly generation: number; readonly spiffeId: string } | undefined {
    return this.#context;
  }

  #take(c: WorkloadCredentials): void {
    const options: SecureContextOptions = { key: c.privateKey, cert: c.certChain, ca: c.trustBundle, ciphers: ISTIO_INBOUND_CIPHERS, minVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_RENEGOTIATION };
    try {
      // Checked once here: a key that does not match its certificate is refused before any server uses it.
      createSecureContext(options);
    } catch (err) {
      this.#o.warn(`meshlet: the workload certificate ${c.spiffeId} (generation ${c.generation}) cannot be used by the servers (${err instanceof Error ? err.message : String(err)}); ${this.#context === undefined ? 'no mTLS connection is accepted until usable credentials arrive' : 'the previous certificate keeps serving'}`);
      return;
    }
    this.#context = { options, generation: c.generation, spiffeId: c.spiffeId };
    for (const l of this.#listeners) l();
  }

  readonly #listeners = new Set<() => void>();

  /**
   * The renewal to wait for (up to the handshake timeout) before a TLS handshake presents the
   * workload certificate: undefined unless it expired and a source renews it (a process frozen past
   * its renewal thaws with connections waiting before its overdue renewal timer runs).
   */
  renewal(): Promise<unknown> | undefined {
    const c = this.#o.credentials.current;
    return c === undefined ? undefined : this.#o.credentials.renewalFor(c, HANDSHAKE_TIMEOUT_MS);
  }

  /** Calls `listener` when usable new credentials are taken in (a listener with its own TLS server swaps its context); returns the unsubscribe function. */
  onCredentials(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Checks the certificate a TLS client presented (the handshake is done). */
  verifyPeer(socket: TLSSocket): PeerVerdict {
    const cert = socket.getPeerCertificate();
    if (cert === null || typeof cert !== 'object' || Object.keys(cert).length === 0) return { ok: false, reason: 'no client certificate' };
    if (socket.authorized !== true) return { ok: false, reason: verifyErrorText(socket.authorizationError as unknown as string | undefined) };
    return this.identityOf(cert, plainAddress(socket.remoteAddress));
  }

  /**
   * The mesh identity a client certificate proves, once its chain was verified against the trust
   * bundle (by the TLS handshake): one SPIFFE ID in Istio's form, of a trust domain of this mesh,
   * not a CA certificate.
   */
  identityOf(cert: PeerCertificate, address: string): PeerVerdict {
    // An X.509-SVID is never a CA certificate: its holder could sign any identity.
    if (cert.ca === true) return { ok: false, reason: 'a CA certificate (CA:TRUE) is not a workload certificate' };
    // A resumed TLS session is not verified again: its certificate may have expired since.
    const outOfDate = validityProblem(cert, Date.now());
    if (outOfDate !== undefined) return { ok: false, reason: outOfDate };
    const peer = identityOfCertificate(cert, address);
    if (peer === undefined) {
      const ids = uriSans(cert.subjectaltname).filter((u) => u.startsWith(SPIFFE_PREFIX));
      if (ids.length === 0) return { ok: false, reason: 'no SPIFFE ID: the certificate has no spiffe:// URI SAN' };
      if (ids.length > 1) return { ok: false, reason: `more than one SPIFFE ID in the certificate (${ids.join(', ')})` };
      return { ok: false, reason: `the SPIFFE ID ${ids[0]} is not in Istio's form spiffe://<trust domain>/ns/<namespace>/sa/<service account>` };
    }
    if (!this.#trustDomains.has(peer.trustDomain)) {
      return { ok: false, reason: `wrong trust domain: ${peer.principal} is not in ${[...this.#trustDomains].join(' or ')}` };
    }
    return { ok: true, peer };
  }

  /** The mesh whose servers these are (named in what they publish). */
  get workload(): WorkloadIdentity {
    return this.#o.workload;
  }

  /** Closes `socket` at once, logs why (debug) and publishes it. */
  refuse(socket: Socket, mode: MtlsMode, transport: InboundRefusedMessage['transport'], reason: string): void {
    const remote = plainAddress(socket.remoteAddress);
    const port = socket.localPort ?? 0;
    closeConnection(socket);
    this.#o.debug?.(`meshlet: refused an inbound ${transport === 'unknown' ? '' : `${transport} `}connection from ${formatHostPort(remote, socket.remotePort ?? 0)} on port ${port} (PeerAuthentication ${mode}): ${reason}`);
    const ch = channels.inboundRefused;
    if (ch.hasSubscribers) ch.publish({ workload: this.#o.workload, mode, localPort: port, remoteAddress: remote, transport, reason } satisfies InboundRefusedMessage);
  }

  /** Says `message` once (per mesh). */
  warnOnce(message: string): void {
    if (this.#said.has(message)) return;
    this.#said.add(message);
    this.#o.warn(message);
  }

  /** Stops following the credentials. */
  close(): void {
    this.#unsubscribe();
  }
}
