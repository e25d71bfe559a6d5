/**
 * The labels Istio adds to every endpoint from where it runs (`AugmentLabels` in
 * `pilot/pkg/serviceregistry/util/label`), so DestinationRule subsets and selectors can match
 * on them: region, zone and subzone from the locality, the cluster, and the network.
 *
 * @module
 */

/** `topology.kubernetes.io/region`. */
export const REGION_LABEL = 'topology.kubernetes.io/region';
/** `topology.kubernetes.io/zone`. */
export const ZONE_LABEL = 'topology.kubernetes.io/zone';
/** `topology.istio.io/subzone`. */
export const SUBZONE_LABEL = 'topology.istio.io/subzone';
/** `topology.istio.io/cluster`. */
export const CLUSTER_LABEL = 'topology.istio.io/cluster';
/** `topology.istio.io/network`. */
export const NETWORK_LABEL = 'topology.istio.io/network';
/** `topology.istio.io/locality`: a workload's locality given as a label (`.` for `/`). */
export const LOCALITY_LABEL = 'topology.istio.io/locality';
/** `istio-locality`: the older name of {@link LOCALITY_LABEL}. */
export const LEGACY_LOCALITY_LABEL = 'istio-locality';

/**
 * The cluster every endpoint is in: meshlet's registry is one cluster, and Istio names its
 * cluster `Kubernetes` unless `CLUSTER_ID` says otherwise.
 */
export const DEFAULT_CLUSTER_ID = 'Kubernetes';

/** Istio's `SplitLocalityLabel`: `region/zone/subzone` → its parts ('' when absent). */
export function splitLocality(locality: string): [region: string, zone: string, subzone: string] {
  const items = locality.split('/');
  return [items[0] ?? '', items[1] ?? '', items[2] ?? ''];
}

/**
 * The locality of a workload as Istio derives it: its `locality` field, else the
 * `topology.istio.io/locality` (or legacy `istio-locality`) label, where Kubernetes label
 * syntax forces `.` for `/` (`us-east.zone-a` → `us-east/zone-a`).
 */
export function workloadLocality(locality: string | undefined, labels: Readonly<Record<string, string>>): string {
  if (locality !== undefined && locality !== '') return locality;
  const label = Object.hasOwn(labels, LOCALITY_LABEL) ? labels[LOCALITY_LABEL] : Object.hasOwn(labels, LEGACY_LOCALITY_LABEL) ? labels[LEGACY_LOCALITY_LABEL] : undefined;
  if (label === undefined || label === '') return '';
  return label.includes('/') ? label : label.replaceAll('.', '/');
}

/**
 * Istio's `AugmentLabels`: a copy of `labels` with `topology.kubernetes.io/region`,
 * `topology.kubernetes.io/zone` and `topology.istio.io/subzone` from the locality (each only
 * when that part is set, replacing a label of the same key), `topology.istio.io/cluster`, and
 * `topology.istio.io/network` from the network unless the workload labels it already.
 * (Istio also adds `kubernetes.io/hostname` for pods on a node; meshlet's workloads have none.)
 */
export function augmentLabels(labels: Readonly<Record<string, string>>, locality: string, network: string, clusterId = DEFAULT_CLUSTER_ID): Readonly<Record<string, string>> {
  const out: Record<string, string> = Object.create(null);
  for (const k of Object.keys(labels)) out[k] = labels[k] as string;
  const [region, zone, subzone] = splitLocality(locality);
  if (region !== '') out[REGION_LABEL] = region;
  if (zone !== '') out[ZONE_LABEL] = zone;
  if (subzone !== '') out[SUBZONE_LABEL] = subzone;
  if (clusterId !== '') out[CLUSTER_LABEL] = clusterId;
  if (network !== '' && (out[NETWORK_LABEL] === undefined || out[NETWORK_LABEL] === '')) out[NETWORK_LABEL] = network;
  return Object.freeze(out);
}
