/**
 * Validators for types shared across kinds: names, hosts, labels, selectors, string
 * matchers, percentages, header names.
 *
 * @module
 */
import { isIP, isIPv4, isIPv6 } from 'node:net';
import type { LabelSelector, Percent, PolicyTargetReference, PortSelector, StringMatch, WorkloadSelector } from '../types/common.ts';
import { fail, int, map, nonEmpty, num, obj, regex, req, str, strWith, type Ctx, type Validator } from './schema.ts';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** True for an IPv4 or IPv6 literal (no port, no brackets). */
export function isIpAddress(s: string): boolean {
  return isIP(s) !== 0;
}

/** Checks an IP address or CIDR range (IPv4 or IPv6), as Go's `netip.ParseAddr` / `ParsePrefix` accept them. */
export function checkIpOrCidr(s: string): string | undefined {
  if (s === '') return 'empty value not allowed';
  const slash = s.indexOf('/');
  if (slash === -1) return isIPv4(s) || isIPv6(s) ? undefined : `bad IP address "${s}"`;
  const addr = s.slice(0, slash);
  const bits = s.slice(slash + 1);
  const v4 = isIPv4(addr);
  if (!v4 && (!isIPv6(addr) || addr.includes('%'))) return `bad CIDR range "${s}": "${addr}" is not an IP address`;
  const max = v4 ? 32 : 128;
  if (!/^(0|[1-9]\d{0,2})$/.test(bits) || Number(bits) > max) return `bad CIDR range "${s}": prefix length must be 0-${max}`;
  return undefined;
}

/** Checks a DNS-1123 label (namespaces, subset names); returns a problem or nothing. */
export function checkDnsLabel(s: string): string | undefined {
  if (s.length > 63) return `"${s}" is longer than 63 characters`;
  return DNS1123_LABEL.test(s) ? undefined : `"${s}" is not a valid DNS-1123 label (lowercase letters, digits and "-", starting and ending with a letter or digit)`;
}

/** Checks a DNS-1123 subdomain (resource names); returns a problem or nothing. */
export function checkDnsSubdomain(s: string): string | undefined {
  if (s.length > 253) return `"${s}" is longer than 253 characters`;
  return DNS1123_SUBDOMAIN.test(s) ? undefined : `"${s}" is not a valid DNS-1123 name (lowercase letters, digits, "-" and ".")`;
}

/**
 * Checks a host as Istio's `ValidateWildcardDomain` accepts it in VirtualService,
 * DestinationRule and ServiceEntry: a DNS name (a trailing dot allowed, no all-digit top-level
 * label), a short name, or a wildcard at the start of the first label: `*`, `*.example.com`,
 * or a partial wildcard such as `*foo.example.com` / `*-foo.example.com`. Letters may be upper
 * case, as Istio's labels allow (`Reviews.Default` is the host `reviews.default`).
 */
export function checkHost(host: string, { allowWildcard = true, allowIp = false } = {}): string | undefined {
  if (host.length === 0) return 'host must not be empty';
  if (host.length > 255) return `host "${host.slice(0, 40)}…" is longer than 255 characters`;
  if (host === '*') return allowWildcard ? undefined : 'a wildcard host is not allowed here';
  if (isIpAddress(host)) return allowIp ? undefined : `"${host}" is an IP address; a host name is required here`;
  const dot = host.indexOf('.');
  const first = dot === -1 ? host : host.slice(0, dot);
  if (first.startsWith('*')) {
    if (!allowWildcard) return `wildcard host "${host}" is not allowed here`;
    // Istio's IsWildcardDNS1123Label: "*", or "*" or "*-" before a DNS label ("*foo", "*-foo").
    const rest = first.startsWith('*-') ? first.slice(2) : first.slice(1);
    if (rest !== '' && !/^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/.test(rest)) {
      return `invalid host "${host}": a wildcard is allowed only at the start of the first label ("*.example.com", "*foo.example.com")`;
    }
  }
  if (host.slice(first.length).includes('*') || first.slice(1).includes('*')) {
    return `invalid host "${host}": a wildcard is allowed only at the start of the first label ("*.example.com", "*foo.example.com")`;
  }
  if (dot === -1) return first.startsWith('*') ? undefined : checkLabel(host, first);
  const labels = host.slice(dot + 1).split('.');
  if (!first.startsWith('*')) labels.unshift(first);
  // Istio allows a trailing dot ("istio.io.") and no all-numeric top-level label.
  if (labels.length > 1 && labels[labels.length - 1] === '') labels.pop();
  if (/^\d+$/.test(labels[labels.length - 1] ?? '')) return `invalid host "${host}": the top-level label is all digits`;
  for (const label of labels) {
    const problem = checkLabel(host, label);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

function checkLabel(host: string, label: string): string | undefined {
  if (label.length === 0) return `invalid host "${host}": empty label`;
  if (label.length > 63) return `invalid host "${host}": label "${label}" is longer than 63 characters`;
  // Istio's DNS-1123 labels admit upper case (host names are case-insensitive; meshlet reads them lower-cased).
  if (!/^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/.test(label)) return `invalid host "${host}": label "${label}" has characters a DNS name cannot have`;
  return undefined;
}

/** A host (wildcards allowed). */
export const host: Validator<string> = strWith((s) => checkHost(s));

/** A namespace name. */
export const namespaceName: Validator<string> = strWith(checkDnsLabel);

const LABEL_NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;

/** Checks a Kubernetes label key (`prefix/name`); returns a problem or nothing. */
export function checkLabelKey(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const name = slash === -1 ? key : key.slice(slash + 1);
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  if (prefix !== undefined && checkDnsSubdomain(prefix) !== undefined) return `invalid label key "${key}": bad prefix "${prefix}"`;
  if (name.length === 0 || name.length > 63 || !LABEL_NAME.test(name)) {
    return `invalid label key "${key}": a name of at most 63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit`;
  }
  return undefined;
}

/** Checks a Kubernetes label value; returns a problem or nothing. */
export function checkLabelValue(value: string): string | undefined {
  if (value === '') return undefined;
  if (value.length > 63 || !LABEL_NAME.test(value)) {
    return `invalid label value "${value}": at most 63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit`;
  }
  return undefined;
}

/** A label map with Kubernetes key/value syntax. */
export const labels: Validator<Record<string, string>> = map(strWith(checkLabelValue), { key: checkLabelKey });

/** A networking workload selector (`labels`). */
export const workloadSelector: Validator<WorkloadSelector> = obj<WorkloadSelector>({ labels });

/** A security/telemetry selector (`matchLabels`). */
export const labelSelector: Validator<LabelSelector> = obj<LabelSelector>({ matchLabels: labels });

/** A policy target reference. */
export const targetRef: Validator<PolicyTargetReference> = obj<PolicyTargetReference>({
  group: str,
  kind: req(nonEmpty),
  name: req(nonEmpty),
  namespace: namespaceName,
});

const HEADER_NAME = /^[-_A-Za-z0-9]+$/;

/** Checks an HTTP header name as Istio does (`^[-_A-Za-z0-9]+$`); returns a problem or nothing. */
export function checkHeaderName(name: string): string | undefined {
  if (name.length === 0) return 'header name must not be empty';
  if (name.startsWith(':')) return `pseudo-header "${name}" is not allowed here`;
  return HEADER_NAME.test(name) ? undefined : `invalid header name "${name}": only letters, digits, "-" and "_"`;
}

/** A percentage: 0, or in [0.0001, 100] (Istio's precision is a millionth). */
export const percentValue: Validator<number> = (v, path, ctx) => {
  const n = num({ min: 0, max: 100 })(v, path, ctx);
  if (n === undefined) return undefined;
  if (n > 0 && n < 0.0001) return fail(ctx, path, `must be 0 or at least 0.0001, got ${n}`);
  return n;
};

/**
 * A `Percent` message (`{value}`) of a fault: 0, or in [0.0001, 100] (Istio's
 * `validatePercentage`). An empty `{}` is 0%, as protobuf reads it.
 */
export const percent: Validator<Percent> = (v, path, ctx) => {
  const p = obj<{ value?: number }>({ value: percentValue })(v, path, ctx);
  return p === undefined ? undefined : { value: p.value ?? 0 };
};

/** A `Percent` of a mirror: in [0, 100] (Istio checks only the range there). An empty `{}` is 0%. */
export const percentRange: Validator<Percent> = (v, path, ctx) => {
  const p = obj<{ value?: number }>({ value: num({ min: 0, max: 100 }) })(v, path, ctx);
  return p === undefined ? undefined : { value: p.value ?? 0 };
};

/** A port selector (`{number}`). */
export const portSelector: Validator<PortSelector> = obj<PortSelector>({ number: req(int({ min: 1, max: 65535 })) });

/** Options for {@link stringMatch}. */
export interface StringMatchOptions {
  /** Allow an empty prefix (Istio allows it only for `uri`). */
  allowEmptyPrefix?: boolean;
}

/** A StringMatch: exactly one of exact, prefix, regex; `{}` only where `allowEmpty`. */
export function stringMatch(options: StringMatchOptions = {}): Validator<StringMatch> {
  return obj<StringMatch>(
    {
      exact: str,
      prefix: strWith((s) => (s === '' && options.allowEmptyPrefix !== true ? 'prefix must not be empty' : undefined)),
      regex,
    },
    { oneOf: [['exact', 'prefix', 'regex']] },
  );
}

/** Checks `exportTo` entries: `*`, `.`, `~` or namespace names. */
export const exportTo: Validator<string> = strWith((s) =>
  s === '*' || s === '.' || s === '~' ? undefined : checkDnsLabel(s),
);

/** Reports an error unless `check` holds. */
export function expect(ctx: Ctx, cond: boolean, path: (string | number)[], message: string): void {
  if (!cond) fail(ctx, path, message);
}
