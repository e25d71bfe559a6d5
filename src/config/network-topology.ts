/**
 * The networks of a multi-network mesh as istiod models them for one proxy
 * (`pilot/pkg/model/network.go` NetworkGateways, `kube/controller/network.go`):
 *
 * - the gateways of each network: MeshNetworks `gateways` with an `address`; Kubernetes Services
 *   labelled `topology.istio.io/network` (port: the `networking.istio.io/gatewayPort` label, else
 *   15443, which the Service must expose); MeshNetworks `registryServiceName` gateways of a network
 *   whose `fromRegistry` names this registry (`Kubernetes`) — a Service's addresses are its
 *   `status.loadBalancer.ingress` (`ip`, else `hostname`) and `externalIPs` (`ClusterExternalAddresses`);
 * - a gateway whose address is a host name (an AWS ELB's) stands for one gateway per address the
 *   mesh's name cache has for it (`resolveHostnameGateways`; `outbound/gateway-names.ts`); until
 *   the name has an answer with addresses it is no gateway (listed in `unresolved`);
 * - the network of an endpoint: its `topology.istio.io/network` label (a WorkloadEntry's
 *   `network`), else the network whose `fromRegistry` is this registry, else the first whose
 *   `fromCidr` holds its address;
 * - the weight scale factor: the least common multiple of the gateway counts per network and per
 *   network and cluster (`GetLBWeightScaleFactor`).
 *
 * Multi-network is enabled when there is at least one gateway (`IsMultiNetworkEnabled`).
 *
 * @module
 */
import { BlockList, isIP } from 'node:net';
import { isFqdn, type MeshNetworks } from './mesh-networks.ts';
import type { Endpoint, Service } from './registry.ts';
import { DEFAULT_CLUSTER_ID, NETWORK_LABEL } from './topology.ts';

/** Istio's `DefaultNetworkGatewayPort`: the mTLS (AUTO_PASSTHROUGH) port of an east-west gateway. */
export const DEFAULT_NETWORK_GATEWAY_PORT = 15443;
/** `networking.istio.io/gatewayPort`: a network gateway Service's mTLS port, when not 15443. */
export const GATEWAY_PORT_LABEL = 'networking.istio.io/gatewayPort';

/**
 * An east-west gateway into a network.
 * @category Snapshot
 */
export interface NetworkGateway {
  readonly network: string;
  /** The cluster it runs in: `Kubernetes` for a Service's, '' for a MeshNetworks address. */
  readonly cluster: string;
  readonly address: string;
  readonly port: number;
  /** Where it came from: `meshNetworks networks.<name>.gateways[i]`, `Service ns/name` (`, host name <name>` when resolved from one). */
  readonly origin: string;
  /** The host name `address` was resolved from, if it was. */
  readonly hostname?: string;
}

/**
 * A gateway given by host name that stands for no gateway in this compile: its name has no
 * answer yet, or its last answer had no addresses.
 * @category Snapshot
 */
export interface UnresolvedGateway {
  readonly network: string;
  readonly hostname: string;
  readonly port: number;
  readonly origin: string;
  /** `resolving`: no answer yet (or none is looked for: `meshlet routes`); `no addresses`: the last answer had none. */
  readonly state: 'resolving' | 'no addresses';
}

/**
 * The addresses the mesh has for a gateway host name: undefined while it has no answer.
 * @category Snapshot
 */
export type GatewayAddresses = (hostname: string) => readonly string[] | undefined;

/**
 * A workload's network settings (compileSnapshot's `networks`): its own network and MeshNetworks.
 * @category Snapshot
 */
export interface NetworkSettings {
  /** This workload's network ('' when unset). */
  readonly network: string;
  readonly meshNetworks?: MeshNetworks | undefined;
  /** The addresses of gateway host names (the mesh's name cache); without it, host-name gateways stand for no gateway (listed as unresolved). */
  readonly gatewayAddresses?: GatewayAddresses | undefined;
  /** This workload's IP family (of `sourceIp`, when given): only gateways of that family are reachable (istiod's `filterGatewaysByIPFamily`); undefined: any. */
  readonly ipFamily?: 4 | 6 | undefined;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/** An address's family, an IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) being IPv4 (Go's `netip.Addr.Unmap`). */
const familyOf = (address: string): 4 | 6 => (isIP(address) === 4 || /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(address) ? 4 : 6);

/**
 * A Service's addresses outside the cluster (istiod's `ClusterExternalAddresses`, `kube/conversion.go`):
 * a LoadBalancer's `status.loadBalancer.ingress` (each entry's `ip`, else its `hostname`), then
 * `spec.externalIPs`. `spec.loadBalancerIP` (a request to the cloud, deprecated) is not one.
 */
function externalAddresses(s: Service): string[] {
  if (s.resource.kind !== 'Service') return [];
  const out: string[] = [];
  if (s.resource.spec.type === 'LoadBalancer') for (const i of s.resource.status?.loadBalancer?.ingress ?? []) out.push(i.ip ?? i.hostname ?? '');
  out.push(...(s.resource.spec.externalIPs ?? []));
  return out.filter((a) => isIP(a) !== 0 || isFqdn(a));
}

/** The networks of one compile. */
export class NetworkTopology {
  /** This workload's network. */
  readonly network: string;
  /** Every gateway, sorted by address then port (one per address of a host-name gateway). */
  readonly gateways: readonly NetworkGateway[];
  /** Host-name gateways that stand for no gateway now (no answer yet, or no addresses). */
  readonly unresolved: readonly UnresolvedGateway[];
  /** Every gateway host name this compile used, sorted (the names the mesh keeps resolving). */
  readonly hostnames: readonly string[];
  readonly #byNetwork = new Map<string, NetworkGateway[]>();
  readonly #byNetworkAndCluster = new Map<string, NetworkGateway[]>();
  readonly #cidrs: { readonly network: string; readonly list: BlockList }[] = [];
  /** The network MeshNetworks puts this registry's endpoints on (`fromRegistry: Kubernetes`). */
  readonly #registryNetwork: string;
  /** The least common multiple of the gateway counts (per network, per network and cluster). */
  readonly scaleFactor: number;
  /** What the topology is made of, to tell whether two compiles share one. */
  readonly key: string;

  /** `extra`: gateways known otherwise (tests: gateways of other clusters, as istiod's registries add them). */
  constructor(settings: NetworkSettings, services: readonly Service[], extra: readonly NetworkGateway[] = []) {
    this.network = settings.network;
    const nets = settings.meshNetworks?.networks ?? {};
    let registryNetwork = '';
    const byService = new Map<string, { network: string; port: number; origin: string }[]>();
    const gateways = new Map<string, NetworkGateway>();
    const put = (g: NetworkGateway) => {
      const k = `${g.network}|${g.cluster}|${g.address}|${g.port}`;
      if (!gateways.has(k)) gateways.set(k, g);
    };
    const unresolved = new Map<string, UnresolvedGateway>();
    const hostnames = new Set<string>();
    // istiod's resolveHostnameGateways: a host name stands for one gateway per address it resolves to.
    const add = (g: NetworkGateway) => {
      if (isIP(g.address) !== 0) return put(g);
      const hostname = g.address;
      hostnames.add(hostname);
      const addresses = settings.gatewayAddresses?.(hostname);
      if (addresses === undefined || addresses.length === 0) {
        const k = `${g.network}|${g.cluster}|${hostname}|${g.port}`;
        if (!unresolved.has(k)) unresolved.set(k, { network: g.network, hostname, port: g.port, origin: g.origin, state: addresses === undefined ? 'resolving' : 'no addresses' });
        return;
      }
      for (const address of addresses) put({ ...g, address, hostname, origin: `${g.origin}, host name ${hostname}` });
    };
    for (const [name, n] of Object.entries(nets)) {
      const fromRegistry = (n.endpoints ?? []).some((e) => e.fromRegistry === DEFAULT_CLUSTER_ID);
      // istiod keeps the first network naming this registry (and warns about the others).
      if (fromRegistry && registryNetwork === '') registryNetwork = name;
      const cidrs = (n.endpoints ?? []).filter((e) => e.fromCidr !== undefined);
      if (cidrs.length > 0) {
        const list = new BlockList();
        for (const e of cidrs) {
          const [addr, bits] = (e.fromCidr as string).split('/') as [string, string];
          list.addSubnet(addr, Number(bits), isIP(addr) === 6 ? 'ipv6' : 'ipv4');
        }
        this.#cidrs.push({ network: name, list });
      }
      for (const [i, g] of (n.gateways ?? []).entries()) {
        const origin = `meshNetworks networks.${name}.gateways[${i}]`;
        if (g.address !== undefined) add({ network: name, cluster: '', address: g.address, port: g.port, origin });
        else if (g.registryServiceName !== undefined && fromRegistry) {
          const list = byService.get(g.registryServiceName) ?? [];
          list.push({ network: name, port: g.port, origin });
          byService.set(g.registryServiceName, list);
        }
      }
    }
    this.#registryNetwork = registryNetwork;
    for (const s of services) {
      if (s.resource.kind !== 'Service') continue;
      const labels = s.resource.metadata.labels ?? {};
      const nw = Object.hasOwn(labels, NETWORK_LABEL) ? (labels[NETWORK_LABEL] as string) : '';
      // A labelled Service is a gateway of its network; else one MeshNetworks names.
      let details: { network: string; port: number; origin: string }[] = [];
      if (nw !== '') {
        const declared = Object.hasOwn(labels, GATEWAY_PORT_LABEL) ? Number.parseInt(labels[GATEWAY_PORT_LABEL] as string, 10) : Number.NaN;
        const port = Number.isNaN(declared) ? DEFAULT_NETWORK_GATEWAY_PORT : declared;
        // The Service must listen on the mTLS port (a sidecar cannot use an HBONE-only gateway).
        if (s.ports.some((p) => p.number === port)) details = [{ network: nw, port, origin: s.origin }];
      } else details = byService.get(s.hostname) ?? [];
      for (const d of details) for (const address of externalAddresses(s)) add({ network: d.network, cluster: DEFAULT_CLUSTER_ID, address, port: d.port, origin: d.network === nw ? s.origin : `${s.origin} (${d.origin})` });
    }
    for (const g of extra) add(g);
    this.unresolved = Object.freeze([...unresolved.values()]);
    this.hostnames = Object.freeze([...hostnames].sort());
    this.gateways = Object.freeze([...gateways.values()].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port)));
    for (const g of this.gateways) {
      const a = this.#byNetwork.get(g.network) ?? [];
      a.push(g);
      this.#byNetwork.set(g.network, a);
      const k = `${g.network}|${g.cluster}`;
      const b = this.#byNetworkAndCluster.get(k) ?? [];
      b.push(g);
      this.#byNetworkAndCluster.set(k, b);
    }
    let lcm = 1;
    for (const list of [...this.#byNetwork.values(), ...this.#byNetworkAndCluster.values()]) lcm = (lcm * list.length) / gcd(lcm, list.length);
    this.scaleFactor = lcm;
    this.ipFamily = settings.ipFamily;
    this.key = JSON.stringify([this.network, registryNetwork, this.gateways.map((g) => [g.network, g.cluster, g.address, g.port, g.origin]), this.unresolved, settings.meshNetworks?.networks ?? null, this.ipFamily ?? 0]);
  }

  /** This workload's IP family, when known: a gateway of the other family is not reachable. */
  readonly ipFamily: 4 | 6 | undefined;

  /** The gateways this workload can reach (istiod's `filterGatewaysByIPFamily`: all, unless its IP family is known). */
  reachable(gateways: readonly NetworkGateway[]): readonly NetworkGateway[] {
    const f = this.ipFamily;
    return f === undefined ? gateways : gateways.filter((g) => familyOf(g.address) === f);
  }

  /** Whether any network has a gateway (Istio's `IsMultiNetworkEnabled`): only then are endpoints filtered by network. */
  get enabled(): boolean {
    return this.gateways.length > 0;
  }

  /** The gateways of a network, those of its cluster when it has some there (istiod's `selectNetworkGateways`). */
  gatewaysFor(network: string, cluster: string): readonly NetworkGateway[] {
    return this.#byNetworkAndCluster.get(`${network}|${cluster}`) ?? this.#byNetwork.get(network) ?? [];
  }

  /** Whether MeshNetworks places endpoints on networks (`fromRegistry` naming this registry, or `fromCidr`). */
  get placesEndpoints(): boolean {
    return this.#registryNetwork !== '' || this.#cidrs.length > 0;
  }

  /** The network an endpoint without a `topology.istio.io/network` label is on ('' when none says). */
  networkOfAddress(address: string): string {
    if (this.#registryNetwork !== '') return this.#registryNetwork;
    if (this.#cidrs.length === 0) return '';
    const family = isIP(address);
    if (family === 0) return '';
    for (const c of this.#cidrs) if (c.list.check(address, family === 6 ? 'ipv6' : 'ipv4')) return c.network;
    return '';
  }

  /** The endpoint's network: its label, else MeshNetworks' `fromRegistry` / `fromCidr`. */
  networkOf(endpoint: Pick<Endpoint, 'address' | 'labels'>): string {
    const label = Object.hasOwn(endpoint.labels, NETWORK_LABEL) ? (endpoint.labels[NETWORK_LABEL] as string) : '';
    return label !== '' ? label : this.networkOfAddress(endpoint.address);
  }
}
