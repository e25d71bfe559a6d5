/**
 * Which TLS an outbound call to one endpoint of a cluster uses, decided as istiod decides it
 * for a sidecar (`buildUpstreamTLSSettings`, `BestEffortInferServiceMTLSMode` and the endpoint
 * builder's `mtlsChecker`):
 *
 * - A DestinationRule `tls` block (top level, port level, subset, subset port — already merged
 *   into the cluster's settings) always wins: `DISABLE` is plaintext, `SIMPLE` and `MUTUAL`
 *   originate TLS with the rule's files, `ISTIO_MUTUAL` is mTLS with the mesh's own credentials
 *   (SNI `outbound_.<port>_.<subset>_.<host>`, server identities = the service's accounts unless
 *   the rule names `subjectAltNames`). A `tls` block without a mode is `DISABLE` (the enum's zero).
 * - Without one, auto-mTLS (MeshConfig `enableAutoMtls`, default on): plaintext for a
 *   `MESH_EXTERNAL` service, for a passthrough cluster (no endpoints known), and when the
 *   mesh-wide / namespace PeerAuthentication of the service's namespace is `DISABLE`; otherwise
 *   per endpoint: mTLS when the endpoint carries `security.istio.io/tlsMode: istio` and its own
 *   workload's PeerAuthentication for the endpoint port is not `DISABLE`, else plaintext.
 * - A mesh without credentials cannot offer mTLS: auto-mTLS stays plaintext (a workload without
 *   a sidecar); an explicit `ISTIO_MUTUAL` fails closed.
 * - An east-west gateway endpoint (multi-network: `Endpoint.gateway`) is always Istio mTLS with
 *   the destination's SNI and identities; when the cluster's TLS is anything else, or the mesh has
 *   no certificate, its calls fail (never plaintext through a gateway).
 *
 * Pure: computed once per cluster and endpoint when the transport builds a pool, never per request.
 *
 * @module
 */
import type { Endpoint } from '../config/registry.ts';
import type { AnyResource } from '../config/resource.ts';
import type { Cluster } from '../routing/route-table.ts';
import type { DeclaredTls } from '../routing/cluster-settings.ts';
import { composePeerAuthentication, type EffectivePeerAuthentication, mtlsModeForPort } from '../security/peer-authentication.ts';
import { parseSpiffeUri, SPIFFE_PREFIX, spiffeUri } from '../security/identity/spiffe.ts';

/** Istio's endpoint label telling clients the workload accepts Istio mTLS. */
export const TLS_MODE_LABEL = 'security.istio.io/tlsMode';
/** The value of {@link TLS_MODE_LABEL} for a workload that accepts Istio mTLS. */
export const TLS_MODE_ISTIO = 'istio';

/** What the decision needs beyond the cluster: the mesh's config and identity. */
export interface ClientTlsContext {
  /** The resources of the config in use (PeerAuthentications are read from them). */
  readonly resources: readonly AnyResource[];
  /** MeshConfig `rootNamespace`. @defaultValue 'istio-system' */
  readonly rootNamespace: string;
  /** MeshConfig `trustDomain`. */
  readonly trustDomain: string;
  /** MeshConfig `trustDomainAliases`: server identities in these domains are accepted too. */
  readonly trustDomainAliases: readonly string[];
  /** MeshConfig `enableAutoMtls`. */
  readonly enableAutoMtls: boolean;
  /** This mesh has credentials (a certificate to present). */
  readonly hasIdentity: boolean;
  /** An identity is configured but its certificate has not been issued yet. @defaultValue false */
  readonly identityPending?: boolean;
}

/** How a call goes out: plaintext, or one of the TLS modes. */
export type ClientTlsMode = 'DISABLE' | 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL';

/** The TLS an endpoint's connections use, and why. */
export interface ClientTlsDecision {
  /** `DISABLE`: plaintext. */
  readonly mode: ClientTlsMode;
  /** Where the mode came from. */
  readonly source: 'destination-rule' | 'auto-mtls';
  /** Why, in words (`meshlet explain` prints it). */
  readonly why: string;
  /** The DestinationRule's block, when it decided. */
  readonly declared: DeclaredTls | undefined;
  /** ISTIO_MUTUAL: the SNI sent (the rule's `sni`, else `outbound_.<port>_.<subset>_.<host>`). */
  readonly sni: string | undefined;
  /** ISTIO_MUTUAL: the identities the server may prove (empty: any the trust bundle signed). */
  readonly identities: readonly string[];
  /** Set when calls must fail instead (never plaintext): why. */
  readonly failure: string | undefined;
}

/** Istio's `BuildDNSSrvSubsetKey` for outbound: the SNI of in-mesh mTLS. */
export function istioMtlsSni(port: number, subset: string | undefined, host: string): string {
  return `outbound_.${port}_.${subset ?? ''}_.${host}`;
}

/**
 * The identities a server of `cluster` may prove: the SPIFFE IDs of the service accounts of
 * every workload of its service (Istio's `ServiceAccounts(hostname, namespace)`), a
 * ServiceEntry's own `subjectAltNames`, each expanded with the trust-domain aliases
 * (`ExpandWithTrustDomains`); sorted, without duplicates.
 */
export function serviceIdentities(cluster: Pick<Cluster, 'service'>, trustDomain: string, aliases: readonly string[]): string[] {
  const svc = cluster.service;
  const out = new Set<string>();
  for (const w of svc.workloads) if (w.serviceAccount !== '') out.add(spiffeUri({ trustDomain, namespace: svc.namespace, serviceAccount: w.serviceAccount }));
  if (svc.resource.kind === 'ServiceEntry') for (const s of svc.resource.spec.subjectAltNames ?? []) out.add(s);
  if (aliases.length > 0) {
    for (const id of [...out]) {
      if (!id.startsWith(SPIFFE_PREFIX)) continue;
      const p = parseSpiffeUri(id);
      if (p === undefined) continue;
      for (const td of aliases) out.add(spiffeUri({ ...p, trustDomain: td }));
    }
  }
  return [...out].sort();
}

/** The DestinationRules merged into the cluster (each `ref` already reads `DestinationRule ns/name`). */
const describeDr = (c: Cluster): string => (c.destinationRule === undefined ? 'DestinationRule' : c.destinationRule.rules.map((r) => r.ref).join(', '));

/**
 * What the PeerAuthentication in effect says for `scope` (`port 9080`, `namespace foo`):
 * `PeerAuthentication foo/default sets STRICT for port 9080`, or — none applies —
 * `no PeerAuthentication applies to port 9080 (the default: PERMISSIVE)`.
 */
function paSays(pa: EffectivePeerAuthentication, mode: string, scope: string): string {
  const p = pa.policies.workload ?? pa.policies.namespace ?? pa.policies.mesh;
  return p === undefined ? `no PeerAuthentication applies to ${scope} (the default: ${mode})` : `PeerAuthentication ${p} sets ${mode} for ${scope}`;
}

/**
 * Decides the TLS of one cluster: what does not depend on the endpoint is worked out once
 * (`new ClusterTlsPlanner`), then {@link ClusterTlsPlanner.decide} per endpoint.
 */
export class ClusterTlsPlanner {
  readonly #cluster: Cluster;
  readonly #ctx: ClientTlsContext;
  /** The decision for every endpoint, when it does not depend on the endpoint. */
  readonly #fixed: ClientTlsDecision | undefined;
  #identities: readonly string[] | undefined;

  constructor(cluster: Cluster, ctx: ClientTlsContext) {
    this.#cluster = cluster;
    this.#ctx = ctx;
    this.#fixed = this.#clusterWide();
  }

  /** The identities the cluster's servers may prove (computed once). */
  get identities(): readonly string[] {
    this.#identities ??= Object.freeze(serviceIdentities(this.#cluster, this.#ctx.trustDomain, this.#ctx.trustDomainAliases));
    return this.#identities;
  }

  #decision(mode: ClientTlsMode, source: ClientTlsDecision['source'], why: string, failure?: string): ClientTlsDecision {
    const c = this.#cluster;
    const t = c.settings.tls;
    const mtls = mode === 'ISTIO_MUTUAL';
    const declaredSans = t?.subjectAltNames ?? [];
    return Object.freeze({
      mode,
      source,
      why,
      declared: source === 'destination-rule' ? t : undefined,
      // SIMPLE/MUTUAL without sni: Envoy's auto_sni (Istio sets it), the upstream request's Host.
      sni: mtls ? (t?.sni ?? istioMtlsSni(c.port, c.subset, c.host)) : mode === 'SIMPLE' || mode === 'MUTUAL' ? (t?.sni !== undefined && t.sni !== '' ? t.sni : "the request's Host (auto_sni)") : undefined,
      identities: mtls ? (source === 'destination-rule' && declaredSans.length > 0 ? declaredSans : this.identities) : [],
      failure,
    });
  }

  #clusterWide(): ClientTlsDecision | undefined {
    const c = this.#cluster;
    const t = c.settings.tls;
    const dr = describeDr(c);
    if (t !== undefined) {
      const mode = t.mode ?? 'DISABLE';
      if (mode === 'DISABLE') return this.#decision('DISABLE', 'destination-rule', `${dr} sets tls mode DISABLE`);
      if (mode === 'ISTIO_MUTUAL') {
        if (!this.#ctx.hasIdentity) return this.#decision(mode, 'destination-rule', `${dr} sets tls mode ISTIO_MUTUAL`, `${dr} sets tls mode ISTIO_MUTUAL but this mesh has no workload certificate (identity 'none', or not issued yet)`);
        return this.#decision(mode, 'destination-rule', `${dr} sets tls mode ISTIO_MUTUAL`);
      }
      if (t.credentialName !== undefined && t.credentialName !== '') {
        return this.#decision(mode, 'destination-rule', `${dr} sets tls mode ${mode}`, `${dr} tls.credentialName "${t.credentialName}" cannot be resolved (meshlet has no Kubernetes secrets; use clientCertificate/privateKey/caCertificates files)`);
      }
      return this.#decision(mode, 'destination-rule', `${dr} sets tls mode ${mode}`);
    }
    if (!this.#ctx.enableAutoMtls) return this.#decision('DISABLE', 'auto-mtls', 'no DestinationRule tls and enableAutoMtls is off');
    if (c.service.location === 'MESH_EXTERNAL') return this.#decision('DISABLE', 'auto-mtls', `no DestinationRule tls; ${c.service.origin} is MESH_EXTERNAL (auto-mTLS is for in-mesh services)`);
    if (c.settings.passthrough) return this.#decision('DISABLE', 'auto-mtls', 'no DestinationRule tls; a passthrough cluster has no known endpoints to tell whether they accept mTLS');
    const nsPa = composePeerAuthentication(this.#ctx.resources, { namespace: c.service.namespace, labels: {} }, this.#ctx.rootNamespace);
    if (nsPa.mode === 'DISABLE') return this.#decision('DISABLE', 'auto-mtls', `no DestinationRule tls; ${paSays(nsPa, 'mTLS DISABLE', `namespace ${c.service.namespace}`)}`);
    return undefined;
  }

  /**
   * An east-west gateway standing for endpoints on another network: Istio mTLS to it, with the
   * usual SNI and the destination's identities (the gateway passes the connection through by its
   * SNI; the workload behind it proves itself). Anything else cannot cross: the call fails rather
   * than go out in plaintext.
   */
  #viaGateway(endpoint: Endpoint, gw: NonNullable<Endpoint['gateway']>): ClientTlsDecision {
    const f = this.#fixed;
    const via = `endpoint ${endpoint.key} is the east-west gateway of network ${gw.network} (${gw.origin}) for ${gw.endpoints.join(', ')}`;
    if (f !== undefined && f.mode === 'ISTIO_MUTUAL') return f.failure === undefined ? this.#decision('ISTIO_MUTUAL', f.source, `${f.why}; ${via}`) : f;
    const cannot = `${via}, which routes only Istio mTLS (by its SNI)`;
    if (f !== undefined) return this.#decision(f.mode, f.source, f.why, `${cannot}, and calls to this cluster use ${f.mode === 'DISABLE' ? 'plaintext' : f.mode} (${f.why})`);
    const why = `auto-mTLS: ${via} (mTLS end to end: the gateway passes the connection through)`;
    if (!this.#ctx.hasIdentity) {
      const detail = this.#ctx.identityPending === true ? "this workload's certificate has not been issued yet (the control plane has not answered its CSR)" : "this mesh has no workload certificate (identity 'none')";
      return this.#decision('ISTIO_MUTUAL', 'auto-mtls', why, `${cannot}, and ${detail}; the call fails rather than go out in plaintext`);
    }
    return this.#decision('ISTIO_MUTUAL', 'auto-mtls', why);
  }

  /** The decision for connections to `endpoint`. */
  decide(endpoint: Endpoint | undefined): ClientTlsDecision {
    if (endpoint?.gateway !== undefined) return this.#viaGateway(endpoint, endpoint.gateway);
    if (this.#fixed !== undefined) return this.#fixed;
    if (endpoint === undefined) return this.#decision('DISABLE', 'auto-mtls', 'no DestinationRule tls and no endpoint known to accept mTLS');
    const label = Object.hasOwn(endpoint.labels, TLS_MODE_LABEL) ? endpoint.labels[TLS_MODE_LABEL] : undefined;
    if (label !== TLS_MODE_ISTIO) {
      return this.#decision('DISABLE', 'auto-mtls', `no DestinationRule tls; endpoint ${endpoint.key} ${label === undefined ? `has no ${TLS_MODE_LABEL} label` : `has ${TLS_MODE_LABEL}: ${label}`} (no sidecar / mTLS not accepted)`);
    }
    const pa = composePeerAuthentication(this.#ctx.resources, { namespace: endpoint.namespace, labels: endpoint.labels }, this.#ctx.rootNamespace);
    const mode = mtlsModeForPort(pa, endpoint.port);
    if (mode === 'DISABLE') return this.#decision('DISABLE', 'auto-mtls', `no DestinationRule tls; endpoint ${endpoint.key} is labelled ${TLS_MODE_LABEL}: istio but ${paSays(pa, 'mTLS DISABLE', `port ${endpoint.port}`)}`);
    if (!this.#ctx.hasIdentity && this.#ctx.identityPending === true) {
      // Not a workload without a sidecar: its certificate is on the way. Never plaintext instead.
      const why = `auto-mTLS: endpoint ${endpoint.key} is labelled ${TLS_MODE_LABEL}: istio and ${paSays(pa, mode, `port ${endpoint.port}`)}`;
      return this.#decision('ISTIO_MUTUAL', 'auto-mtls', why, `${why}, but this workload's certificate has not been issued yet (the control plane has not answered its CSR); the call fails rather than go out in plaintext`);
    }
    if (!this.#ctx.hasIdentity) return this.#decision('DISABLE', 'auto-mtls', `no DestinationRule tls; endpoint ${endpoint.key} accepts mTLS (${paSays(pa, mode, `port ${endpoint.port}`)}) but this mesh has no workload certificate, so it calls in plaintext`);
    return this.#decision('ISTIO_MUTUAL', 'auto-mtls', `auto-mTLS: endpoint ${endpoint.key} is labelled ${TLS_MODE_LABEL}: istio and ${paSays(pa, mode, `port ${endpoint.port}`)}`);
  }
}

/** `ISTIO_MUTUAL (auto-mTLS: …)`, `plaintext (DestinationRule … sets tls mode DISABLE)`. */
export function describeDecision(d: ClientTlsDecision): string {
  const mode = d.mode === 'DISABLE' ? 'plaintext' : d.mode;
  const extra: string[] = [];
  if (d.sni !== undefined) extra.push(`sni ${d.sni}`);
  if (d.mode === 'ISTIO_MUTUAL') extra.push(d.identities.length === 0 ? 'any identity the trust bundle signed' : `server identity one of ${d.identities.join(', ')}`);
  const fail = d.failure === undefined ? '' : `; calls FAIL: ${d.failure}`;
  return `${mode}${extra.length > 0 ? ` [${extra.join('; ')}]` : ''} — ${d.why}${fail}`;
}
