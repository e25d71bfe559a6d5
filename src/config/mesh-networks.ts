/**
 * Istio's MeshNetworks (the `istio` ConfigMap's `data.meshNetworks`): which network each endpoint
 * is on (`endpoints: [{fromCidr}|{fromRegistry}]`) and the east-west gateways that reach a
 * network from outside it (`gateways: [{address|registryServiceName, port}]`), read and validated
 * as istiod's `ValidateMeshNetworks` does (every issue, with its path).
 *
 * @module
 */
import { isIP } from 'node:net';
import { parse } from 'yaml';
import { InvalidArgumentError } from '../core/errors.ts';

/**
 * One rule placing endpoints on a network: those whose address is in `fromCidr`, or every
 * endpoint of the registry `fromRegistry` (meshlet has one registry, named `Kubernetes`).
 * @category Mesh
 */
export interface MeshNetworkEndpoints {
  readonly fromCidr?: string;
  readonly fromRegistry?: string;
}

/**
 * A gateway into a network: an `address` (an IP address, or a host name the mesh resolves — A and
 * AAAA — into one gateway per address, as istiod does), or `registryServiceName` — the Service
 * whose external addresses (`status.loadBalancer.ingress`, `externalIPs`) are the gateway's (with a
 * `fromRegistry` rule naming this registry); `port` is its mTLS passthrough port (Istio's 15443).
 * @category Mesh
 */
export interface MeshNetworkGateway {
  readonly address?: string;
  readonly registryServiceName?: string;
  readonly port: number;
  readonly locality?: string;
}

/** One network of {@link MeshNetworks}. @category Mesh */
export interface MeshNetwork {
  readonly endpoints?: readonly MeshNetworkEndpoints[];
  readonly gateways?: readonly MeshNetworkGateway[];
}

/**
 * Istio's MeshNetworks: network name → where its endpoints are and its gateways.
 * @category Mesh
 */
export interface MeshNetworks {
  readonly networks: Readonly<Record<string, MeshNetwork>>;
}

/**
 * What `meshNetworks` accepts: YAML/JSON text, the object, or the `istio` ConfigMap (its `data.meshNetworks`).
 * @category Mesh
 */
export type MeshNetworksInput = string | MeshNetworks | { readonly kind: 'ConfigMap'; readonly data?: Readonly<Record<string, string>> };

/** Istio's `labels.IsDNS1123Label` (upper case allowed, as `Kubernetes`). */
const REGISTRY_NAME = /^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;
const FQDN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/i;

/** Istio's `ValidateFQDN`: at most 255 characters, DNS-1123 labels of at most 63. */
export const isFqdn = (name: string): boolean => name.length > 0 && name.length <= 255 && FQDN.test(name) && name.split('.').every((l) => l.length <= 63);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `a.b.c.d/n` or `x::y/n`: undefined when valid, else why not. */
export function cidrProblem(cidr: string): string | undefined {
  const slash = cidr.indexOf('/');
  if (slash < 0) return `"${cidr}" is not a CIDR (address/prefix, e.g. 10.1.0.0/16)`;
  const family = isIP(cidr.slice(0, slash));
  const bits = cidr.slice(slash + 1);
  if (family === 0) return `"${cidr}" is not a CIDR: "${cidr.slice(0, slash)}" is not an IP address`;
  const max = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return `"${cidr}" is not a CIDR: the prefix length must be 0 to ${max}`;
  return undefined;
}

function checkNetwork(name: string, raw: unknown, issues: string[]): MeshNetwork {
  const at = `networks.${name}`;
  if (!isObject(raw)) {
    issues.push(`${at} must be a mapping with endpoints and gateways, got ${JSON.stringify(raw)}`);
    return {};
  }
  for (const k of Object.keys(raw)) if (k !== 'endpoints' && k !== 'gateways') issues.push(`${at}.${k} is not a field of a network (endpoints, gateways)`);
  const endpoints: MeshNetworkEndpoints[] = [];
  const gateways: MeshNetworkGateway[] = [];
  if (raw.endpoints !== undefined && raw.endpoints !== null && !Array.isArray(raw.endpoints)) issues.push(`${at}.endpoints must be a list, got ${JSON.stringify(raw.endpoints)}`);
  for (const [i, e] of (Array.isArray(raw.endpoints) ? raw.endpoints : []).entries()) {
    const p = `${at}.endpoints[${i}]`;
    if (!isObject(e)) {
      issues.push(`${p} must be {fromCidr} or {fromRegistry}, got ${JSON.stringify(e)}`);
      continue;
    }
    const set = ['fromCidr', 'fromRegistry'].filter((k) => e[k] !== undefined);
    for (const k of Object.keys(e)) if (k !== 'fromCidr' && k !== 'fromRegistry') issues.push(`${p}.${k} is not a field of network endpoints (fromCidr, fromRegistry)`);
    if (set.length !== 1) {
      issues.push(`${p} must set exactly one of fromCidr, fromRegistry (it sets ${set.length === 0 ? 'neither' : 'both'})`);
      continue;
    }
    if (e.fromCidr !== undefined) {
      const why = typeof e.fromCidr === 'string' ? cidrProblem(e.fromCidr) : `must be a string, got ${JSON.stringify(e.fromCidr)}`;
      if (why !== undefined) issues.push(`${p}.fromCidr: ${why}`);
      else endpoints.push({ fromCidr: e.fromCidr as string });
    } else if (typeof e.fromRegistry !== 'string' || e.fromRegistry.length > 63 || !REGISTRY_NAME.test(e.fromRegistry)) {
      issues.push(`${p}.fromRegistry: invalid registry name ${JSON.stringify(e.fromRegistry)} (a DNS-1123 label such as Kubernetes)`);
    } else endpoints.push({ fromRegistry: e.fromRegistry });
  }
  if (raw.gateways !== undefined && raw.gateways !== null && !Array.isArray(raw.gateways)) issues.push(`${at}.gateways must be a list, got ${JSON.stringify(raw.gateways)}`);
  for (const [i, g] of (Array.isArray(raw.gateways) ? raw.gateways : []).entries()) {
    const p = `${at}.gateways[${i}]`;
    if (!isObject(g)) {
      issues.push(`${p} must be {address|registryServiceName, port}, got ${JSON.stringify(g)}`);
      continue;
    }
    for (const k of Object.keys(g)) if (!['address', 'registryServiceName', 'port', 'locality'].includes(k)) issues.push(`${p}.${k} is not a field of a network gateway (address, registryServiceName, port, locality)`);
    const set = ['address', 'registryServiceName'].filter((k) => g[k] !== undefined);
    let ok = true;
    if (set.length !== 1) {
      issues.push(`${p} must set exactly one of address, registryServiceName (it sets ${set.length === 0 ? 'neither' : 'both'})`);
      ok = false;
    } else if (g.address !== undefined) {
      // istiod (RESOLVE_HOSTNAME_GATEWAYS, on by default): an IP address, or a host name it resolves.
      if (typeof g.address !== 'string' || (isIP(g.address) === 0 && !isFqdn(g.address))) {
        issues.push(`${p}.address: ${JSON.stringify(g.address)} is not a valid IP address or DNS name`);
        ok = false;
      }
    } else if (typeof g.registryServiceName !== 'string' || !isFqdn(g.registryServiceName)) {
      issues.push(`${p}.registryServiceName: ${JSON.stringify(g.registryServiceName)} is not a valid host name (a Service's FQDN, e.g. istio-eastwestgateway.istio-system.svc.cluster.local)`);
      ok = false;
    }
    if (typeof g.port !== 'number' || !Number.isInteger(g.port) || g.port < 1 || g.port > 65535) {
      issues.push(`${p}.port: must be a port number 1-65535, got ${JSON.stringify(g.port)}`);
      ok = false;
    }
    if (g.locality !== undefined && typeof g.locality !== 'string') {
      issues.push(`${p}.locality: must be a string, got ${JSON.stringify(g.locality)}`);
      ok = false;
    }
    if (ok) gateways.push(g as unknown as MeshNetworkGateway);
  }
  return { endpoints, gateways };
}

/**
 * MeshNetworks from YAML text, an object, or the `istio` ConfigMap (`data.meshNetworks`), checked
 * as istiod's `ValidateMeshNetworks` checks it; throws an `InvalidArgumentError` naming every
 * issue and where it is (`where`: `createMesh: \`meshNetworks\``).
 */
export function readMeshNetworks(input: unknown, where: string): MeshNetworks {
  let raw: unknown = input;
  if (isObject(raw) && raw.kind === 'ConfigMap') {
    const text = isObject(raw.data) ? raw.data.meshNetworks : undefined;
    if (typeof text !== 'string') throw new InvalidArgumentError(`${where} is a ConfigMap without a \`data.meshNetworks\` text (Istio keeps MeshNetworks in the \`istio\` ConfigMap's data.meshNetworks)`);
    raw = text;
  }
  if (typeof raw === 'string') {
    try {
      raw = parse(raw);
    } catch (err) {
      throw new InvalidArgumentError(`${where} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
    }
    if (raw === null || raw === undefined) return { networks: {} };
  }
  if (!isObject(raw)) throw new InvalidArgumentError(`${where} must be Istio's MeshNetworks ({networks: {<name>: {endpoints, gateways}}}: YAML text, an object, or the \`istio\` ConfigMap), got ${Array.isArray(raw) ? 'a list' : JSON.stringify(raw)}`);
  const issues: string[] = [];
  for (const k of Object.keys(raw)) if (k !== 'networks') issues.push(`${k} is not a field of MeshNetworks (networks)`);
  const entries: [string, MeshNetwork][] = [];
  if (raw.networks !== undefined && raw.networks !== null) {
    if (!isObject(raw.networks)) issues.push(`networks must be a mapping of network name to {endpoints, gateways}, got ${JSON.stringify(raw.networks)}`);
    else for (const [name, n] of Object.entries(raw.networks)) entries.push([name, checkNetwork(name, n, issues)]);
  }
  // Own properties only (a network named __proto__ stays a network).
  const networks: Record<string, MeshNetwork> = Object.fromEntries(entries);
  if (issues.length > 0) throw new InvalidArgumentError(`${where} is invalid: ${issues.join('; ')}`);
  return Object.freeze({ networks: Object.freeze(networks) });
}
