/**
 * Validation of `ServiceEntrySpec`, following Istio's `ValidateServiceEntry` and the
 * ServiceEntry CRD rules: hosts, addresses, ports, the `resolution`-specific rules for
 * endpoints and hosts, `exportTo`, and the workload selector.
 *
 * @module
 */
import type { FieldPath } from '../issues.ts';
import type { WorkloadSelector } from '../types/common.ts';
import type { ServiceEntrySpec, ServicePort } from '../types/networking.ts';
import { checkDnsLabel, checkHost, checkIpOrCidr, isIpAddress, workloadSelector } from './common.ts';
import { exportToList } from './shared-networking.ts';
import { fail, list, metadataValue, nonEmpty, obj, oneOf, port, req, strWith, unsupported, warn, type Ctx, type Validator } from './schema.ts';
import { endpointSpec, isUnixAddress } from './workload-entry.ts';
import type { ObjectMeta } from '../types/common.ts';
import { checkTrafficDistributionAnnotation } from './kube-service.ts';

/** Port protocols a ServiceEntry may declare (Istio compares them ignoring case). */
const PROTOCOLS = ['HTTP', 'HTTPS', 'GRPC', 'HTTP2', 'MONGO', 'TCP', 'TLS'] as const;
/** Protocols whose requests name their host (HTTP Host header). */
const HTTP_PROTOCOLS = ['HTTP', 'HTTP2', 'GRPC'];
/** Protocols whose connections name their host (TLS SNI). */
const TLS_PROTOCOLS = ['HTTPS', 'TLS'];
/** Protocols meshlet accepts but passes through. */
/** Ports meshlet does not route (TLS is routed as HTTPS is: an `https://` call to it is HTTP over the app's TLS). */
const PASSTHROUGH_PROTOCOLS = ['TCP', 'MONGO'];
/** Protocols Istio counts as TCP (`protocol.IsTCP`): HTTPS is TLS over TCP. */
const TCP_PROTOCOLS = ['TCP', 'HTTPS', 'TLS', 'MONGO'];
/** Istio's label opting a ServiceEntry out of IP auto-allocation. */
const AUTOALLOCATE_LABEL = 'networking.istio.io/enable-autoallocate-ip';
/** Istio's label binding a resource to a waypoint (ambient). */
const USE_WAYPOINT_LABEL = 'istio.io/use-waypoint';

const seHost = strWith((h) => (h === '*' ? 'a bare "*" host is not allowed in a ServiceEntry; use a wildcard prefix such as "*.example.com"' : checkHost(h)));

const protocol = strWith((p) => (PROTOCOLS.includes(p.toUpperCase() as (typeof PROTOCOLS)[number]) ? undefined : `unsupported protocol "${p}"; use one of ${PROTOCOLS.join(', ')}`));

const servicePort = obj<ServicePort>(
  {
    number: req(port),
    protocol,
    name: strWith((n) => (checkDnsLabel(n) === undefined ? undefined : `invalid port name "${n}": must be a DNS-1123 label (lowercase letters, digits and "-")`)),
    targetPort: port,
  },
  {
    check: (p, path, ctx) => {
      const proto = p.protocol?.toUpperCase();
      if (proto !== undefined && PASSTHROUGH_PROTOCOLS.includes(proto)) {
        const at = [...path, 'protocol'];
        ctx.issues.at(
          ctx.subject,
          at,
          'warning',
          `not supported by meshlet: ${p.protocol} ports; meshlet handles HTTP, HTTP2 and gRPC traffic (also over the app's TLS: HTTPS and TLS ports); TCP ports are passed through untouched`,
          'MESHLET0002',
        );
      }
    },
  },
);

/** The networking selector (`labels`), with Istio's warning for a selector without labels. */
const seWorkloadSelector: Validator<WorkloadSelector> = (v, path, ctx) => {
  const sel = workloadSelector(v, path, ctx);
  if (sel !== undefined && Object.keys(sel.labels ?? {}).length === 0) {
    warn(ctx, path, 'has no labels, so it selects every workload in the namespace');
  }
  return sel;
};

/** Validates a ServiceEntrySpec. */
export const serviceEntrySpec: Validator<ServiceEntrySpec> = obj<ServiceEntrySpec>(
  {
    hosts: req(list(seHost, { min: 1, max: 256 })),
    addresses: unsupported(
      list(strWith(checkIpOrCidr), { max: 256 }),
      'meshlet addresses services by host name; VIPs and CIDRs are not intercepted',
    ),
    ports: list(servicePort, { max: 256 }),
    location: oneOf(['MESH_EXTERNAL', 'MESH_INTERNAL']),
    resolution: oneOf(['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN', 'DYNAMIC_DNS']),
    endpoints: list(endpointSpec, { max: 4096 }),
    workloadSelector: seWorkloadSelector,
    exportTo: exportToList({ allowNone: true }),
    subjectAltNames: list(nonEmpty),
  },
  { oneOf: [['endpoints', 'workloadSelector']], check: checkServiceEntry },
);

/** The object items of a raw list with their indexes (read raw so paths match the file even when the typed list dropped bad items). */
function rawItems(v: unknown): [number, Record<string, unknown>][] {
  if (!Array.isArray(v)) return [];
  return v.flatMap((x: unknown, i) => (typeof x === 'object' && x !== null && !Array.isArray(x) ? [[i, x as Record<string, unknown>] as [number, Record<string, unknown>]] : []));
}

const strOf = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** Cross-field rules: ports, addresses, endpoint ports and everything that depends on `resolution`. */
function checkServiceEntry(se: ServiceEntrySpec, path: FieldPath, ctx: Ctx, raw: Record<string, unknown>): void {
  const resolution = se.resolution ?? 'NONE';
  const ports = rawItems(raw.ports);
  const endpoints = rawItems(raw.endpoints);
  const hosts = Array.isArray(raw.hosts) ? raw.hosts : [];
  const portNames = checkPorts(ports, resolution, [...path, 'ports'], ctx);
  const addresses = Array.isArray(raw.addresses) ? raw.addresses : [];

  // Istio warns about partial wildcards ("*foo.com") except with DYNAMIC_DNS.
  if (resolution !== 'DYNAMIC_DNS') {
    hosts.forEach((h: unknown, i) => {
      if (typeof h === 'string' && h.includes('*') && h !== '*' && !h.startsWith('*.')) {
        warn(ctx, [...path, 'hosts', i], `partial wildcard "${h}": Istio warns that partial wildcards are allowed only with resolution DYNAMIC_DNS`);
      }
    });
  }

  // Applied like a Service's (config/traffic-distribution.ts); a value Istio does not know prefers nothing.
  checkTrafficDistributionAnnotation(ctx.metadata as ObjectMeta | undefined, ctx);

  // Without addresses, a TCP port can be told apart only by an auto-allocated IP (Istio: not for NONE, nor when opted out).
  const autoAllocation = resolution !== 'NONE' && metadataValue(ctx, 'labels', AUTOALLOCATE_LABEL)?.toLowerCase() !== 'false';
  if (addresses.length === 0 && !autoAllocation) {
    const tcp = ports.find(([, p]) => {
      const proto = strOf(p.protocol);
      return proto === undefined || proto === 'TCP';
    });
    if (tcp !== undefined) {
      warn(ctx, [...path, 'ports', tcp[0], 'protocol'], 'addresses are required for ports serving TCP (or no protocol) when IP auto-allocation is not enabled (Istio: resolution NONE, or the networking.istio.io/enable-autoallocate-ip: "false" label)');
    }
  }

  // Istio: with DNS, addresses and a TCP port, several hosts cannot be told apart.
  if ((resolution === 'DNS' || resolution === 'DNS_ROUND_ROBIN') && addresses.length > 0 && hosts.length > 1) {
    const tcp = ports.find(([, p]) => TCP_PROTOCOLS.includes(strOf(p.protocol)?.toUpperCase() ?? 'TCP'));
    if (tcp !== undefined) warn(ctx, [...path, 'hosts'], 'a ServiceEntry with addresses and a TCP port should have one host: the hosts cannot be told apart');
  }

  // Addresses: CIDR blocks only make sense when no DNS lookup picks the destination.
  if (Array.isArray(raw.addresses)) {
    raw.addresses.forEach((a: unknown, i) => {
      if (typeof a === 'string' && a.includes('/') && resolution !== 'NONE' && resolution !== 'STATIC') {
        fail(ctx, [...path, 'addresses', i], `CIDR blocks are allowed only with resolution NONE or STATIC, not ${resolution}`);
      }
    });
  }

  // Endpoint port names must name a declared port.
  for (const [i, ep] of endpoints) {
    const epPorts = ep.ports;
    if (typeof epPorts !== 'object' || epPorts === null) continue;
    for (const name of Object.keys(epPorts)) {
      if (!portNames.has(name)) {
        const declared = [...portNames].filter((n) => n !== '');
        fail(ctx, [...path, 'endpoints', i, 'ports', name], `"${name}" is not a port of this ServiceEntry (${declared.length > 0 ? `declared: ${declared.join(', ')}` : 'it declares no named ports'})`);
      }
    }
  }

  switch (resolution) {
    case 'NONE':
      if (endpoints.length > 0) fail(ctx, [...path, 'endpoints'], 'must be empty when resolution is NONE (the original destination address is used)');
      if (raw.workloadSelector !== undefined && raw.workloadSelector !== null) {
        warn(ctx, [...path, 'workloadSelector'], 'should not be set when resolution is NONE; it is ignored (the original destination address is used)');
      }
      break;
    case 'STATIC':
      for (const [i, ep] of endpoints) {
        const address = strOf(ep.address);
        if (address !== undefined && !isIpAddress(address) && !isUnixAddress(address)) {
          fail(ctx, [...path, 'endpoints', i, 'address'], `"${address}" must be an IP address or a unix:// path when resolution is STATIC (use DNS for host names)`);
        }
        if (isUnixAddress(address) && ports.length !== 1) {
          fail(ctx, [...path, 'endpoints', i, 'address'], 'a unix:// endpoint needs exactly one port in the ServiceEntry');
        }
      }
      if (endpoints.length === 0 && (raw.workloadSelector === undefined || raw.workloadSelector === null)) {
        warn(ctx, path, 'resolution STATIC with no endpoints and no workloadSelector: the service has no endpoints, so calls fail with 503 (no healthy upstream)');
      }
      break;
    case 'DNS':
    case 'DNS_ROUND_ROBIN':
      if (endpoints.length === 0) {
        hosts.forEach((h: unknown, i) => {
          if (typeof h === 'string' && h.startsWith('*')) {
            fail(ctx, [...path, 'hosts', i], `"${h}" must be a DNS name (no wildcard) when resolution is ${resolution} and there are no endpoints: the host is what gets resolved`);
          }
        });
      }
      if (resolution === 'DNS_ROUND_ROBIN' && endpoints.length > 1) {
        fail(ctx, [...path, 'endpoints'], `resolution DNS_ROUND_ROBIN allows at most one endpoint, got ${endpoints.length}`);
      }
      for (const [i, ep] of endpoints) {
        const address = strOf(ep.address);
        if (address === undefined || isUnixAddress(address)) {
          fail(ctx, [...path, 'endpoints', i, 'address'], `must be an IP address or a DNS name when resolution is ${resolution}`);
        }
      }
      // A workloadSelector is used with DNS too: the selected workloads are the endpoints (and the host is not).
      break;
    case 'DYNAMIC_DNS':
      hosts.forEach((h: unknown, i) => {
        if (typeof h === 'string' && !h.startsWith('*')) {
          fail(ctx, [...path, 'hosts', i], `"${h}" must be a wildcard such as "*.example.com" when resolution is DYNAMIC_DNS`);
        }
      });
      if (se.location === 'MESH_INTERNAL') {
        const waypoint = metadataValue(ctx, 'labels', USE_WAYPOINT_LABEL);
        if (waypoint !== undefined && waypoint !== '' && waypoint.toLowerCase() !== 'none') {
          fail(ctx, [...path, 'location'], `MESH_INTERNAL with resolution DYNAMIC_DNS is not supported with a waypoint (label ${USE_WAYPOINT_LABEL}: ${waypoint})`);
        }
      }
      if (endpoints.length > 0) fail(ctx, [...path, 'endpoints'], 'must be empty when resolution is DYNAMIC_DNS (the requested host name is resolved)');
      if (Array.isArray(raw.addresses) && raw.addresses.length > 0) fail(ctx, [...path, 'addresses'], 'must be empty when resolution is DYNAMIC_DNS');
      for (const [i, p] of ports) {
        const proto = strOf(p.protocol)?.toUpperCase();
        if (proto !== undefined && ![...HTTP_PROTOCOLS, 'TLS'].includes(proto)) {
          fail(ctx, [...path, 'ports', i, 'protocol'], `resolution DYNAMIC_DNS supports HTTP, HTTP2, GRPC and TLS ports only, got ${String(p.protocol)}`);
        }
      }
      break;
  }

  // With several hosts, a plain TCP port cannot tell them apart (Istio allows it only with NONE).
  if (resolution !== 'NONE' && hosts.length > 1) {
    const bad = ports.find(([, p]) => {
      const proto = strOf(p.protocol)?.toUpperCase() ?? '';
      return !HTTP_PROTOCOLS.includes(proto) && !TLS_PROTOCOLS.includes(proto);
    });
    if (bad !== undefined) {
      fail(ctx, [...path, 'ports', bad[0], 'protocol'], `a ServiceEntry with several hosts and resolution ${resolution} needs HTTP or TLS ports (the host is told by Host header or SNI), got ${strOf(bad[1].protocol) ?? 'no protocol'}`);
    }
  }
}

/** Checks port names and numbers are unique and names present; returns the declared names. */
function checkPorts(ports: [number, Record<string, unknown>][], resolution: string, path: FieldPath, ctx: Ctx): Set<string> {
  const names = new Map<string, number>();
  const numbers = new Map<number, number>();
  for (const [i, p] of ports) {
    const name = typeof p.name === 'string' ? p.name : undefined;
    if (name === undefined || name === '') {
      if (ports.length > 1) fail(ctx, [...path, i, 'name'], 'is required when a ServiceEntry has more than one port');
      else warn(ctx, [...path, i, 'name'], 'is missing; Istio rejects ServiceEntry ports without a name');
    } else {
      const first = names.get(name);
      if (first !== undefined) fail(ctx, [...path, i, 'name'], `port name "${name}" is already used by ports[${first}]`);
      else names.set(name, i);
    }
    if (typeof p.number === 'number') {
      const first = numbers.get(p.number);
      if (first !== undefined) fail(ctx, [...path, i, 'number'], `port ${p.number} is already declared by ports[${first}]`);
      else numbers.set(p.number, i);
    }
    if (p.targetPort !== undefined && p.targetPort !== null && resolution === 'NONE') {
      warn(ctx, [...path, i, 'targetPort'], 'has no effect when resolution is NONE');
    }
  }
  return new Set(names.keys());
}
