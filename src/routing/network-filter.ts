/**
 * Split-horizon endpoints, as istiod's `EndpointsByNetworkFilter` (pilot/pkg/xds/endpoints/ep_filters.go)
 * builds them for a sidecar: with multi-network enabled (a gateway anywhere), an endpoint on this
 * workload's network — or on a network without gateways — is dialled directly; an endpoint on a
 * remote network with gateways is replaced by those gateways (its weight, scaled by the topology's
 * factor, split among them and summed per gateway, per locality), and only when calls to it would
 * use Istio mTLS (the gateway routes the still-encrypted connection by its SNI): a plaintext remote
 * endpoint is dropped. A workload with no network set still goes through the gateway of an
 * endpoint's network (`forceGateway`).
 *
 * @module
 */
import { formatHostPort } from '../core/host-port.ts';
import type { NetworkGateway, NetworkTopology } from '../config/network-topology.ts';
import { composePeerAuthentication, mtlsModeForPort } from '../config/peer-authentication.ts';
import type { Endpoint } from '../config/registry.ts';
import type { AnyResource } from '../config/resource.ts';
import { augmentLabels, CLUSTER_LABEL, NETWORK_LABEL } from '../config/topology.ts';
import type { DeclaredTls } from './cluster-settings.ts';

const TLS_MODE_LABEL = 'security.istio.io/tlsMode';
const UINT32_MAX = 4294967295;

/**
 * Istio's `mtlsChecker.checkMtlsEnabled`: the DestinationRule's TLS mode for the cluster decides
 * (ISTIO_MUTUAL or not); without one, the endpoint must carry `security.istio.io/tlsMode: istio`
 * and its PeerAuthentication must not DISABLE mTLS on its port.
 */
export function mtlsChecker(tls: DeclaredTls | undefined, resources: readonly AnyResource[], rootNamespace: string): (ep: Endpoint) => boolean {
  if (tls !== undefined) {
    const on = (tls.mode ?? 'DISABLE') === 'ISTIO_MUTUAL';
    return () => on;
  }
  return (ep) => {
    if (!Object.hasOwn(ep.labels, TLS_MODE_LABEL) || ep.labels[TLS_MODE_LABEL] !== 'istio') return false;
    const pa = composePeerAuthentication(resources, { namespace: ep.namespace, labels: ep.labels }, rootNamespace);
    return mtlsModeForPort(pa, ep.port) !== 'DISABLE';
  };
}

/** What the filter did, for `mesh.explain` / `meshlet routes`. */
export interface NetworkFilterResult {
  readonly endpoints: Endpoint[];
  /** One line: this workload's network, the endpoints reached through gateways, those dropped. */
  readonly summary: string;
}

const scale = (weight: number, factor: number): number => (weight < Math.floor(UINT32_MAX / factor) ? weight * factor : UINT32_MAX);

/** The endpoint with its network label set when MeshNetworks (fromRegistry / fromCidr) places it and it has none. */
export function withNetwork(ep: Endpoint, topo: NetworkTopology): Endpoint {
  if (Object.hasOwn(ep.labels, NETWORK_LABEL) && ep.labels[NETWORK_LABEL] !== '') return ep;
  const nw = topo.networkOfAddress(ep.address);
  return nw === '' ? ep : { ...ep, labels: augmentLabels(ep.labels, '', nw, ep.labels[CLUSTER_LABEL] ?? '') };
}

/**
 * The endpoints this workload dials, by network. `mtls` says whether calls to an endpoint would
 * use Istio mTLS ({@link mtlsChecker}). Endpoints are filtered only when multi-network is enabled.
 */
export function filterByNetwork(endpoints: readonly Endpoint[], topo: NetworkTopology, mtls: (ep: Endpoint) => boolean): NetworkFilterResult | undefined {
  if (!topo.enabled) {
    if (topo.unresolved.length === 0) return undefined;
    // Only host-name gateways, none with an address: multi-network is off, as in istiod (said, so it is seen).
    return { endpoints: [...endpoints], summary: `multi-network off: no east-west gateway has an address, every endpoint is dialled directly; ${unresolvedText(topo)}` };
  }
  const factor = topo.scaleFactor === 0 ? 1 : topo.scaleFactor;
  // Istio's LocalityLbEndpoints: endpoints grouped by locality, in order of appearance.
  const groups = new Map<string, Endpoint[]>();
  for (const ep of endpoints) {
    const g = groups.get(ep.locality) ?? [];
    g.push(ep);
    groups.set(ep.locality, g);
  }
  const out: Endpoint[] = [];
  const usedKeys = new Set<string>();
  let viaGateway = 0;
  let plaintextDropped = 0;
  let familyDropped = 0;
  const gatewaysUsed = new Set<string>();
  for (const [locality, group] of groups) {
    const weights = new Map<NetworkGateway, { weight: number; endpoints: string[] }>();
    for (const ep of group) {
      const nw = topo.networkOf(ep);
      const cluster = ep.labels[CLUSTER_LABEL] ?? '';
      const gateways = topo.gatewaysFor(nw, cluster);
      const weight = scale(ep.weight, factor);
      const forceGateway = topo.network === '' && nw !== '' && gateways.length > 0;
      const inNetwork = topo.network === '' || nw === '' || nw === topo.network;
      if (!forceGateway && (inNetwork || gateways.length === 0)) {
        if (ep.address !== '') {
          out.push(weight === ep.weight ? ep : { ...ep, weight });
          usedKeys.add(ep.key);
        }
        continue;
      }
      // Gateways, but none of this workload's IP family: left out, not dialled directly (istiod).
      const reachable = topo.reachable(gateways);
      if (reachable.length === 0) {
        familyDropped++;
        continue;
      }
      // Cross-network traffic relies on mTLS for SNI routing: a plaintext remote endpoint is left out.
      if (!mtls(ep)) {
        plaintextDropped++;
        continue;
      }
      viaGateway++;
      const per = Math.floor(weight / reachable.length);
      for (const gw of reachable) {
        const w = weights.get(gw) ?? { weight: 0, endpoints: [] };
        w.weight += per;
        w.endpoints.push(ep.key);
        weights.set(gw, w);
      }
    }
    const sorted = [...weights.keys()].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port));
    for (const gw of sorted) {
      const w = weights.get(gw) as { weight: number; endpoints: string[] };
      gatewaysUsed.add(`${formatHostPort(gw.address, gw.port)} (${gw.origin})`);
      // One host per gateway and locality: the same gateway in another locality is another host.
      let key = formatHostPort(gw.address, gw.port);
      if (usedKeys.has(key)) key = `${key}@${locality}`;
      usedKeys.add(key);
      out.push(
        Object.freeze({
          address: gw.address,
          port: gw.port,
          labels: Object.freeze({ ...augmentLabels({}, '', gw.network, gw.cluster), [TLS_MODE_LABEL]: 'istio' }),
          locality,
          weight: w.weight === 0 ? 1 : w.weight,
          origin: `network gateway of ${gw.network} (${gw.origin})`,
          serviceAccount: '',
          namespace: group[0]?.namespace ?? '',
          workloadName: '',
          key,
          gateway: Object.freeze({ network: gw.network, origin: gw.origin, endpoints: Object.freeze(w.endpoints) }),
        }),
      );
    }
  }
  const parts = [`multi-network: this workload is on ${topo.network === '' ? 'no network (endpoints on a network with a gateway go through it)' : `network ${topo.network}`}`];
  if (viaGateway > 0) parts.push(`${viaGateway} endpoint(s) on other networks reached through gateway ${[...gatewaysUsed].join(', ')}`);
  if (topo.unresolved.length > 0) parts.push(unresolvedText(topo));
  if (familyDropped > 0) parts.push(`${familyDropped} endpoint(s) on other networks left out: no gateway of this workload's IP family (IPv${topo.ipFamily}, its sourceIp) reaches them`);
  if (plaintextDropped > 0) parts.push(`${plaintextDropped} endpoint(s) on other networks left out: calls to them would not use Istio mTLS, which the gateway routes by (SNI)`);
  return { endpoints: out, summary: parts.join('; ') };
}

/** The host-name gateways that stand for no gateway, and why. */
function unresolvedText(topo: NetworkTopology): string {
  return topo.unresolved.map((u) => `gateway host name ${u.hostname}:${u.port} of network ${u.network} (${u.origin}) ${u.state === 'resolving' ? 'is not resolved (yet)' : 'resolved to no addresses'}: no gateway`).join('; ');
}
