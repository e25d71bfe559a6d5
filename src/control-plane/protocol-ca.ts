/**
 * The control-plane wire protocol, part 2: workload certificates and the CA
 * (`POST /v1/certificates`, `GET /v1/ca`, `POST /v1/ca/rotate`). Re-exported by `protocol.ts`.
 *
 * @module
 */
/**
 * Body of `POST /v1/certificates`. A workload token's identity is the certificate's: the
 * CSR's subject and SANs are ignored, only its public key (and its signature, checked) is used.
 */
export interface CertificateRequest {
  /** A PEM PKCS#10 certificate signing request. */
  readonly csr: string;
  /** Admin tokens only: the namespace of the identity to issue for. */
  readonly namespace?: string;
  /** Admin tokens only: the service account of the identity to issue for. @defaultValue 'default' */
  readonly serviceAccount?: string;
  /** Admin tokens only: a shorter lifetime than the control plane's `--cert-ttl`, in ms (at least one minute). */
  readonly ttlMs?: number;
}

/** Answer of `POST /v1/certificates`. */
export interface CertificateResponse {
  /** `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`. */
  readonly spiffeId: string;
  /** PEM: the leaf, then the intermediates up to (not including) the root. */
  readonly certChain: string;
  /** PEM certificates of every root to trust (the trust bundle). */
  readonly trustBundle: readonly string[];
  /** {@link TrustBundleEvent.version} of `trustBundle`. */
  readonly trustBundleVersion: string;
  /** The leaf's validity, epoch ms. */
  readonly notBefore: number;
  readonly notAfter: number;
}

/** One certificate as {@link CaInfo} describes it. */
export interface CaCertificateInfo {
  readonly subject: string;
  readonly issuer: string;
  readonly serial: string;
  /** SHA-256 fingerprint, `AB:CD:…`. */
  readonly fingerprint: string;
  /** ISO 8601. */
  readonly notBefore: string;
  readonly notAfter: string;
  readonly pem: string;
}

/** Answer of `GET /v1/ca` and of a rotation. */
export interface CaInfo {
  readonly trustDomain: string;
  /** Lifetime of the certificates it issues (`--cert-ttl`), ms. */
  readonly certTtlMs: number;
  /** `generated` (made by the control plane) or `provided` (`--ca-cert`/`--ca-key`, or given to a rotation). */
  readonly origin: 'generated' | 'provided';
  /** The certificate that signs workload certificates (a root, or an intermediate). */
  readonly signer: CaCertificateInfo;
  /** Intermediates between the signer and its root (empty when the signer is a root). */
  readonly chain: readonly CaCertificateInfo[];
  /** Every root workloads trust; more than one while a rotation overlaps. */
  readonly roots: readonly CaCertificateInfo[];
  readonly trustBundleVersion: string;
  /** True between a rotation and its `--finalize`: roots other than the signer's are still trusted. */
  readonly rotating: boolean;
  /** When the rotation finalizes itself (ISO 8601), if it was given an overlap. */
  readonly finalizeAt?: string;
  /** Increases with every change of the CA (rotation, finalize). */
  readonly generation: number;
}

/** Body of `POST /v1/ca/rotate` (admin). */
export interface RotateRequest {
  /**
   * Ends an overlap: drops every root but the signer's from the trust bundle (workloads whose
   * certificate chains to a dropped root are refused by their peers from then on).
   */
  readonly finalize?: boolean;
  /** A CA to sign with from now on (PEM: the signing certificate, then intermediates); generated when absent. */
  readonly certChain?: string;
  /** Its private key (PEM), with `certChain`. */
  readonly key?: string;
  /** Its root (PEM), when `certChain` is an intermediate whose root is not the chain's last certificate. */
  readonly root?: string;
  /**
   * Finalize by itself after this long (ms; at least the certificate lifetime, so every workload has
   * renewed from the new root); without it, the rotation waits for `finalize`.
   */
  readonly overlapMs?: number;
}
