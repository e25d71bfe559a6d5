/**
 * Validators shared by the networking kinds (DestinationRule, ServiceEntry, WorkloadEntry):
 * Istio durations, `exportTo` lists, localities, FQDNs, IP addresses and CIDRs.
 *
 * @module
 */
import { parseDuration } from '../duration.ts';
import { checkDnsLabel, exportTo } from './common.ts';
import { durationStr, fail, list, type DurationBounds, type Validator } from './schema.ts';

/** Largest uint32, the bound of protobuf `uint32` / `UInt32Value` fields. */
export const UINT32_MAX = 4294967295;
/** Largest int32, the bound of protobuf `int32` fields. */
export const INT32_MAX = 2147483647;

/**
 * An Istio duration: at least 1ms (unless `allowZero` and it is `0s`) and in whole
 * milliseconds, as Istio's `ValidateDuration` requires ("only durations to ms precision
 * are supported").
 */
export function msDuration(bounds: DurationBounds = {}): Validator<string> {
  const base = durationStr(bounds);
  return (v, path, ctx) => {
    const s = base(v, path, ctx);
    if (s === undefined) return undefined;
    const ms = parseDuration(s);
    if (typeof ms === 'number' && Math.abs(ms - Math.round(ms)) > 1e-9) {
      return fail(ctx, path, `"${s}" is not a whole number of milliseconds; Istio supports durations to ms precision only`);
    }
    return s;
  };
}

/** Options for {@link exportToList}. */
export interface ExportToOptions {
  /** Allow `~` (exported to no one): Istio allows it only in ServiceEntry. */
  allowNone: boolean;
}

/**
 * An `exportTo` list, checked as Istio does: no duplicates (`.` counts as the resource's own
 * namespace), `*` alone, `~` alone and only where allowed.
 */
export function exportToList(options: ExportToOptions): Validator<string[]> {
  const entries = list(exportTo);
  return (v, path, ctx) => {
    const out = entries(v, path, ctx);
    if (out === undefined) return undefined;
    const seen = new Map<string, number>();
    out.forEach((e, i) => {
      const p = [...path, i];
      if (e === '~' && !options.allowNone) fail(ctx, p, 'exportTo "~" (no one) is allowed only in ServiceEntry');
      const key = e === '.' ? ctx.namespace : e;
      const first = seen.get(key);
      if (first !== undefined) {
        const same = key === e && out[first] === e;
        fail(ctx, p, same ? `duplicates item ${first}` : `"${e}" duplicates item ${first}: "." is this resource's namespace (${ctx.namespace})`);
      } else {
        seen.set(key, i);
      }
    });
    if (out.length > 1 && out.includes('*')) fail(ctx, path, '"*" (everyone) cannot be combined with other entries');
    if (out.length > 1 && out.includes('~')) fail(ctx, path, '"~" (no one) cannot be combined with other entries');
    return out;
  };
}

/**
 * Checks a locality pattern as used in `localityLbSetting.distribute`: `region[/zone[/subzone]]`,
 * non-empty parts, and at most one `*`, only at the end. Returns a problem or nothing.
 */
export function checkLocalityPattern(s: string): string | undefined {
  const stars = s.split('*').length - 1;
  if (stars > 1 || (stars === 1 && !s.endsWith('*'))) return `locality "${s}": a "*" wildcard may appear once, at the end`;
  return checkLocality(s);
}

/** Checks a locality `region/zone/subzone` (one to three non-empty parts). Returns a problem or nothing. */
export function checkLocality(s: string): string | undefined {
  const parts = s.split('/');
  if (parts.length > 3) return `locality "${s}" has more than three parts (region/zone/subzone)`;
  if (parts.some((p) => p === '')) return `locality "${s}" has an empty region, zone or subzone`;
  return undefined;
}

/**
 * Whether two locality patterns overlap (one covers the other): `us-west` and
 * `us-west/zone1`, or `*` and anything. Patterns are compared part by part after dropping
 * a trailing `*`.
 */
export function localitiesOverlap(a: string, b: string): boolean {
  const parts = (s: string) => {
    const p = s.split('/');
    if (p[p.length - 1] === '*') p.pop();
    return p;
  };
  const pa = parts(a);
  const pb = parts(b);
  const n = Math.min(pa.length, pb.length);
  for (let i = 0; i < n; i++) if (pa[i] !== pb[i]) return false;
  return true;
}

/**
 * Checks a fully qualified domain name as Istio's `ValidateFQDN` does: DNS-1123 labels, a
 * top-level label that is not all digits, an optional trailing dot. Returns a problem or nothing.
 */
export function checkFqdn(name: string): string | undefined {
  if (name.length === 0) return 'empty host name';
  if (name.length > 255) return `host name "${name.slice(0, 40)}…" is longer than 255 characters`;
  const labels = (name.endsWith('.') ? name.slice(0, -1) : name).split('.');
  if (/^\d+$/.test(labels[labels.length - 1] ?? '')) return `"${name}" is not a valid host name (the last label is all digits)`;
  for (const label of labels) {
    if (checkDnsLabel(label) !== undefined) return `"${name}" is not a valid host name (label "${label}")`;
  }
  return undefined;
}

/** The `unix://` prefix of Unix-domain-socket endpoint addresses. */
export const UNIX_PREFIX = 'unix://';

/** Checks the path of a `unix://` address: absolute and not a directory, or abstract (`@name`). */
export function checkUnixAddress(address: string): string | undefined {
  const p = address.slice(UNIX_PREFIX.length);
  if (p === '') return 'unix:// address has no path';
  if (p.startsWith('@')) return undefined;
  if (!p.startsWith('/') || p.endsWith('/')) return `"${address}": the socket path must be absolute and name a file`;
  return undefined;
}
