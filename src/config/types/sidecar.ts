/**
 * networking.istio.io `Sidecar`: which services a workload's proxy can reach (egress scoping),
 * what it does with hosts outside the registry (`outboundTrafficPolicy`), and its inbound ports.
 * The shape is Istio's own (`networking/v1alpha3/sidecar.proto`).
 *
 * @module
 */
import type { WorkloadSelector } from './common.ts';
import type { ConnectionPoolSettings } from './destination-rule.ts';
import type { Destination } from './networking.ts';

/** How traffic reaches the listener (`captureMode`). */
export type CaptureMode = 'DEFAULT' | 'IPTABLES' | 'NONE';

/** A port of a Sidecar listener (`SidecarPort`). */
export interface SidecarPort {
  /** The port number. */
  number?: number;
  /** The protocol (HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP, TLS, …). */
  protocol?: string;
  /** A label for the port. */
  name?: string;
  /** Deprecated in Istio; unused. */
  targetPort?: number;
}

/** Server-side TLS settings of an ingress listener (Gateway's `ServerTLSSettings`). */
export interface ServerTLSSettings {
  httpsRedirect?: boolean;
  mode?: 'PASSTHROUGH' | 'SIMPLE' | 'MUTUAL' | 'AUTO_PASSTHROUGH' | 'ISTIO_MUTUAL' | 'OPTIONAL_MUTUAL';
  serverCertificate?: string;
  privateKey?: string;
  caCertificates?: string;
  caCrl?: string;
  credentialName?: string;
  credentialNames?: string[];
  caCertCredentialName?: string;
  tlsCertificates?: { serverCertificate?: string; privateKey?: string; caCertificates?: string }[];
  subjectAltNames?: string[];
  verifyCertificateSpki?: string[];
  verifyCertificateHash?: string[];
  minProtocolVersion?: 'TLS_AUTO' | 'TLSV1_0' | 'TLSV1_1' | 'TLSV1_2' | 'TLSV1_3';
  maxProtocolVersion?: 'TLS_AUTO' | 'TLSV1_0' | 'TLSV1_1' | 'TLSV1_2' | 'TLSV1_3';
  cipherSuites?: string[];
  ecdhCurves?: string[];
  insecureSkipVerify?: boolean;
}

/** An inbound listener (`IstioIngressListener`). */
export interface IstioIngressListener {
  port?: SidecarPort;
  bind?: string;
  captureMode?: CaptureMode;
  defaultEndpoint?: string;
  tls?: ServerTLSSettings;
  connectionPool?: ConnectionPoolSettings;
}

/** An outbound listener (`IstioEgressListener`): the hosts reachable through it. */
export interface IstioEgressListener {
  /** Only this port; unset: every port. */
  port?: SidecarPort;
  bind?: string;
  captureMode?: CaptureMode;
  /** `namespace/dnsName` entries: `*` any namespace, `.` the Sidecar's namespace, `~` none; dnsName an FQDN, `*.suffix` or `*`. */
  hosts: string[];
}

/** What happens to calls to hosts outside the registry (`OutboundTrafficPolicy`). */
export interface SidecarOutboundTrafficPolicy {
  /** @defaultValue 'REGISTRY_ONLY' in the proto; an unset policy keeps MeshConfig's */
  mode?: 'REGISTRY_ONLY' | 'ALLOW_ANY';
  /** With ALLOW_ANY: where calls to unknown hosts go instead of straight out. */
  egressProxy?: Destination;
}

/** The spec of a networking.istio.io `Sidecar`. */
export interface SidecarSpec {
  /** The workloads it applies to; unset: every workload of its namespace without a selected Sidecar (in the root namespace: the mesh-wide default). */
  workloadSelector?: WorkloadSelector;
  ingress?: IstioIngressListener[];
  egress?: IstioEgressListener[];
  inboundConnectionPool?: ConnectionPoolSettings;
  outboundTrafficPolicy?: SidecarOutboundTrafficPolicy;
}
