/**
 * Which config a workload receives: networking resources and Kubernetes Services visible to its
 * namespace (`exportTo`, or a Service's `networking.istio.io/exportTo` annotation), the
 * WorkloadEntries a visible service selects (selection.ts), and security/telemetry policies of
 * its namespace or the root namespace whose selector matches its labels (the labels its token
 * proves), and the Sidecars that apply to it (its namespace's, selected by `workloadSelector`, and the root
 * namespace's selector-less default). PeerAuthentications of every namespace go to every workload: a client's auto-mTLS
 * reads its destination's policy (is mTLS DISABLEd for that workload and port?), as istiod
 * gives every sidecar the mesh's PeerAuthentications for the same reason. Payloads are serialized once per (version, namespace, labels) and shared by every
 * stream with that key.
 *
 * @module
 */
import { parentKind } from '../config/gateway-api/mesh-routes.ts';
import type { GatewayParentReference } from '../config/gateway-api/types.ts';
import { EXPORT_TO_ANNOTATION, isVisible, parseExportTo } from '../config/hosts.ts';
import { type AnyResource, DEFAULT_ROOT_NAMESPACE } from '../config/resource.ts';
import type { SidecarSpec } from '../config/types/sidecar.ts';
import { labelsMatch } from '../config/workloads.ts';
import { formatLabels, toWire, type ConfigEvent } from '../control-plane/protocol.ts';
import { VisibleSelection } from './selection.ts';
import type { ConfigState } from './store.ts';

/** The workload a config is filtered for. */
export interface WorkloadKey {
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
}

const NETWORKING = new Set(['VirtualService', 'DestinationRule', 'ServiceEntry']);

function selectorMatches(spec: unknown, labels: Readonly<Record<string, string>>): boolean {
  const s = spec as { selector?: { matchLabels?: Record<string, string> }; targetRef?: unknown; targetRefs?: unknown[] } | undefined;
  const match = s?.selector?.matchLabels;
  if (match === undefined || Object.keys(match).length === 0) {
    // A policy scoped by targetRef(s) addresses gateways and waypoints, not workloads.
    return s?.targetRef === undefined && (s?.targetRefs === undefined || s.targetRefs.length === 0);
  }
  for (const k in match) if (labels[k] !== match[k]) return false;
  return true;
}

/** Whether a route of namespace `ns` has a Service or ServiceEntry parent in `ns` (a producer route). */
function isProducerRoute(parents: readonly GatewayParentReference[], ns: string): boolean {
  return parents.some((p) => (p.namespace ?? ns) === ns && (parentKind(p) === 'Service' || parentKind(p) === 'ServiceEntry'));
}

/**
 * Whether `r` is part of the config of workload `w`. A WorkloadEntry is when a service visible to
 * `w` selects it (`selection`, made from the whole config; without one, no WorkloadEntry is).
 */
export function isRelevant(r: AnyResource, w: WorkloadKey, rootNamespace = DEFAULT_ROOT_NAMESPACE, selection?: VisibleSelection): boolean {
  const ns = r.metadata.namespace;
  // A Kubernetes Service's visibility is its networking.istio.io/exportTo annotation.
  if (r.kind === 'Service') return isVisible(parseExportTo(r.metadata.annotations?.[EXPORT_TO_ANNOTATION]), ns, w.namespace);
  // WorkloadGroups are templates for registration, which the control plane does; meshes do not use them.
  if (r.kind === 'WorkloadGroup') return false;
  // A WorkloadEntry is an endpoint: sent to the workloads that see a service selecting it.
  if (r.kind === 'WorkloadEntry') return selection?.selects(r) === true;
  // Every PeerAuthentication: auto-mTLS reads the destination's (each mesh composes its own by namespace and selector).
  if (r.kind === 'PeerAuthentication') return true;
  // A Gateway API route: a consumer route applies to its own namespace's workloads only, a producer route (a parent
  // Service or ServiceEntry in the route's namespace) to every workload (istiod's route.go BuildSidecarVirtualHostWrapper).
  if (r.kind === 'HTTPRoute' || r.kind === 'GRPCRoute') return ns === w.namespace || isProducerRoute(r.spec.parentRefs ?? [], ns);
  if (NETWORKING.has(r.kind)) {
    const exportTo = (r.spec as { exportTo?: string[] }).exportTo;
    return isVisible(exportTo, ns, w.namespace);
  }
  // A Sidecar selects by `workloadSelector.labels`; one with a selector applies in its own namespace
  // only, so the root namespace's reaches other namespaces when it has none (istiod's getSidecarScope).
  if (r.kind === 'Sidecar') {
    const selector = (r.spec as SidecarSpec).workloadSelector;
    if (ns === w.namespace) return selector === undefined || labelsMatch(selector.labels ?? {}, w.labels);
    return ns === rootNamespace && selector === undefined;
  }
  if (ns !== w.namespace && ns !== rootNamespace) return false;
  // An EnvoyFilter selects by `workloadSelector.labels` (the root namespace's mesh-wide); one with
  // targetRefs addresses gateways and waypoints (istiod's EnvoyFilter lookup, as the mesh's own compile).
  if (r.kind === 'EnvoyFilter') {
    const s = r.spec as { workloadSelector?: { labels?: Record<string, string> }; targetRefs?: unknown[] };
    return (s.targetRefs === undefined || s.targetRefs.length === 0) && labelsMatch(s.workloadSelector?.labels ?? {}, w.labels);
  }
  return selectorMatches(r.spec, w.labels);
}

/** The resources relevant to workload `w`, in the store's order. */
export function relevantResources(resources: readonly AnyResource[], w: WorkloadKey, rootNamespace = DEFAULT_ROOT_NAMESPACE): AnyResource[] {
  const selection = new VisibleSelection(resources, w.namespace);
  return resources.filter((r) => isRelevant(r, w, rootNamespace, selection));
}

/** Caches serialized `config` event data. Only the current version is kept: a new version drops every payload of the old one. */
export class PayloadCache {
  readonly #rootNamespace: string;
  #configVersion = '';
  readonly #config = new Map<string, Buffer>();

  constructor(rootNamespace = DEFAULT_ROOT_NAMESPACE) {
    this.#rootNamespace = rootNamespace;
  }

  /** The `config` event data (JSON of a {@link ConfigEvent}) for workload `w`. */
  config(state: ConfigState, w: WorkloadKey): Buffer {
    if (state.version !== this.#configVersion) {
      this.#config.clear();
      this.#configVersion = state.version;
    }
    const key = `${w.namespace}\n${formatLabels(w.labels)}`;
    let buf = this.#config.get(key);
    if (buf === undefined) {
      const event: ConfigEvent = { version: state.version, resources: relevantResources(state.resources, w, this.#rootNamespace).map(toWire) };
      buf = Buffer.from(JSON.stringify(event));
      this.#config.set(key, buf);
    }
    return buf;
  }

  /** How many distinct config payloads are cached (for tests and the status). */
  get size(): number {
    return this.#config.size;
  }
}
