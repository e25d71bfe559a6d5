/**
 * networking.istio.io `EnvoyFilter`, as meshlet reads it: only EnvoyFilters whose every patch
 * is one of the shapes of Istio's local rate limit task are kept (the others are skipped when
 * loaded, with a warning). The spec keeps Istio's own shape (so it travels to meshes and is
 * validated again there); `patch.value` keeps the Envoy config as written, in protobuf JSON
 * (snake_case or lowerCamelCase field names), and is interpreted when the mesh compiles it
 * (see `src/config/validate/local-rate-limit.ts` for what meshlet reads of it).
 *
 * @module
 */
import type { PolicyTargetReference, WorkloadSelector } from './common.ts';

/** Where a patch applies (`match.context`). */
export type PatchContext = 'ANY' | 'SIDECAR_INBOUND' | 'SIDECAR_OUTBOUND' | 'GATEWAY' | 'WAYPOINT';

/** What a patch patches (`applyTo`). */
export type ApplyTo =
  | 'INVALID'
  | 'LISTENER'
  | 'FILTER_CHAIN'
  | 'NETWORK_FILTER'
  | 'HTTP_FILTER'
  | 'ROUTE_CONFIGURATION'
  | 'VIRTUAL_HOST'
  | 'HTTP_ROUTE'
  | 'CLUSTER'
  | 'EXTENSION_CONFIG'
  | 'BOOTSTRAP'
  | 'LISTENER_FILTER';

/** How a patch applies (`patch.operation`). */
export type PatchOperation = 'INVALID' | 'MERGE' | 'ADD' | 'REMOVE' | 'INSERT_BEFORE' | 'INSERT_AFTER' | 'INSERT_FIRST' | 'REPLACE' | 'MERGE_AND_REPLACE_LIST';

/** `match.listener`. */
export interface ListenerMatch {
  portNumber?: number;
  portName?: string;
  name?: string;
  listenerFilter?: string;
  filterChain?: {
    name?: string;
    sni?: string;
    transportProtocol?: string;
    applicationProtocols?: string;
    transportSocket?: string;
    destinationPort?: number;
    filter?: { name?: string; subFilter?: { name?: string } };
  };
}

/** `match.routeConfiguration`. */
export interface RouteConfigurationMatch {
  portNumber?: number;
  portName?: string;
  gateway?: string;
  name?: string;
  vhost?: {
    name?: string;
    domainName?: string;
    route?: { name?: string; action?: 'ANY' | 'ROUTE' | 'REDIRECT' | 'DIRECT_RESPONSE' };
  };
}

/** `configPatches[].match`. */
export interface EnvoyConfigObjectMatch {
  context?: PatchContext;
  proxy?: { proxyVersion?: string; metadata?: Record<string, string> };
  listener?: ListenerMatch;
  routeConfiguration?: RouteConfigurationMatch;
  cluster?: { portNumber?: number; service?: string; subset?: string; name?: string };
  waypoint?: { portNumber?: number; route?: { name?: string }; filter?: { name?: string; subFilter?: { name?: string } } };
}

/** `configPatches[]`. */
export interface EnvoyConfigObjectPatch {
  applyTo?: ApplyTo;
  match?: EnvoyConfigObjectMatch;
  patch?: {
    operation?: PatchOperation;
    /** The Envoy config object, as written (protobuf JSON). */
    value?: Record<string, unknown>;
    filterClass?: 'UNSPECIFIED' | 'AUTHN' | 'AUTHZ' | 'STATS';
  };
}

/**
 * `EnvoyFilter.spec`.
 * @category Config
 */
export interface EnvoyFilterSpec {
  workloadSelector?: WorkloadSelector;
  /** Gateway and waypoint attachment: an EnvoyFilter with `targetRefs` never applies to a sidecar, nor to meshlet. */
  targetRefs?: PolicyTargetReference[];
  /** Order among EnvoyFilters of the same context: lower first. @defaultValue 0 */
  priority?: number;
  configPatches?: EnvoyConfigObjectPatch[];
}
