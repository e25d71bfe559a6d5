/**
 * Types shared by several Istio resources.
 *
 * @module
 */

/** Kubernetes object metadata, the parts meshlet reads. */
export interface ObjectMeta {
  /** Resource name (DNS-1123 subdomain). */
  name: string;
  /**
   * Namespace. Short host names in the resource resolve against it.
   * @defaultValue the loader's default namespace, `default`
   */
  namespace?: string;
  /** Labels. */
  labels?: Record<string, string>;
  /** Annotations; `istio.io/dry-run` is read for AuthorizationPolicy. */
  annotations?: Record<string, string>;
  /** Creation time (RFC 3339); the oldest resource wins conflicts, as in Istio. Without it, file order decides. */
  creationTimestamp?: string;
  /** Opaque version set by a store; carried, not interpreted. */
  resourceVersion?: string;
  /** Opaque id set by a store; carried, not interpreted. */
  uid?: string;
  /** Generation set by a store; carried, not interpreted. */
  generation?: number;
}

/** A string matcher: exactly one of `exact`, `prefix` or `regex` (RE2 syntax, full match). */
export interface StringMatch {
  exact?: string;
  prefix?: string;
  /** RE2 regular expression that must match the whole value. `"*"` means "present" in header matches. */
  regex?: string;
}

/** A percentage in [0, 100]; 0 or at least 0.0001. */
export interface Percent {
  value: number;
}

/** A port on a service. */
export interface PortSelector {
  number: number;
}

/** Networking-style workload selector (`labels`). */
export interface WorkloadSelector {
  labels?: Record<string, string>;
}

/** Security/telemetry-style workload selector (`matchLabels`). */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
}

/** Reference to a policy target (Gateway API style). */
export interface PolicyTargetReference {
  group?: string;
  kind: string;
  name: string;
  namespace?: string;
}
