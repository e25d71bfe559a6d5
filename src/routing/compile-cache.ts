/**
 * What one compile of a workload's snapshot leaves for the next, so that a change to one
 * resource recompiles what depends on it and reuses the rest: the registry's services, the
 * clusters and the virtual hosts (with their routes) of everything unchanged are the objects
 * made last time. Besides the work, this saves the garbage: a snapshot of 10,000 resources made
 * anew on every change kept the young generation full of survivors (GC pauses of 30–60 ms).
 *
 * Reuse is decided by what each piece was made from, never by a guess:
 * - a service, by its declaring resource (the same object: validation hands out the same
 *   resource object while its document is unchanged) and what it selects ({@link RegistryCache});
 * - a cluster, by its service (the same object), port, subset and the DestinationRules merged
 *   for it (the same objects);
 * - a virtual host, by its service, its VirtualService (the same object) and port, and by the
 *   outcome of every lookup its routes made — each destination's service, port and cluster, or
 *   why it is missing — looked up again now and found identical.
 *
 * @module
 */
import type { MergedDestinationRule } from '../config/destination-policy.ts';
import { RegistryCache, type Service } from '../config/registry.ts';
import type { AnyResource, Resource } from '../config/resource.ts';
import type { Destination, ServicePort } from '../config/types/networking.ts';
import type { Cluster, VirtualHost } from './route-table.ts';

/** Where a destination leads: what a route target is made of besides its own fields. */
export interface Resolved {
  readonly host: string;
  readonly service: Service | undefined;
  readonly port: number;
  readonly cluster: Cluster | undefined;
  readonly missing: string | undefined;
}

/** One lookup a virtual host's routes made: a destination (or a service's default route) and where it led. */
export type Lookup =
  | { readonly dest: Destination; readonly namespace: string; readonly vhostPort: number | undefined; readonly resolved: Resolved }
  | { readonly service: Service; readonly port: ServicePort; readonly result: Cluster | string };

/** A virtual host made last time, and what it was made from. */
export interface MadeVhost {
  readonly service: Service | undefined;
  readonly vs: Resource<'VirtualService'> | undefined;
  readonly lookups: readonly Lookup[];
  readonly vhost: VirtualHost;
}

/** A cluster (or why there is none) made last time, and what it was made from. */
interface MadeCluster {
  readonly service: Service;
  readonly port: ServicePort;
  readonly rules: readonly unknown[] | undefined;
  readonly result: Cluster | string;
}

const samePort = (a: ServicePort, b: ServicePort): boolean => a === b || (a.number === b.number && a.name === b.name && a.protocol === b.protocol && a.targetPort === b.targetPort);
const sameRules = (a: readonly unknown[] | undefined, b: readonly unknown[] | undefined): boolean => a === b || (a !== undefined && b !== undefined && a.length === b.length && a.every((x, i) => x === b[i]));

/** Whether two lookups of the same destination found the same. */
export function sameResolved(a: Resolved, b: Resolved): boolean {
  return a.host === b.host && a.service === b.service && a.port === b.port && a.cluster === b.cluster && a.missing === b.missing;
}

/**
 * The memory of a workload's previous compile (see the module comment). Pass the same cache to
 * every compile for one workload; it keeps the last compile only.
 * @internal
 */
export class CompileCache {
  /** The services of the last registry build. */
  readonly registry = new RegistryCache();
  #workload = '';
  #clusters = new Map<string, MadeCluster>();
  #vhosts = new Map<string, MadeVhost>();
  #json = new Map<AnyResource, string>();
  #nextClusters = new Map<string, MadeCluster>();
  #nextVhosts = new Map<string, MadeVhost>();
  #nextJson = new Map<AnyResource, string>();

  /** Starts a compile for `workload` (a key of service, namespace and labels); another workload forgets everything. */
  begin(workload: string): void {
    if (workload === this.#workload) return;
    this.#workload = workload;
    this.#clusters = new Map();
    this.#vhosts = new Map();
  }

  /** The cluster `name` made last time from the same service, port and rules, else `make()`'s. */
  cluster(name: string, service: Service, port: ServicePort, dr: MergedDestinationRule | undefined, make: () => Cluster | string): Cluster | string {
    const rules = dr?.rules;
    const prior = this.#nextClusters.get(name) ?? this.#clusters.get(name);
    const result = prior !== undefined && prior.service === service && samePort(prior.port, port) && sameRules(prior.rules, rules) ? prior.result : make();
    this.#nextClusters.set(name, { service, port, rules, result });
    return result;
  }

  /** The virtual host `name` made last time, if made from the same service, VirtualService and port. */
  priorVhost(name: string, service: Service | undefined, vs: Resource<'VirtualService'> | undefined): MadeVhost | undefined {
    const prior = this.#vhosts.get(name);
    return prior !== undefined && prior.service === service && prior.vs === vs ? prior : undefined;
  }

  /** Keeps a virtual host (made or reused) for the next compile. */
  keepVhost(name: string, made: MadeVhost): void {
    this.#nextVhosts.set(name, made);
  }

  /** A resource's part of the content version (a JSON text), made once per resource object. */
  json(r: AnyResource, make: () => string): string {
    const s = this.#nextJson.get(r) ?? this.#json.get(r) ?? make();
    this.#nextJson.set(r, s);
    return s;
  }

  /** Ends a compile: what it did not use is forgotten. */
  end(): void {
    this.#clusters = this.#nextClusters;
    this.#vhosts = this.#nextVhosts;
    this.#json = this.#nextJson;
    this.#nextClusters = new Map();
    this.#nextVhosts = new Map();
    this.#nextJson = new Map();
  }
}
