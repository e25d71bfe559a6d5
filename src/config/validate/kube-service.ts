/**
 * Validation of a Kubernetes core `v1` Service, with Kubernetes' own rules for the fields
 * meshlet uses (`ValidateService` in `pkg/apis/core/validation`): the name (DNS-1035), ports
 * (number, name, protocol, `targetPort` number or IANA service name, `appProtocol`, unique
 * names and port/protocol pairs), the selector, `type`, `clusterIP` and `externalName`.
 * Every other field of a real Service (`ipFamilies`, `sessionAffinity`, `status`, …) is
 * accepted; a field Kubernetes does not define is a warning (it is ignored), so a future
 * Kubernetes field never refuses a manifest.
 *
 * @module
 */
import { EXPORT_TO_ANNOTATION, parseExportTo } from '../hosts.ts';
import type { FieldPath } from '../issues.ts';
import type { ObjectMeta } from '../types/common.ts';
import type { KubeServicePort, KubeServiceSpec } from '../types/kubernetes.ts';
import { checkDnsLabel, checkDnsSubdomain, isIpAddress, labels } from './common.ts';
import { suggest } from '../../core/did-you-mean.ts';
import { bool, fail, int, list, oneOf, str, strWith, warn, type Ctx, type Validator } from './schema.ts';
import { KUBERNETES_TRAFFIC_DISTRIBUTIONS, parseTrafficDistribution, TRAFFIC_DISTRIBUTION_ANNOTATION } from '../traffic-distribution.ts';

const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/** Checks a Service name: a DNS-1035 label (Kubernetes' `ValidateServiceName`). */
export function checkServiceName(name: string): string | undefined {
  if (name.length > 63) return `"${name}" is longer than 63 characters`;
  return DNS1035_LABEL.test(name) ? undefined : `"${name}" is not a valid Service name: a DNS-1035 label (lowercase letters, digits and "-", starting with a letter and ending with a letter or digit)`;
}

/** Kubernetes' `IsValidPortName` (an IANA service name), used for named `targetPort`s. */
export function checkIanaPortName(name: string): string | undefined {
  if (name.length === 0 || name.length > 15) return `port name "${name}" must be 1 to 15 characters`;
  if (!/^[-a-z0-9]+$/.test(name)) return `port name "${name}" may contain only lowercase letters, digits and "-"`;
  if (!/[a-z]/.test(name)) return `port name "${name}" must contain at least one letter`;
  if (name.includes('--')) return `port name "${name}" must not contain "--"`;
  if (name.startsWith('-') || name.endsWith('-')) return `port name "${name}" must not begin or end with "-"`;
  return undefined;
}

const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/** Kubernetes' `IsQualifiedName` (`[prefix/]name`), the syntax of `appProtocol`. */
export function checkQualifiedName(s: string): string | undefined {
  const parts = s.split('/');
  if (parts.length > 2) return `"${s}" must be a name with an optional DNS prefix ("example.com/name")`;
  const name = parts[parts.length - 1] as string;
  if (parts.length === 2 && (parts[0] === '' || checkDnsSubdomain(parts[0] as string) !== undefined)) return `"${s}": prefix "${parts[0]}" is not a DNS subdomain`;
  if (name.length === 0 || name.length > 63 || !QUALIFIED_NAME.test(name)) {
    return `"${s}": the name part must be at most 63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit`;
  }
  return undefined;
}

/** `targetPort`: a port number, or the name of a workload port; 0 or "" mean unset (Kubernetes then uses `port`). */
const targetPort: Validator<number | string> = (v, path, ctx) => {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0 || v > 65535) return fail(ctx, path, `must be a port number 1-65535 or a port name, got ${v}`);
    return v;
  }
  if (typeof v === 'string') {
    if (v === '') return v;
    if (/^\d+$/.test(v)) return fail(ctx, path, `"${v}" is a number written as a string; write it without quotes`);
    const problem = checkIanaPortName(v);
    return problem === undefined ? v : fail(ctx, path, problem);
  }
  return fail(ctx, path, `must be a port number or a port name, got ${v === null ? 'null' : typeof v}`);
};

/** Fields of an object that Kubernetes defines: unknown ones are warned about and dropped. */
type Shape = Readonly<Record<string, Validator<unknown>>>;

function lenient<T>(shape: Shape, what: string, check?: (value: T, path: FieldPath, ctx: Ctx, raw: Record<string, unknown>) => void): Validator<T> {
  const known = Object.keys(shape);
  return (v, path, ctx) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(ctx, path, `must be an object, got ${Array.isArray(v) ? 'a list' : v === null ? 'null' : typeof v}`);
    const raw = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(raw)) {
      const p = [...path, key];
      const validate = shape[key];
      if (validate === undefined) {
        warn(ctx, p, `unknown field "${key}" of a ${what}${suggest(key, known)}; ignored`);
        continue;
      }
      if (value === undefined || value === null) continue;
      const r = validate(value, p, ctx);
      if (r !== undefined) Object.defineProperty(out, key, { value: r, enumerable: true, writable: true, configurable: true });
    }
    const typed = out as T;
    check?.(typed, path, ctx, raw);
    return typed;
  };
}

const anyValue: Validator<unknown> = (v) => v;
const ip = strWith((s) => (s === '' || s === 'None' || isIpAddress(s) ? undefined : `"${s}" is not an IP address (or "None" for a headless Service)`));

const servicePort = lenient<KubeServicePort>(
  {
    name: strWith((n) => (n === '' ? undefined : checkDnsLabel(n))),
    protocol: oneOf(['TCP', 'UDP', 'SCTP']),
    appProtocol: strWith(checkQualifiedName),
    port: int({ min: 1, max: 65535 }),
    targetPort,
    nodePort: int({ min: 0, max: 65535 }),
  },
  'Service port',
  (_p, path, ctx, raw) => {
    if (raw.port === undefined || raw.port === null) fail(ctx, [...path, 'port'], 'is required');
  },
);

/** Validates a Service spec. */
export const kubeServiceSpec: Validator<KubeServiceSpec> = lenient<KubeServiceSpec>(
  {
    ports: list(servicePort),
    selector: labels,
    clusterIP: ip,
    clusterIPs: list(ip, { max: 2 }),
    type: oneOf(['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName']),
    externalName: str,
    externalIPs: list(str),
    sessionAffinity: oneOf(['None', 'ClientIP']),
    sessionAffinityConfig: anyValue,
    loadBalancerIP: str,
    loadBalancerSourceRanges: list(str),
    loadBalancerClass: str,
    externalTrafficPolicy: oneOf(['Cluster', 'Local']),
    internalTrafficPolicy: oneOf(['Cluster', 'Local']),
    healthCheckNodePort: int({ min: 0, max: 65535 }),
    publishNotReadyAddresses: bool,
    ipFamilies: list(oneOf(['IPv4', 'IPv6']), { max: 2 }),
    ipFamilyPolicy: oneOf(['SingleStack', 'PreferDualStack', 'RequireDualStack']),
    allocateLoadBalancerNodePorts: bool,
    trafficDistribution: str,
  },
  'Service spec',
  checkService,
);

function rawPorts(raw: Record<string, unknown>): [number, Record<string, unknown>][] {
  if (!Array.isArray(raw.ports)) return [];
  return raw.ports.flatMap((p: unknown, i) => (typeof p === 'object' && p !== null && !Array.isArray(p) ? [[i, p as Record<string, unknown>] as [number, Record<string, unknown>]] : []));
}

function checkService(spec: KubeServiceSpec, path: FieldPath, ctx: Ctx, raw: Record<string, unknown>): void {
  const type = spec.type ?? 'ClusterIP';
  const headless = spec.clusterIP === 'None';
  const ports = rawPorts(raw);
  if (type === 'ExternalName') {
    const name = spec.externalName ?? '';
    if (name === '') fail(ctx, [...path, 'externalName'], 'is required when type is ExternalName');
    else {
      const problem = checkDnsSubdomain(name.endsWith('.') ? name.slice(0, -1) : name);
      if (problem !== undefined) fail(ctx, [...path, 'externalName'], `${problem}; an ExternalName Service names a DNS host`);
    }
    if (spec.clusterIP !== undefined && spec.clusterIP !== '') fail(ctx, [...path, 'clusterIP'], 'must be empty when type is ExternalName');
  } else if (ports.length === 0) {
    if (!headless) fail(ctx, [...path, 'ports'], 'is required (at least one port), unless the Service is headless (clusterIP: None) or of type ExternalName');
  }
  const names = new Map<string, number>();
  const pairs = new Map<string, number>();
  for (const [i, p] of ports) {
    const at = [...path, 'ports', i];
    const name = typeof p.name === 'string' ? p.name : '';
    if (name === '') {
      if (ports.length > 1) fail(ctx, [...at, 'name'], 'is required when a Service has more than one port');
    } else {
      const first = names.get(name);
      if (first !== undefined) fail(ctx, [...at, 'name'], `port name "${name}" is already used by ports[${first}]`);
      else names.set(name, i);
    }
    if (typeof p.port === 'number') {
      const protocol = typeof p.protocol === 'string' ? p.protocol : 'TCP';
      const key = `${p.port}/${protocol}`;
      const first = pairs.get(key);
      if (first !== undefined) fail(ctx, [...at, 'port'], `port ${p.port}/${protocol} is already declared by ports[${first}]`);
      else pairs.set(key, i);
      // A port whose protocol must be detected is analysis's IST0118 (analyze/port-names.ts).
    }
  }
  // internalTrafficPolicy Local is applied: endpoints on the caller's node only (routing/cluster-compiler.ts).
  // Applied (config/traffic-distribution.ts); a value Kubernetes does not know prefers nothing.
  if (typeof spec.trafficDistribution === 'string' && parseTrafficDistribution(spec.trafficDistribution, false) === undefined) {
    warn(ctx, [...path, 'trafficDistribution'], `unknown value "${spec.trafficDistribution}" (Kubernetes accepts ${KUBERNETES_TRAFFIC_DISTRIBUTIONS.join(', ')}); it has no effect`);
  }
}

/** The `networking.istio.io/traffic-distribution` annotation of a Service or ServiceEntry: a value Istio does not know is warned about (it prefers nothing). */
export function checkTrafficDistributionAnnotation(metadata: ObjectMeta | undefined, ctx: Ctx): void {
  const v = metadata?.annotations?.[TRAFFIC_DISTRIBUTION_ANNOTATION];
  if (v === undefined || v === '' || parseTrafficDistribution(v, true) !== undefined) return;
  warn(ctx, ['metadata', 'annotations', TRAFFIC_DISTRIBUTION_ANNOTATION], `unknown value "${v}" (Istio reads ${KUBERNETES_TRAFFIC_DISTRIBUTIONS.join(', ')}, in any case); it has no effect`);
}

/**
 * Checks a Service's metadata beyond what every kind gets: the DNS-1035 name and the
 * `networking.istio.io/exportTo` annotation (`.`, `*`, `~` or namespace names, comma-separated).
 */
export function checkServiceMetadata(metadata: ObjectMeta, ctx: Ctx): void {
  checkTrafficDistributionAnnotation(metadata, ctx);
  // An invalid DNS-1123 name was reported already; only the stricter DNS-1035 rule is added here.
  const problem = typeof metadata.name === 'string' ? checkServiceName(metadata.name) : undefined;
  if (problem !== undefined) fail(ctx, ['metadata', 'name'], problem);
  const exportTo = metadata.annotations?.[EXPORT_TO_ANNOTATION];
  if (exportTo === undefined || exportTo.trim() === '') return;
  for (const e of parseExportTo(exportTo) ?? []) {
    if (e !== '.' && e !== '*' && e !== '~' && checkDnsLabel(e) !== undefined) {
      fail(ctx, ['metadata', 'annotations', EXPORT_TO_ANNOTATION], `"${e}" is not ".", "*", "~" or a namespace name`);
    }
  }
}
