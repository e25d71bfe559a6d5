/**
 * `createMesh({ network, meshNetworks })`: this workload's network and Istio's MeshNetworks, for
 * multi-network meshes (endpoints on other networks reached through their east-west gateways:
 * `routing/network-filter.ts`).
 *
 * @module
 */
import { isIP } from 'node:net';
import { type MeshNetworksInput, readMeshNetworks } from './config/mesh-networks.ts';
import type { NetworkSettings } from './config/network-topology.ts';
import { NETWORK_LABEL } from './config/topology.ts';
import { InvalidArgumentError } from './core/errors.ts';
import { optionNames } from './core/option-names.ts';

/**
 * The multi-network options of `createMesh`.
 * @category Mesh
 */
export interface MeshNetworkOptions {
  /**
   * This workload's network (Istio's `ISTIO_META_NETWORK`): endpoints on another network that has
   * an east-west gateway are called through it, with mTLS end to end. Registrations (control-plane
   * mode) are on it too.
   * @defaultValue the `topology.istio.io/network` label of `labels`, else none
   */
  readonly network?: string | undefined;
  /**
   * Istio's MeshNetworks (the `istio` ConfigMap's `data.meshNetworks`; taken from `meshConfig` when
   * that is the ConfigMap): each network's endpoints (`fromCidr`, `fromRegistry: Kubernetes`) and
   * gateways (`address` or `registryServiceName`, and `port`). docs/outbound.md#multi-network.
   */
  readonly meshNetworks?: MeshNetworksInput | undefined;
}

/** The names of {@link MeshNetworkOptions}. @internal */
export const NETWORK_OPTION_NAMES = optionNames<MeshNetworkOptions>()(['network', 'meshNetworks']);

/** The network settings of a mesh's compiles, from its options (validated: a clear error for each problem). */
export function networkSettings(o: MeshNetworkOptions & { readonly labels?: Readonly<Record<string, string>> | undefined; readonly sourceIp?: string | undefined }): NetworkSettings {
  if (o.network !== undefined && typeof o.network !== 'string') throw new InvalidArgumentError(`createMesh: \`network\` must be a network name (a string), got ${JSON.stringify(o.network)}`);
  const label = o.labels !== undefined && Object.hasOwn(o.labels, NETWORK_LABEL) ? o.labels[NETWORK_LABEL] : undefined;
  const network = o.network ?? label ?? '';
  const meshNetworks = o.meshNetworks === undefined ? undefined : readMeshNetworks(o.meshNetworks, 'createMesh: `meshNetworks`');
  // The workload's IP family, when its IP is given: gateways of the other family are not reachable (istiod, single-stack proxies).
  const family = o.sourceIp === undefined ? 0 : isIP(o.sourceIp);
  return Object.freeze({ network, meshNetworks, ...(family === 0 ? {} : { ipFamily: family as 4 | 6 }) });
}
