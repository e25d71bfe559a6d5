/**
 * The cluster compiler of one snapshot: a destination (service, port, subset) into its
 * {@link Cluster} — the endpoints (subset labels applied), the DestinationRule policy in effect
 * (top level, port-level, subset and subset-port merged as Istio merges them) and that policy's
 * compiled {@link ClusterSettings} (load balancer, connection pool, outlier detection, retry
 * budget, TLS as declared). Each cluster is made once per compile, when a route first reaches
 * it, and reused from the previous compile when made from the same things (see
 * {@link CompileCache}).
 *
 * @module
 */
import { DestinationRuleIndex, effectivePolicy, type ClientWorkload, type MergedDestinationRule } from '../config/destination-policy.ts';
import type { NetworkTopology } from '../config/network-topology.ts';
import { endpointsFor, labelsMatch, type Service } from '../config/registry.ts';
import type { AnyResource } from '../config/resource.ts';
import type { ServicePort } from '../config/types/networking.ts';
import { HOSTNAME_LABEL } from '../config/traffic-distribution.ts';
import type { CompileCache } from './compile-cache.ts';
import { compileClusterSettings } from './cluster-settings.ts';
import { filterByNetwork, mtlsChecker, withNetwork } from './network-filter.ts';
import type { Cluster } from './route-table.ts';

/** Compiles the clusters one workload's routes reach. */
export class ClusterCompiler {
  readonly #client: ClientWorkload;
  readonly #clusters = new Map<string, Cluster>();
  readonly #rules: DestinationRuleIndex;
  readonly #cache: CompileCache | undefined;
  readonly #networks: Networks | undefined;

  /** `topology`: the mesh's networks (multi-network filtering when one has a gateway). */
  constructor(resources: readonly AnyResource[], client: ClientWorkload, rootNamespace: string, cache?: CompileCache, topology?: NetworkTopology) {
    this.#rules = new DestinationRuleIndex(resources, client, rootNamespace);
    this.#client = client;
    this.#cache = cache;
    this.#networks = topology === undefined ? undefined : { topology, resources, rootNamespace };
  }

  /** The clusters made so far, by name (after the routes are compiled: every cluster a route can reach). */
  get clusters(): ReadonlyMap<string, Cluster> {
    return this.#clusters;
  }

  /** The cluster of a service port and subset, or why it does not exist (an undefined subset). */
  cluster(service: Service, port: ServicePort, subset: string | undefined): Cluster | string {
    const name = `outbound|${port.number}|${subset ?? ''}|${service.hostname}`;
    const existing = this.#clusters.get(name);
    if (existing !== undefined) return existing;
    const dr = this.#rules.find(service.hostname, service.namespace, this.#client.namespace);
    const node = this.#client.labels[HOSTNAME_LABEL] ?? '';
    const n = this.#networks;
    const c = this.#cache === undefined ? make(name, service, port, subset, dr, node, n) : this.#cache.cluster(name, service, port, dr, () => make(name, service, port, subset, dr, node, n));
    if (typeof c !== 'string') this.#clusters.set(name, c);
    return c;
  }
}

/**
 * A Kubernetes Service with `internalTrafficPolicy: Local` keeps the endpoints on the caller's
 * node only (istiod's EDS filter: `ep.NodeName != proxy.GetNodeName()`). The node is the
 * `kubernetes.io/hostname` label — of the mesh (`createMesh({ labels })`) and of the endpoint
 * (WorkloadEntry labels); '' for either without it, so a mesh and endpoints that name no node
 * keep every endpoint, and a named node keeps only the endpoints on it.
 */
function nodeLocal(service: Service): boolean {
  // Not an ExternalName Service (a DNS alias in meshlet, no endpoints in istiod): only one with endpoints.
  return service.resource.kind === 'Service' && service.resource.spec.internalTrafficPolicy === 'Local' && service.resolution === 'STATIC';
}

/** What the network filter reads: the topology, and the resources whose PeerAuthentications say whether an endpoint is mTLS. */
interface Networks {
  readonly topology: NetworkTopology;
  readonly resources: readonly AnyResource[];
  readonly rootNamespace: string;
}

function make(name: string, service: Service, port: ServicePort, subset: string | undefined, dr: MergedDestinationRule | undefined, node: string, networks: Networks | undefined): Cluster | string {
  let endpoints = endpointsFor(service, port);
  // MeshNetworks fromRegistry / fromCidr: the network of endpoints that name none (subsets may match on it).
  if (networks?.topology.placesEndpoints === true) endpoints = endpoints.map((e) => withNetwork(e, networks.topology));
  const local = nodeLocal(service);
  if (local) endpoints = endpoints.filter((e) => (e.labels[HOSTNAME_LABEL] ?? '') === node);
  if (subset !== undefined) {
    const def = dr?.subsets.get(subset);
    if (def === undefined) {
      return dr === undefined
        ? `subset "${subset}" is not defined: no DestinationRule for ${service.hostname}`
        : `subset "${subset}" is not defined in ${dr.rules.map((r) => r.ref).join(', ')}`;
    }
    endpoints = endpoints.filter((e) => labelsMatch(def.labels, e.labels));
  }
  const policy = effectivePolicy(dr, subset, port.number);
  const protocol = (port.protocol ?? '').toUpperCase();
  const settings = compileClusterSettings(policy, service, protocol);
  const byNetwork = networks === undefined ? undefined : filterByNetwork(endpoints, networks.topology, mtlsChecker(settings.tls, networks.resources, networks.rootNamespace));
  if (byNetwork !== undefined) endpoints = byNetwork.endpoints;
  return Object.freeze({
    name,
    host: service.hostname,
    port: port.number,
    subset,
    service,
    endpoints: Object.freeze(endpoints),
    policy,
    settings,
    destinationRule: dr,
    protocol,
    ...(local ? { endpointFilter: `internalTrafficPolicy Local: only endpoints on ${node === '' ? 'no named node (no kubernetes.io/hostname label)' : `node ${node}`}` } : {}),
    ...(byNetwork === undefined ? {} : { networkFilter: byNetwork.summary }),
    toString: () => `${name} (${endpoints.length} endpoints${dr ? `, ${dr.rules.map((r) => r.ref).join(', ')}` : ''})`,
  });
}
