/**
 * Which of Istio's analyzers (the `analyzer` of each `testGrid` row of
 * pkg/config/analysis/analyzers/analyzers_test.go) the analysis category compares, how meshlet's
 * findings correspond to each, and why the others are not compared. Shared by the runner
 * (analysis.ts) and the generator (tools/analysis-grid.ts, which copies the testdata of the
 * compared rows).
 */
import type { ConfigIssue } from '../../src/config/issues.ts';

/** How an Istio analyzer is compared: the kinds it reports on and the meshlet findings that are its counterpart. */
export interface ComparedAnalyzer {
  readonly compared: true;
  /** The kinds whose resources are the cases (every resource of these kinds in the row's files). */
  readonly kinds: readonly string[];
  /** Istio's codes this analyzer reports that meshlet compares. */
  readonly codes: readonly string[];
  /** Picks meshlet's findings that answer the same question as this analyzer (by code, and path where one code has several checks). */
  readonly picks: (finding: ConfigIssue) => boolean;
  /** Istio codes of this analyzer meshlet does not compare, with why (resources expecting them are counted, not compared). */
  readonly notCompared?: Readonly<Record<string, string>>;
  /** Rows of this analyzer that cannot be compared, by row name, with why. */
  readonly rowsNotCompared?: Readonly<Record<string, string>>;
  /** What the meshlet counterpart is, for the docs and the report. */
  readonly counterpart: string;
}

/** An analyzer left out, with why. */
export interface SkippedAnalyzer {
  readonly compared: false;
  readonly reason: string;
}

export type AnalyzerScope = ComparedAnalyzer | SkippedAnalyzer;

const isSubsetPath = (f: ConfigIssue) => /\.subset$/.test(f.path);
const codeIs = (...codes: string[]) => (f: ConfigIssue) => codes.includes(f.code);

const PODS =
  "Istio's verdict comes from the Pods (and Nodes) in the row's files; meshlet reads neither: its endpoints are WorkloadEntries " +
  'and workloads that register at run time, so it does not check the subsets of a service with no endpoints in config';
const GATEWAYS = 'meshlet runs inside workloads and is not a gateway: it skips Gateway resources and the VirtualServices bound only to gateways';

/**
 * Every analyzer of the grid, by its Go expression in the row (`&pkg.Type{}` → `pkg.Type`).
 * The generator fails on an analyzer missing here, so a new row of Istio's grid is a decision.
 */
export const ANALYZER_SCOPE: Readonly<Record<string, AnalyzerScope>> = {
  'virtualservice.ConflictingMeshGatewayHostsAnalyzer': {
    compared: true,
    kinds: ['VirtualService'],
    codes: ['IST0109'],
    picks: codeIs('IST0109'),
    counterpart: 'IST0109, src/config/analyze/conflicting-hosts.ts',
  },
  'virtualservice.DestinationHostAnalyzer': {
    compared: true,
    kinds: ['VirtualService'],
    codes: ['IST0101', 'IST0112'],
    picks: (f) => (f.code === 'IST0101' && !isSubsetPath(f)) || f.code === 'IST0112',
    notCompared: { IST0140: `IngressRouteRulesNotAffected is about routes at an ingress gateway; ${GATEWAYS}` },
    counterpart: 'IST0101 (host, mirror host, port) and IST0112, src/config/analyze/destinations.ts',
  },
  'virtualservice.DestinationRuleAnalyzer': {
    compared: true,
    kinds: ['VirtualService'],
    codes: ['IST0101'],
    picks: (f) => f.code === 'IST0101' && isSubsetPath(f),
    counterpart: 'IST0101 (subset), src/config/analyze/destinations.ts',
  },
  'schemaValidation.CollectionValidationAnalyzer(collections.VirtualService)': {
    compared: true,
    kinds: ['VirtualService'],
    codes: ['IST0130', 'IST0131'],
    picks: codeIs('IST0130', 'IST0131'),
    counterpart: 'IST0130 and IST0131, src/config/analyze/match-order.ts (Istio reports them as validation warnings)',
  },
  'virtualservice.JWTClaimRouteAnalyzer': {
    compared: true,
    kinds: ['VirtualService'],
    codes: ['IST0149'],
    picks: codeIs('IST0149'),
    rowsNotCompared: {
      virtualServiceJWTClaimRoute:
        "Istio's verdict comes from the Gateway named by the VirtualService and the gateway Pods it selects (whether a RequestAuthentication selects them); " +
        'meshlet reads neither Gateways nor Pods',
    },
    counterpart: 'IST0149, src/config/analyze/jwt-claims.ts',
  },
  'sidecar.SelectorAnalyzer': {
    compared: true,
    kinds: ['Sidecar'],
    codes: ['IST0110', 'IST0111'],
    picks: codeIs('IST0110', 'IST0111'),
    notCompared: {
      IST0101:
        "a selector that matches no Pod: meshlet reads no Pods, and the workloads a Sidecar selects are mostly meshlet processes, which config does not list (src/config/analyze/sidecar-selectors.ts), so meshlet does not report it",
      IST0167: 'a Sidecar for an ambient namespace or Pod: meshlet runs in the process and has no ambient mode (it reads neither Namespaces nor Pods)',
    },
    rowsNotCompared: {
      sidecarSelector:
        "Istio's verdicts come from the Pods in the row's file (which Pods each selector matches, and which Pod two selectors share); meshlet reads no Pods: it checks selectors against WorkloadEntries (IST0110)",
    },
    counterpart: 'IST0110 and IST0111, src/config/analyze/sidecar-selectors.ts',
  },
  'destinationrule.PodNotSelectedAnalyzer': {
    compared: true,
    kinds: ['DestinationRule'],
    codes: ['IST0173', 'IST0174'],
    picks: codeIs('IST0173', 'IST0174'),
    rowsNotCompared: {
      DestinationRuleSubsetsNotSelectPods: PODS,
      DestinationRuleSubsetsWithTopologyLabels: PODS,
      DestinationRuleEmptyTopologyLabels: PODS,
    },
    counterpart: 'IST0173 and IST0174, src/config/analyze/destination-rules.ts',
  },
  'destinationrule.CaCertificateAnalyzer': {
    compared: true,
    kinds: ['DestinationRule'],
    codes: ['IST0128', 'IST0129'],
    picks: codeIs('IST0128', 'IST0129'),
    counterpart: 'IST0128 and IST0129, src/config/analyze/ca-certificates.ts',
  },
  'service.PortNameAnalyzer': {
    compared: true,
    kinds: ['Service'],
    codes: ['IST0118', 'IST0150'],
    picks: codeIs('IST0118', 'IST0150'),
    counterpart: 'IST0118 and IST0150, src/config/analyze/port-names.ts',
  },
  'serviceentry.ConflictingServiceEntryProtocolAnalyzer': {
    compared: true,
    kinds: ['ServiceEntry'],
    codes: ['IST0177'],
    picks: codeIs('IST0177'),
    counterpart: 'IST0177, src/config/analyze/service-entry-protocols.ts',
  },

  'annotations.K8sAnalyzer': {
    compared: false,
    reason: "Istio annotations on Kubernetes objects (Pods, Deployments, Namespaces): meshlet reads Services for the registry only and checks Istio's annotation rules on Istio's kinds",
  },
  'maturity.AlphaAnalyzer': { compared: false, reason: 'alpha annotations on Pods, Deployments and Services (a row Istio itself keeps out of All())' },
  'deprecation.FieldAnalyzer': {
    compared: false,
    reason: "meshlet reports deprecated fields as validation warnings (compared in the validation category, e.g. 'deprecated mirror'); the row's other resources are EnvoyFilter, Sidecar and QuotaSpec",
  },
  'externalcontrolplane.ExternalControlPlaneAnalyzer': { compared: false, reason: 'webhook configurations of an Istio installation' },
  'gateway.IngressGatewayPortAnalyzer': { compared: false, reason: GATEWAYS },
  'gateway.SecretAnalyzer': { compared: false, reason: `${GATEWAYS}; there are no Kubernetes Secrets` },
  'gateway.ConflictingGatewayAnalyzer': { compared: false, reason: GATEWAYS },
  'gateway.CertificateAnalyzer': { compared: false, reason: GATEWAYS },
  'virtualservice.GatewayAnalyzer': { compared: false, reason: GATEWAYS },
  'injection.Analyzer': { compared: false, reason: 'sidecar injection (Namespaces, Pods): meshlet runs in the process, no sidecar is injected' },
  'injection.ImageAnalyzer': { compared: false, reason: 'sidecar injection (proxy images in Pods and ConfigMaps)' },
  'injection.ImageAutoAnalyzer': { compared: false, reason: 'sidecar injection (proxy images in Pods and Deployments)' },
  'deployment.ServiceAssociationAnalyzer': { compared: false, reason: 'Deployments, which meshlet does not read' },
  'deployment.ApplicationUIDAnalyzer': { compared: false, reason: 'Pods and Deployments (the proxy UID), which meshlet does not read' },
  'multicluster.MeshNetworksAnalyzer': { compared: false, reason: 'MeshNetworks, which is mesh-wide config, not a resource meshlet reads' },
  'authn.BlockedCIDRsAnalyzer': { compared: false, reason: "the istiod Deployment's environment" },
  'authz.AuthorizationPoliciesAnalyzer': {
    compared: false,
    reason: 'matches AuthorizationPolicy selectors against Pods and Namespaces, which meshlet does not read',
  },
  'envoyfilter.EnvoyPatchAnalyzer': { compared: false, reason: 'the EnvoyFilter kind, which meshlet does not apply (there is no Envoy)' },
  'telemetry.ProviderAnalyzer': { compared: false, reason: 'checks Telemetry providers against MeshConfig, which meshlet does not read (its providers are options of createMesh)' },
  'telemetry.SelectorAnalyzer': { compared: false, reason: 'matches Telemetry selectors against Pods, which meshlet does not read' },
  'telemetry.DefaultSelectorAnalyzer': { compared: false, reason: 'meshlet has no analyzer for IST0160 (several Telemetry resources without a selector in one namespace); the mesh warns about them when it applies Telemetry (only the oldest applies)' },
  'telemetry.LightstepAnalyzer': { compared: false, reason: 'the deprecated Lightstep provider is declared in MeshConfig, which meshlet does not read' },
  'k8sgateway.SelectorAnalyzer': { compared: false, reason: 'Kubernetes Gateway API gateways and their Pods' },
  'k8sgateway.CRDVersionAnalyzer': { compared: false, reason: 'Gateway API CRD versions of an installation' },
  'serviceentry.ProtocolAddressesAnalyzer': {
    compared: false,
    reason:
      'meshlet reaches services by host name and never intercepts by IP, so a TCP port without addresses changes nothing for it; the rows also depend on ' +
      "MeshConfig proxy metadata (DNS auto-allocation) and ServiceEntry status. Istio's validation warning for the same condition is compared in the validation category",
  },
  'conditions.ConditionAnalyzer': { compared: false, reason: 'status conditions written by controllers in a cluster' },
  'webhook.Analyzer': { compared: false, reason: 'webhook configurations of an Istio installation' },
};

/** The scope of an analyzer, failing loudly on one not decided yet. */
export function scopeOf(analyzer: string): AnalyzerScope {
  const s = ANALYZER_SCOPE[analyzer];
  if (s === undefined) throw new Error(`analyzer ${analyzer} of Istio's testGrid has no scope decision in analysis-scope.ts`);
  return s;
}
