/**
 * Rate-limit descriptors from a request: Envoy's rate-limit actions (`config.route.v3.RateLimit`,
 * `router_ratelimit.cc`), compiled once per config. One policy entry's actions run in order,
 * each appending an entry; an action that cannot produce one (a header that is absent, a
 * `header_value_match` that does not match as expected, a CEL attribute that is not there)
 * drops the whole descriptor of that entry, unless it says to skip (`skip_if_absent`,
 * `skip_if_error`), which drops only its own entry.
 *
 * @module
 */
import { isIP } from 'node:net';
import type { CelAttribute, HeaderMatcherSettings, HitsAddendSettings, QueryMatcherSettings, RateLimitAction, RateLimitPolicySettings } from '../../config/types/local-rate-limit.ts';
import { compileRe2 } from '../../config/regex.ts';
import type { Descriptor } from './local-rate-limiter.ts';
import { hitsOf } from './hits-addend.ts';
import { formatHostPort } from '../../core/host-port.ts';

/** What the actions read of a request (the server side's request view has all of it). */
export interface RateLimitRequest {
  readonly protocol: string;
  readonly method: string;
  readonly scheme: string;
  readonly authority: string;
  /** Path with query. */
  readonly path: string;
  /** Lower-cased names. */
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localPort: number;
  /** The mTLS peer, if any. */
  readonly peer: { readonly principal: string } | undefined;
}

/** What the actions know of where the request is going. */
export interface RateLimitSite {
  /** Envoy's `--service-cluster` of this workload (`source_cluster`): `<service>.<namespace>`. */
  readonly sourceCluster: string;
  /**
   * The route's cluster (`destination_cluster`): `inbound|<port>||` on the server side,
   * `outbound|<port>|<subset>|<host>` (or `PassthroughCluster`) on the client side; undefined when
   * the route has no cluster (a redirect, a direct response, no route), which drops the descriptor.
   */
  readonly destinationCluster: string | undefined;
}

type Entry = { key: string; value: string };

/** Appends its entry and returns true; returns true without an entry to skip itself; false drops the whole descriptor. */
type Producer = (req: RateLimitRequest, site: RateLimitSite, out: Entry[]) => boolean;

/** A header's value as Envoy reads it for matchers: every value joined with ','; pseudo-headers from the request line. */
export function headerOf(req: RateLimitRequest, name: string): string | undefined {
  switch (name) {
    case ':path':
      return req.path;
    case ':method':
      return req.method;
    case ':authority':
    case 'host':
      return req.authority;
    case ':scheme':
      return req.scheme;
  }
  if (!Object.hasOwn(req.headers, name)) return undefined; // header names come from config: no prototype keys
  const v = req.headers[name];
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v.length === 0 ? undefined : v.join(',');
}

/** A header's first value (what `request_headers` puts in the descriptor). */
function firstHeader(req: RateLimitRequest, name: string): string | undefined {
  if (name.startsWith(':') || name === 'host') return headerOf(req, name);
  if (!Object.hasOwn(req.headers, name)) return undefined;
  const v = req.headers[name];
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v[0];
}

function stringTest(op: 'exact' | 'prefix' | 'suffix' | 'contains' | 'regex', value: string, ignoreCase: boolean): (s: string) => boolean {
  if (op === 'regex') {
    const re = compileRe2(value);
    if ('error' in re) throw new Error(re.error);
    return (s) => re.matches(s);
  }
  const want = ignoreCase ? value.toLowerCase() : value;
  const norm = ignoreCase ? (s: string) => s.toLowerCase() : (s: string) => s;
  switch (op) {
    case 'exact':
      return (s) => norm(s) === want;
    case 'prefix':
      return (s) => norm(s).startsWith(want);
    case 'suffix':
      return (s) => norm(s).endsWith(want);
    case 'contains':
      return (s) => norm(s).includes(want);
  }
}

/** Compiles an Envoy `HeaderMatcher`. */
export function compileHeaderMatcher(m: HeaderMatcherSettings): (req: RateLimitRequest) => boolean {
  const match = m.match;
  if (match.kind === 'present') {
    return (req) => (headerOf(req, m.name) !== undefined) === match.present !== m.invert;
  }
  const test = match.kind === 'range' ? (s: string) => /^-?\d+$/.test(s) && Number(s) >= match.start && Number(s) < match.end : stringTest(match.op, match.value, match.ignoreCase);
  return (req) => {
    let v = headerOf(req, m.name);
    if (v === undefined) {
      if (!m.treatMissingAsEmpty) return false;
      v = '';
    }
    return test(v) !== m.invert;
  };
}

/** The first value of each query parameter, decoded. */
function queryParams(path: string): Map<string, string> {
  const out = new Map<string, string>();
  const q = path.indexOf('?');
  if (q === -1) return out;
  const end = path.indexOf('#', q);
  for (const pair of path.slice(q + 1, end === -1 ? undefined : end).split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const rawName = eq === -1 ? pair : pair.slice(0, eq);
    const rawValue = eq === -1 ? '' : pair.slice(eq + 1);
    const name = decode(rawName);
    if (!out.has(name)) out.set(name, decode(rawValue));
  }
  return out;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

function compileQueryMatcher(m: QueryMatcherSettings): (params: Map<string, string>) => boolean {
  const match = m.match;
  if (match.kind === 'present') return (params) => params.has(m.name);
  const test = stringTest(match.op, match.value, match.ignoreCase);
  return (params) => {
    const v = params.get(m.name);
    return v !== undefined && test(v);
  };
}

/** `::ffff:10.0.0.1` (a dual-stack socket's IPv4 peer) → `10.0.0.1`, as an IPv4 listener sees it. */
function plainAddress(addr: string): string {
  return addr.startsWith('::ffff:') && isIP(addr.slice(7)) === 4 ? addr.slice(7) : addr;
}

/**
 * The client address Envoy trusts on a sidecar's inbound listener (`use_remote_address: false`,
 * no trusted hops): the last `x-forwarded-for` address when it is an IP, else the peer's.
 */
export function trustedAddress(req: RateLimitRequest): string {
  const xff = headerOf(req, 'x-forwarded-for');
  if (xff !== undefined) {
    const last = xff.slice(xff.lastIndexOf(',') + 1).trim();
    if (isIP(last) !== 0) return plainAddress(last);
  }
  return plainAddress(req.remoteAddress);
}

function ipv6Words(addr: string): number[] | undefined {
  let a = addr.split('%')[0] as string;
  let tail: number[] = [];
  const v4 = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  if (v4 !== null) {
    const [b0, b1, b2, b3] = v4.slice(2).map(Number) as [number, number, number, number];
    tail = [(b0 << 8) | b1, (b2 << 8) | b3];
    a = v4[1] as string;
    if (!a.endsWith('::')) a = a.slice(0, -1);
  }
  const halves = a.split('::');
  if (halves.length > 2) return undefined;
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((h) => Number.parseInt(h, 16)));
  const head = parse(halves[0] as string);
  const rest = halves.length > 1 ? parse(halves[1] as string) : [];
  const fill = 8 - tail.length - head.length - rest.length;
  if (fill < 0 || (halves.length === 1 && fill !== 0)) return undefined;
  return [...head, ...new Array<number>(fill).fill(0), ...rest, ...tail];
}

function formatIpv6(w: readonly number[]): string {
  // RFC 5952: the longest run (≥ 2) of zero words becomes '::'.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: readonly number[]) => xs.map((x) => x.toString(16)).join(':');
  if (best === -1) return hex(w);
  return `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`;
}

/** `masked_remote_address`: the trusted address with its prefix kept, as `addr/len`. */
export function maskedAddress(addr: string, v4Len: number, v6Len: number): string | undefined {
  const kind = isIP(addr);
  if (kind === 4) {
    const n = addr.split('.').reduce((acc, b) => acc * 256 + Number(b), 0);
    const masked = v4Len === 0 ? 0 : Math.floor(n / 2 ** (32 - v4Len)) * 2 ** (32 - v4Len);
    return `${[24, 16, 8, 0].map((s) => Math.floor(masked / 2 ** s) % 256).join('.')}/${v4Len}`;
  }
  if (kind === 6) {
    const w = ipv6Words(addr);
    if (w === undefined) return undefined;
    const out = w.map((word, i) => {
      const keep = Math.max(0, Math.min(16, v6Len - i * 16));
      return keep === 16 ? word : keep === 0 ? 0 : word & (0xffff << (16 - keep)) & 0xffff;
    });
    return `${formatIpv6(out)}/${v6Len}`;
  }
  return undefined;
}

/** A CEL attribute's value, printed as Envoy prints it; undefined when it is not there (an evaluation error). */
function attributeValue(a: CelAttribute, req: RateLimitRequest): string | undefined {
  switch (a.kind) {
    case 'request-header':
      return headerOf(req, a.name);
    case 'request': {
      switch (a.field) {
        case 'path':
          return req.path;
        case 'url_path': {
          const q = req.path.indexOf('?');
          return q === -1 ? req.path : req.path.slice(0, q);
        }
        case 'host':
          return req.authority;
        case 'method':
          return req.method;
        case 'scheme':
          return req.scheme;
        case 'query': {
          const q = req.path.indexOf('?');
          return q === -1 ? '' : req.path.slice(q + 1);
        }
        case 'id':
          return headerOf(req, 'x-request-id');
        case 'protocol':
          return req.protocol === 'http1' ? 'HTTP/1.1' : 'HTTP/2';
      }
      return undefined;
    }
    case 'source': {
      const ip = plainAddress(req.remoteAddress);
      return a.field === 'port' ? String(req.remotePort) : formatHostPort(ip, req.remotePort);
    }
    case 'destination':
      return String(req.localPort);
    case 'connection':
      if (a.field === 'mtls') return String(req.peer !== undefined && req.peer.principal !== '');
      return req.peer === undefined || req.peer.principal === '' ? undefined : req.peer.principal;
  }
}

function compileAction(a: RateLimitAction): Producer {
  switch (a.type) {
    case 'source_cluster':
      return (_req, site, out) => {
        out.push({ key: 'source_cluster', value: site.sourceCluster });
        return true;
      };
    case 'destination_cluster':
      return (_req, site, out) => {
        if (site.destinationCluster === undefined) return false;
        out.push({ key: 'destination_cluster', value: site.destinationCluster });
        return true;
      };
    case 'remote_address':
      return (req, _site, out) => {
        out.push({ key: 'remote_address', value: trustedAddress(req) });
        return true;
      };
    case 'masked_remote_address':
      return (req, _site, out) => {
        const v = maskedAddress(trustedAddress(req), a.v4PrefixLen, a.v6PrefixLen);
        if (v === undefined) return false;
        out.push({ key: 'masked_remote_address', value: v });
        return true;
      };
    case 'generic_key':
      return (_req, _site, out) => {
        out.push({ key: a.descriptorKey, value: a.descriptorValue });
        return true;
      };
    case 'request_headers':
      return (req, _site, out) => {
        const v = firstHeader(req, a.headerName);
        if (v === undefined) return a.skipIfAbsent;
        out.push({ key: a.descriptorKey, value: v });
        return true;
      };
    case 'header_value_match': {
      const matchers = a.headers.map(compileHeaderMatcher);
      return (req, _site, out) => {
        if (matchers.every((m) => m(req)) !== a.expectMatch) return false;
        out.push({ key: a.descriptorKey, value: a.descriptorValue });
        return true;
      };
    }
    case 'query_parameter_value_match': {
      const matchers = a.queryParameters.map(compileQueryMatcher);
      return (req, _site, out) => {
        const params = queryParams(req.path);
        if (matchers.every((m) => m(params)) !== a.expectMatch) return false;
        out.push({ key: a.descriptorKey, value: a.descriptorValue });
        return true;
      };
    }
    case 'query_parameters':
      return (req, _site, out) => {
        const v = queryParams(req.path).get(a.queryParameterName);
        if (v === undefined) return a.skipIfAbsent;
        out.push({ key: a.descriptorKey, value: v });
        return true;
      };
    case 'expression':
      return (req, _site, out) => {
        const v = attributeValue(a.attribute, req);
        if (v === undefined) return a.skipIfError;
        out.push({ key: a.descriptorKey, value: v });
        return true;
      };
  }
}

/**
 * Compiled rate-limit policy entries: the descriptors a request produces.
 * @category Policies
 */
export class DescriptorBuilder {
  readonly #entries: readonly (readonly Producer[])[];
  /** Per entry, its `hits_addend`. */
  readonly #hits: readonly (HitsAddendSettings | undefined)[];

  /**
   * `stage`: only entries of this stage count (the filter's stage); entries with a disable key are
   * left out, as the local filter does, unless `withDisableKey` (the global filter reads the key's
   * runtime flag, `ratelimit.<key>.http_filter_enabled`, which is on by default: meshlet has no runtime).
   */
  constructor(policies: readonly RateLimitPolicySettings[], stage: number, withDisableKey = false) {
    const used = policies.filter((p) => p.stage === stage && (withDisableKey || p.disableKey === ''));
    this.#entries = used.map((p) => p.actions.map(compileAction));
    this.#hits = used.map((p) => p.hitsAddend);
  }

  get empty(): boolean {
    return this.#entries.length === 0;
  }

  /** The request's descriptors, in policy order. */
  build(req: RateLimitRequest, site: RateLimitSite): Descriptor[] {
    const out: Descriptor[] = [];
    for (let i = 0; i < this.#entries.length; i++) {
      const entries: Entry[] & { hitsAddend?: number } = [];
      let ok = true;
      for (const p of this.#entries[i] as readonly Producer[]) {
        if (!p(req, site, entries)) {
          ok = false;
          break;
        }
      }
      if (!ok || entries.length === 0) continue;
      const h = this.#hits[i];
      if (h !== undefined) {
        // Envoy: a format whose value is not a number up to 1e9 is an error, and the descriptor is left out.
        const n = hitsOf(h, req);
        if (n === undefined) continue;
        entries.hitsAddend = n;
      }
      out.push(entries);
    }
    return out;
  }
}
