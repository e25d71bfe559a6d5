/**
 * The control-plane wire protocol, part 3: what workloads report (`POST /v1/report`) and what
 * `GET /status` answers (`meshlet status`). Re-exported by `protocol.ts`.
 *
 * @module
 */
/**
 * A workload's identity, as its mesh reports it (`MeshDiagnostics.identity`).
 */
export interface ReportedIdentity {
  readonly spiffeId: string;
  /** Epoch ms. */
  readonly notAfter: number;
  readonly source: 'files' | 'dev-ca' | 'control-plane';
}

/** Inbound requests by transport, as a mesh counts them (`MeshDiagnostics.inboundTls`). */
export interface ReportedInboundTls {
  readonly plaintext: number;
  readonly mtls: number;
  /** mTLS requests per peer SPIFFE ID (`spiffe://<td>/ns/<ns>/sa/<sa>`; the mesh keeps the 100 seen most recently). */
  readonly peers: Readonly<Record<string, number>>;
  /** When the last plaintext request arrived (epoch milliseconds); absent when none has. */
  readonly lastPlaintextAt?: number;
}

/** Body of `POST /v1/report`: what the status shows about a connected workload. */
export interface WorkloadReport {
  /** The watch stream (`hello.connection`) the report is about. */
  readonly connection: string;
  readonly identity?: ReportedIdentity;
  readonly inboundTls?: ReportedInboundTls;
}

/** One connected (or recently disconnected) workload in the status. */
export interface WorkloadStatus {
  readonly connection: string;
  readonly service: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly peer: string;
  readonly connectedAt: string;
  /** Absent while connected. */
  readonly disconnectedAt?: string;
  readonly sent: { readonly config?: string; readonly endpoints?: string };
  readonly acked: { readonly config?: { readonly version: string; readonly at: string }; readonly endpoints?: { readonly version: string; readonly at: string } };
  readonly nacked?: { readonly kind: 'config' | 'endpoints'; readonly version: string; readonly at: string; readonly reasons: readonly string[] };
  /** The workload's certificate as it last reported it (absent: no identity, or an older mesh). */
  readonly identity?: ReportedIdentity;
  /** Its inbound requests by transport as it last reported them. */
  readonly inboundTls?: ReportedInboundTls;
  /** When it last reported (ISO 8601). */
  readonly reportedAt?: string;
}

/** A config change the source refused. */
export interface Rejection {
  readonly at: string;
  /** What was refused: a file change, an `apply`, an etcd write. */
  readonly origin: string;
  readonly reasons: readonly string[];
}

/** `GET /status`. */
export interface StatusDocument {
  readonly server: string;
  readonly startedAt: string;
  readonly configVersion: string;
  readonly endpointsVersion: string;
  readonly source: {
    readonly kind: 'file' | 'etcd';
    readonly location: string;
    readonly healthy: boolean;
    readonly error?: string;
    /** Stored values that are not served (etcd: invalid JSON or resources, skipped as istiod skips an invalid object). */
    readonly skipped?: readonly SkippedValue[];
  };
  /** `N/M workloads at config version X` (like `istioctl proxy-status`). */
  readonly summary: string;
  readonly workloads: readonly WorkloadStatus[];
  /** Newest first, bounded. */
  readonly rejections: readonly Rejection[];
  /**
   * Analysis findings of the config being served (advisory: the config is applied; they refuse
   * changes only with `--analysis blocking`), as `istioctl analyze` would print them.
   */
  readonly findings: readonly StatusFinding[];
  readonly registered: number;
  /**
   * The MeshConfig pushed to every watching mesh (`--mesh-config`; absent from servers without one,
   * and from older servers): its version, file, and the settings it sets (dotted paths).
   */
  readonly meshConfig?: { readonly version: string; readonly source?: string; readonly settings: readonly string[] };
  /** The CA (absent from servers without one). */
  readonly ca?: {
    readonly trustDomain: string;
    readonly trustBundleVersion: string;
    readonly roots: number;
    readonly rotating: boolean;
    /** The signer's expiry, ISO 8601. */
    readonly signerNotAfter: string;
  };
}

/** A stored value the control plane does not serve, and why. */
export interface SkippedValue {
  /** Where it is stored, e.g. the etcd key `/meshlet/config/VirtualService/default/reviews`. */
  readonly key: string;
  /** `Kind namespace/name` when the key names one, for `meshlet delete` / `apply` to repair it. */
  readonly resource?: string;
  readonly reasons: readonly string[];
}

/** One analysis finding in the status. */
export interface StatusFinding {
  readonly level: 'error' | 'warning' | 'info';
  /** `IST0101`, … */
  readonly code: string;
  /** `Kind namespace/name`, when the finding is about one resource. */
  readonly resource?: string;
  /** The finding as `meshlet validate` prints it (file, resource, path, message, line). */
  readonly text: string;
}
