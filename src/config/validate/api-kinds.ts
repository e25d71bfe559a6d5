/**
 * Which documents meshlet applies, which it skips with a notice, and which are mistakes.
 *
 * The rule, by the document's API group (the part of `apiVersion` before `/`; none for the
 * Kubernetes core group):
 *
 * - **A group meshlet reads** (`networking.istio.io`, `security.istio.io`, `telemetry.istio.io`,
 *   and the core group for Services): a kind meshlet applies is validated (an unknown version is
 *   an error); a kind the group defines that meshlet does not apply (Gateway, Sidecar,
 *   ConfigMap, …) is skipped with a notice; any other kind is an error with a did-you-mean,
 *   because it is most likely a typo of a kind meshlet would apply (`VirtualServce`).
 * - **A misspelt group** (within two edits of a group meshlet reads, e.g. `networking.istio.oi`),
 *   or a kind meshlet applies under another `*.istio.io` group: an error naming the right
 *   `apiVersion`.
 * - **Any other group** (`apps`, `gateway.networking.k8s.io`, `extensions.istio.io`, other
 *   operators' custom resources, …): skipped with a notice. These are resources of other APIs
 *   that share a manifest with Istio's; refusing the file for them would make real manifests
 *   (`kubectl get -o yaml` dumps, Istio's samples) unusable.
 *
 * The Gateway API's HTTPRoute and GRPCRoute are the exception: one with a Service or ServiceEntry
 * parent is mesh routing (GAMMA), which meshlet applies as istiod does (see `../gateway-api/`);
 * only one attached to Gateways alone is skipped here.
 *
 * @module
 */
import { apiVersionOf, KIND_VERSIONS, type Kind } from '../resource.ts';
import { closest } from '../../core/did-you-mean.ts';

/** What to do with a document of some `apiVersion` and `kind`. */
export type KindDecision =
  | { readonly action: 'apply'; readonly kind: Kind }
  | {
      readonly action: 'skip';
      /** `warning` for kinds that change traffic in Istio (Gateway, Sidecar, …); `info` for the rest. */
      readonly level: 'info' | 'warning';
      /** The API group, `''` for core. */
      readonly group: string;
      /** Why meshlet skips it. */
      readonly reason: string;
    }
  | { readonly action: 'error'; readonly message: string };

interface KindNote {
  readonly level: 'info' | 'warning';
  readonly reason: string;
}

const WORKLOADS: KindNote = {
  level: 'info',
  reason: 'workloads run outside meshlet; a Service picks its endpoints from WorkloadEntries and from workloads registered with mesh.register()',
};
const ENDPOINTS: KindNote = {
  level: 'info',
  reason: 'meshlet takes endpoints from WorkloadEntries (selected by a Service or ServiceEntry) and from registered workloads, not from Endpoints or EndpointSlices',
};
const NOT_USED: KindNote = { level: 'info', reason: 'meshlet does not use it' };
const IDENTITY: KindNote = { level: 'info', reason: "workload identity comes from the mesh's certificates (service account in the SPIFFE id), not from ServiceAccount objects" };
const GATEWAY_API: KindNote = { level: 'info', reason: 'meshlet does not implement the Kubernetes Gateway API; route mesh traffic with VirtualServices' };
const GAMMA: KindNote = {
  level: 'warning',
  reason: 'these routes are attached to no Service or ServiceEntry, only to Gateways, and meshlet is not a gateway (routes with a Service parent, GAMMA mesh routing, are applied)',
};

/**
 * Kinds of the groups meshlet reads that it does not apply, and why. A kind of these groups
 * that is neither here nor in {@link KIND_VERSIONS} is an error.
 */
const SKIPPED_IN_READ_GROUPS: ReadonlyMap<string, ReadonlyMap<string, KindNote>> = new Map([
  [
    '',
    new Map([
      ...['Pod', 'ReplicationController', 'PodTemplate'].map((k) => [k, WORKLOADS] as const),
      ['Endpoints', ENDPOINTS],
      ['ServiceAccount', IDENTITY],
      ...['ConfigMap', 'Secret', 'Namespace', 'Node', 'PersistentVolume', 'PersistentVolumeClaim', 'LimitRange', 'ResourceQuota', 'Event', 'Binding', 'ComponentStatus'].map(
        (k) => [k, NOT_USED] as const,
      ),
    ]),
  ],
  [
    'networking.istio.io',
    new Map<string, KindNote>([
      ['Gateway', { level: 'warning', reason: 'meshlet runs inside workloads; it is not an ingress or egress gateway (VirtualServices bound only to gateways are ignored too)' }],
      ['ProxyConfig', { level: 'warning', reason: 'proxy settings have meshlet equivalents in createMesh() options' }],
    ]),
  ],
  ['security.istio.io', new Map()],
  ['telemetry.istio.io', new Map()],
]);

/** Groups of other APIs that often share manifests with Istio's, and why meshlet skips them. */
const OTHER_GROUPS: ReadonlyMap<string, { readonly note: KindNote; readonly kinds?: ReadonlyMap<string, KindNote> }> = new Map([
  ['apps', { note: WORKLOADS }],
  ['batch', { note: WORKLOADS }],
  ['autoscaling', { note: NOT_USED }],
  ['policy', { note: NOT_USED }],
  ['discovery.k8s.io', { note: ENDPOINTS }],
  ['networking.k8s.io', { note: { level: 'info', reason: 'Kubernetes Ingress and NetworkPolicy are enforced outside meshlet (meshlet applies AuthorizationPolicy)' } }],
  ['rbac.authorization.k8s.io', { note: NOT_USED }],
  [
    'gateway.networking.k8s.io',
    { note: GATEWAY_API, kinds: new Map([['HTTPRoute', GAMMA], ['GRPCRoute', GAMMA]]) },
  ],
  ['extensions.istio.io', { note: { level: 'warning', reason: 'there is no Envoy to load Wasm into' } }],
  ['install.istio.io', { note: { level: 'info', reason: 'it configures an Istio installation, which meshlet does not need' } }],
]);

/** The groups meshlet reads, and the label used for them in messages. */
const READ_GROUPS = [...SKIPPED_IN_READ_GROUPS.keys()];

function groupLabel(group: string): string {
  return group === '' ? 'the Kubernetes core group (apiVersion: v1)' : group;
}

const APPLIED = Object.keys(KIND_VERSIONS) as Kind[];

/** `networking.istio.io/v1, v1beta1, v1alpha3` for a kind meshlet applies. */
export function servedAs(kind: Kind): string {
  const { group, versions } = KIND_VERSIONS[kind];
  return versions.map((v) => apiVersionOf(group, v)).join(', ');
}

/** Kinds meshlet applies in `group`. */
function appliedIn(group: string): Kind[] {
  return APPLIED.filter((k) => KIND_VERSIONS[k].group === group);
}

/** Splits `group/version` (`v1` alone is the core group); undefined when malformed. */
export function parseApiVersion(apiVersion: string): { group: string; version: string } | undefined {
  const slash = apiVersion.indexOf('/');
  if (slash === -1) return apiVersion === '' ? undefined : { group: '', version: apiVersion };
  const group = apiVersion.slice(0, slash);
  const version = apiVersion.slice(slash + 1);
  if (group === '' || version === '' || version.includes('/')) return undefined;
  return { group, version };
}

/** Decides what happens to a document with this `apiVersion` and `kind` (see the module comment). */
export function classifyKind(apiVersion: string, kind: string): KindDecision {
  const parsed = parseApiVersion(apiVersion);
  if (parsed === undefined) return { action: 'error', message: `apiVersion "${apiVersion}" is not of the form group/version (or v1 for the Kubernetes core group)` };
  const { group, version } = parsed;
  const skipped = SKIPPED_IN_READ_GROUPS.get(group);
  if (skipped !== undefined) {
    const applied = appliedIn(group);
    if ((applied as string[]).includes(kind)) {
      const k = kind as Kind;
      if (!KIND_VERSIONS[k].versions.includes(version)) {
        return { action: 'error', message: `unknown apiVersion "${apiVersion}"; ${kind} is served as ${servedAs(k)}` };
      }
      return { action: 'apply', kind: k };
    }
    const note = skipped.get(kind);
    if (note !== undefined) return { action: 'skip', group, ...note };
    if ((APPLIED as string[]).includes(kind)) {
      return { action: 'error', message: `unknown apiVersion "${apiVersion}"; ${kind} is served as ${servedAs(kind as Kind)}` };
    }
    const guess = closest(kind, [...applied, ...skipped.keys()]);
    return {
      action: 'error',
      message: `unknown kind "${kind}" in ${groupLabel(group)}${guess === undefined ? '' : ` (did you mean "${guess}"?)`}; meshlet reads ${applied.join(', ')} from ${group === '' ? 'that group' : group}`,
    };
  }
  const nearGroup = closest(group, READ_GROUPS.filter((g) => g !== ''));
  if (nearGroup !== undefined) {
    return { action: 'error', message: `unknown API group "${group}" (did you mean "${nearGroup}"?)` };
  }
  if ((APPLIED as string[]).includes(kind) && group.endsWith('istio.io')) {
    return { action: 'error', message: `unknown apiVersion "${apiVersion}"; ${kind} is served as ${servedAs(kind as Kind)}` };
  }
  const other = OTHER_GROUPS.get(group);
  const note = other?.kinds?.get(kind) ?? other?.note ?? { level: 'info', reason: 'meshlet reads only Kubernetes Services and Istio networking, security and telemetry resources' };
  return { action: 'skip', group, ...note };
}

/** Kinds without a namespace, named without one in notices. */
export const CLUSTER_SCOPED_KINDS: ReadonlySet<string> = new Set([
  'Namespace',
  'Node',
  'PersistentVolume',
  'ComponentStatus',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'StorageClass',
  'PriorityClass',
  'IngressClass',
  'GatewayClass',
  'RuntimeClass',
  'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration',
  'APIService',
  'CSIDriver',
]);
