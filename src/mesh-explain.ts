/**
 * {@link Mesh.explain} and {@link Mesh.explainInbound}: how a mesh would handle a request,
 * without sending anything — an outbound call through its routes, clusters and policies (with how
 * the transport would secure each endpoint), an inbound request through its server side's
 * normalization, JWT, authorization and rate-limit phases.
 *
 * @module
 */
import type { UndiciTransport } from './adapters/undici/transport.ts';
import type { AnyResource } from './config/resource.ts';
import type { WorkloadIdentity } from './core/observe.ts';
import { explainInbound, type InboundExplainRequest, type InboundExplanation } from './inbound/explain.ts';
import type { MeshOptions } from './mesh-options.ts';
import { explain, type Explanation, type ExplainRequest } from './outbound/explain.ts';
import type { Outbound } from './outbound/pipeline.ts';
import { describeDecision } from './outbound/tls-decision.ts';

/** How `outbound` would handle `request`, each endpoint's TLS as `transport` would set it up. */
export function explainOutbound(outbound: Outbound, transport: UndiciTransport, request: ExplainRequest): Explanation {
  return explain(outbound, request, (cs, ep, scheme) => {
    const d = transport.tlsDecision(cs, ep);
    // An https:// URL is the app's own TLS unless the DestinationRule originates TLS (SIMPLE/MUTUAL).
    if (scheme === 'https' && d.mode !== 'SIMPLE' && d.mode !== 'MUTUAL') return "the app's own TLS (https:// URL: verified against Node's default CA certificates for the service's host; the mesh adds no mTLS)";
    return describeDecision(d);
  });
}

/** How the server side of `workload`, configured by `o`, would judge `request` under `resources`. */
export function explainInboundRequest(resources: readonly AnyResource[], workload: WorkloadIdentity, o: MeshOptions, request: InboundExplainRequest): Promise<InboundExplanation> {
  return explainInbound(resources, request, {
    workload: o.ports === undefined ? workload : { service: workload.service, namespace: workload.namespace, labels: workload.labels, ports: o.ports },
    rootNamespace: o.rootNamespace,
    trustDomain: o.trustDomain,
    trustDomainAliases: o.trustDomainAliases,
    numTrustedProxies: o.numTrustedProxies,
    pathNormalization: o.pathNormalization,
    extensionProviders: (o.extensionProviders ?? []).map((p) => p.name),
    maxTokenChars: o.jwt?.maxTokenChars,
    probePaths: o.probePaths,
  });
}
