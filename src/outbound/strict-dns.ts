/**
 * The hosts of a STRICT_DNS cluster (ServiceEntry `resolution: DNS`, as Istio's
 * `convertResolution` in `pilot/pkg/networking/core/cluster.go` makes it): each endpoint whose
 * address is a name stands for one host per address of the name's last answer, with the
 * endpoint's port, labels, locality and weight (Envoy's `ResolveTarget` makes a `HostImpl` per
 * address with the endpoint's metadata and weight), keyed `address:port` so balancing, outlier
 * detection, limits and telemetry see addresses. The name stays the host's `hostname` (TLS and
 * Host keep it). Endpoints with an IP address are hosts as they are.
 *
 * @module
 */
import { isIP } from 'node:net';
import type { Endpoint } from '../config/registry.ts';
import { formatHostPort } from '../core/host-port.ts';
import type { DnsTarget } from './dns-target.ts';

/** Endpoints made from one endpoint's answer, by key: the same objects while the endpoint and the address are the same. */
const derived = new WeakMap<Endpoint, Map<string, Endpoint>>();

function resolvedEndpoint(ep: Endpoint, address: string, key: string): Endpoint {
  let byAddress = derived.get(ep);
  if (byAddress === undefined) {
    byAddress = new Map();
    derived.set(ep, byAddress);
  }
  let d = byAddress.get(key);
  if (d === undefined || d.address !== address) {
    d = Object.freeze({ ...ep, address, key, hostname: ep.address });
    byAddress.set(key, d);
  }
  return d;
}

/** Whether an endpoint's address is a name to resolve (not an IP address, not a Unix socket). */
export function isDnsName(address: string): boolean {
  return address !== '' && isIP(address) === 0 && !address.startsWith('unix:');
}

/**
 * The hosts of a LOGICAL_DNS cluster (`resolution: DNS_ROUND_ROBIN`; Envoy's
 * `logical_dns_cluster.cc`): each endpoint whose address is a name is one host, keyed by the
 * name (its state outlives new answers), whose address is the first of the latest non-empty
 * answer — new connections go there, open ones finish where they are. No answer yet, or never a
 * non-empty one: no host.
 */
export function logicalDnsEndpoints(endpoints: readonly Endpoint[], targets: Map<string, DnsTarget>, make: (name: string) => DnsTarget): readonly Endpoint[] {
  const out: Endpoint[] = [];
  forEachTarget(endpoints, targets, make, out, (ep, t) => {
    if (t.firstAddress !== undefined) out.push(resolvedEndpoint(ep, t.firstAddress, ep.key));
  });
  return out;
}

/**
 * The hosts `endpoints` stand for now. `targets` holds the names being resolved, by name: a
 * name no longer named is closed and forgotten, a new one made with `make` (it has no hosts
 * until its first answer).
 */
export function strictDnsEndpoints(endpoints: readonly Endpoint[], targets: Map<string, DnsTarget>, make: (name: string) => DnsTarget): readonly Endpoint[] {
  const out: Endpoint[] = [];
  forEachTarget(endpoints, targets, make, out, (ep, t) => {
    for (const a of t.addresses ?? []) out.push(resolvedEndpoint(ep, a, formatHostPort(a, ep.port)));
  });
  return out;
}

/** Calls `f` for each endpoint named by a DNS name with its target (made when new); IP endpoints go to `out` as they are; targets no longer named are closed. */
function forEachTarget(endpoints: readonly Endpoint[], targets: Map<string, DnsTarget>, make: (name: string) => DnsTarget, out: Endpoint[], f: (ep: Endpoint, t: DnsTarget) => void): void {
  const named = new Set<string>();
  for (const ep of endpoints) {
    if (!isDnsName(ep.address)) {
      out.push(ep);
      continue;
    }
    named.add(ep.address);
    let t = targets.get(ep.address);
    if (t === undefined) {
      t = make(ep.address);
      targets.set(ep.address, t);
    }
    f(ep, t);
  }
  for (const [name, t] of targets) {
    if (named.has(name)) continue;
    t.close();
    targets.delete(name);
  }
}
