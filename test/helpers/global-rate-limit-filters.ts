/**
 * EnvoyFilters for global rate limit tests, shaped as Istio's rate-limit task writes them: the
 * `envoy.filters.http.ratelimit` filter (SIDECAR_OUTBOUND, `INSERT_BEFORE` the router, its
 * `rate_limit_cluster` added by a CLUSTER ADD to the rate limit service's Kubernetes name) with
 * `filter` fields merged into its `typed_config`, and route / virtual host MERGE patches.
 */
import { ECHO_NS, RL_NS } from './rate-limit-service.ts';

export const SRV = `srv.${ECHO_NS}.svc.cluster.local`;

const RL = 'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit';
export const RL_PER_ROUTE = 'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute';

/** The HTTP_FILTER patch (domain `echo-ratelimit`, the cluster `rate_limit_cluster`), `extra` merged into its typed_config. */
export function filterPatch(extra: Record<string, unknown> = {}): object {
  return {
    applyTo: 'HTTP_FILTER',
    match: { context: 'SIDECAR_OUTBOUND', listener: { filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager', subFilter: { name: 'envoy.filters.http.router' } } } } },
    patch: {
      operation: 'INSERT_BEFORE',
      value: {
        name: 'envoy.filters.http.ratelimit',
        typed_config: { '@type': RL, domain: 'echo-ratelimit', rate_limit_service: { grpc_service: { envoy_grpc: { cluster_name: 'rate_limit_cluster' } }, transport_api_version: 'V3' }, timeout: '10s', ...extra },
      },
    },
  };
}

/** The CLUSTER ADD patch of `rate_limit_cluster`. */
export function clusterPatch(): object {
  return {
    applyTo: 'CLUSTER',
    match: { context: 'SIDECAR_OUTBOUND', cluster: { service: `ratelimit.${RL_NS}.svc.cluster.local` } },
    patch: {
      operation: 'ADD',
      value: {
        name: 'rate_limit_cluster',
        type: 'STRICT_DNS',
        load_assignment: { cluster_name: 'rate_limit_cluster', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: `ratelimit.${RL_NS}.svc.cluster.local`, port_value: 8081 } } } }] }] },
      },
    },
  };
}

/** A VIRTUAL_HOST MERGE on `srv`'s virtual host. */
export function vhostPatch(value: Record<string, unknown>): object {
  return { applyTo: 'VIRTUAL_HOST', match: { context: 'SIDECAR_OUTBOUND', routeConfiguration: { vhost: { name: `${SRV}:80` } } }, patch: { operation: 'MERGE', value } };
}

/** An HTTP_ROUTE MERGE on `srv`'s routes. */
export function routePatch(value: Record<string, unknown>): object {
  return { applyTo: 'HTTP_ROUTE', match: { context: 'SIDECAR_OUTBOUND', routeConfiguration: { vhost: { name: `${SRV}:80`, route: { action: 'ANY' } } } }, patch: { operation: 'MERGE', value } };
}

/** The `:path` → `PATH` action of Istio's task. */
export const PATH_ACTION = { actions: [{ request_headers: { header_name: ':path', descriptor_key: 'PATH' } }] };

/** An EnvoyFilter for the workload `app: clt`. */
export function envoyFilter(name: string, patches: object[]): object {
  return { apiVersion: 'networking.istio.io/v1alpha3', kind: 'EnvoyFilter', metadata: { name, namespace: 'istio-system' }, spec: { workloadSelector: { labels: { app: 'clt' } }, configPatches: patches } };
}
