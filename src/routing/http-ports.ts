/**
 * Which ports get HTTP routes: a service port by its declared protocol, and under a Sidecar an
 * egress listener by the protocol of its port (istiod builds a plain TCP proxy for the others).
 *
 * @module
 */
import type { ScopeListener } from '../config/sidecar-scope.ts';
import type { ServicePort } from '../config/types/networking.ts';

/**
 * Port protocols that get HTTP routes: Istio's HTTP protocols, HTTPS and TLS (meshlet sees the
 * request before TLS and originates it; istiod proxies TLS on both alike, by SNI, to the service's
 * endpoints), and unset (auto-detected: Istio routes it as HTTP too). A TLS port is Istio's usual
 * egress port for an external HTTPS API (`protocol: TLS`, 443): an `https://` call to it reaches
 * the service as a sidecar's does, under `REGISTRY_ONLY` too.
 */
const HTTP_PROTOCOLS = new Set(['', 'HTTP', 'HTTP2', 'HTTP_PROXY', 'GRPC', 'GRPC-WEB', 'HTTPS', 'TLS']);

/** Whether a service port gets HTTP routes. */
export const isHttpPort = (p: ServicePort): boolean => HTTP_PROTOCOLS.has((p.protocol ?? '').toUpperCase());

/**
 * Whether an egress listener routes HTTP on the ports it serves: istiod builds a listener with a
 * port with that port's declared protocol, so one declaring TCP, MONGO… is a plain TCP proxy
 * whatever the services' ports say (`buildSidecarOutboundListeners`); meshlet then routes nothing
 * there, as for a service's TCP port (TLS and HTTPS are routed, as above). The port-less listener
 * takes each service port's protocol.
 */
export const routesHttp = (l: ScopeListener): boolean => HTTP_PROTOCOLS.has(l.protocol);
