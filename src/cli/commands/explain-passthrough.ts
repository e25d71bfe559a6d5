/**
 * `meshlet explain` for a host outside the mesh under ALLOW_ANY: the PassthroughCluster the call
 * goes to, as a destination (its connect timeout is the mesh's, `--mesh-config`'s `connectTimeout`
 * or Istio's 10 s), in the text and in the JSON/YAML document.
 *
 * @module
 */
import type { Explanation } from '../../outbound/explain.ts';
import { formatHostPort } from '../../core/host-port.ts';
import { out } from '../args.ts';

/** The PassthroughCluster of a `passthrough` outcome, in the shape of the document's other destinations. */
export function passthroughDestinations(e: Explanation) {
  if (e.outcome !== 'passthrough') return [];
  return e.targets.map((t) => {
    const colon = t.destination.lastIndexOf(':');
    const host = t.destination.slice(0, colon);
    return {
      tls: null,
      // The host, as the other destinations' (an IPv6 address without the brackets of its `[::1]:80` form).
      host: host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host,
      port: Number(t.destination.slice(colon + 1)),
      subset: null,
      weight: 100,
      percent: t.sharePercent,
      cluster: t.cluster ?? null,
      missing: null,
      destinationRules: [] as string[],
      trafficPolicy: null,
      loadBalancer: t.loadBalancer ?? null,
      connectionPool: t.connectionPool ?? null,
      outlierDetection: null,
      retryBudget: null,
      network: null,
      endpoints: [] as { endpoint: string; labels: Record<string, string>; locality: string; tls: string | null; gateway: string | null }[],
    };
  });
}

/** Prints the PassthroughCluster destination of a call no virtual host serves (none for REGISTRY_ONLY); returns the exit code, 0. */
export function printPassthrough(dests: readonly { host: string; port: number; percent: number; cluster: string | null; loadBalancer: string | null; connectionPool: string | null }[]): number {
  for (const d of dests) {
    out('Destinations:');
    // An address as Envoy prints one: `[::1]:80` for IPv6.
    out(`  ${formatHostPort(d.host, d.port)}  ${d.percent}%  ${d.cluster}`);
    out(`    load balancing:     ${d.loadBalancer}`);
    out(`    connection pool:    ${d.connectionPool}`);
  }
  return 0;
}
