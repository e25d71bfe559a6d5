/**
 * Validation of `SidecarSpec`: the shape of Istio's CRD.
 *
 * @module
 */
import type { IstioEgressListener, IstioIngressListener, ServerTLSSettings, SidecarOutboundTrafficPolicy, SidecarPort, SidecarSpec } from '../types/sidecar.ts';
import { workloadSelector } from './common.ts';
import { destination } from './http-route.ts';
import { bool, int, list, obj, oneOf, req, str, type Validator } from './schema.ts';
import { connectionPoolSettings } from './traffic-policy.ts';

const CAPTURE_MODES = ['DEFAULT', 'IPTABLES', 'NONE'] as const;
const TLS_VERSIONS = ['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3'] as const;

const sidecarPort: Validator<SidecarPort> = obj<SidecarPort>({ number: int({ min: 0, max: 4294967295 }), protocol: str, name: str, targetPort: int({ min: 0, max: 4294967295 }) });

const serverTls: Validator<ServerTLSSettings> = obj<ServerTLSSettings>({
  httpsRedirect: bool,
  mode: oneOf(['PASSTHROUGH', 'SIMPLE', 'MUTUAL', 'AUTO_PASSTHROUGH', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL']),
  serverCertificate: str,
  privateKey: str,
  caCertificates: str,
  caCrl: str,
  credentialName: str,
  credentialNames: list(str),
  caCertCredentialName: str,
  tlsCertificates: list(obj({ serverCertificate: str, privateKey: str, caCertificates: str })),
  subjectAltNames: list(str),
  verifyCertificateSpki: list(str),
  verifyCertificateHash: list(str),
  minProtocolVersion: oneOf(TLS_VERSIONS),
  maxProtocolVersion: oneOf(TLS_VERSIONS),
  cipherSuites: list(str),
  ecdhCurves: list(str),
  insecureSkipVerify: bool,
});

const ingressListener: Validator<IstioIngressListener> = obj<IstioIngressListener>({
  port: sidecarPort,
  bind: str,
  captureMode: oneOf(CAPTURE_MODES),
  defaultEndpoint: str,
  tls: serverTls,
  connectionPool: connectionPoolSettings,
});

const egressListener: Validator<IstioEgressListener> = obj<IstioEgressListener>({
  port: sidecarPort,
  bind: str,
  captureMode: oneOf(CAPTURE_MODES),
  hosts: req(list(str)),
});

const outboundTrafficPolicy: Validator<SidecarOutboundTrafficPolicy> = obj<SidecarOutboundTrafficPolicy>({
  mode: oneOf(['REGISTRY_ONLY', 'ALLOW_ANY']),
  egressProxy: destination,
});

/** Validates a SidecarSpec. */
export const sidecarSpec: Validator<SidecarSpec> = obj<SidecarSpec>({
  workloadSelector,
  ingress: list(ingressListener),
  egress: list(egressListener),
  inboundConnectionPool: connectionPoolSettings,
  outboundTrafficPolicy,
});
