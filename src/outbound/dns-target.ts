/**
 * DNS resolution of a `resolution: DNS` endpoint's host name, as Envoy's STRICT_DNS cluster
 * resolves it (`source/extensions/clusters/strict_dns/strict_dns_cluster.cc`,
 * `ResolveTarget::startResolve`): resolved in the background, every address of the answer its
 * own host; re-resolved after the answer's TTL when the resolver gives one (Istio sets
 * `respect_dns_ttl: true`; the default resolver asks the records' TTL beside the OS's lookup),
 * else after `dnsRefreshRate` (MeshConfig, default 60 s); a name that does not exist (NXDOMAIN)
 * or has no addresses is an answer with none — the cluster loses its hosts, as Envoy's c-ares
 * resolver reports such an answer as a success with no records — asked again once its zone's SOA
 * minimum has passed (c-ares's query cache), at a refresh; a failed
 * resolution keeps the hosts of the last answer and is retried with a backoff that starts at
 * the refresh rate and doubles up to ten times it (Envoy's default failure strategy when
 * `dns_failure_refresh_rate` is unset, which Istio leaves unset), without Envoy's jitter.
 *
 * @module
 */
import type { LookupAddress } from 'node:dns';
import { lookup, Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Clock, Timer } from '../core/clock.ts';

/**
 * One DNS answer: the addresses (IPv4 or IPv6, in the resolver's order) and, when the resolver
 * knows it, the smallest TTL of the records in milliseconds. A negative answer (the name does not
 * exist, NXDOMAIN, or has no address records) has no addresses, and its `ttlMs` is how long that
 * answer holds: the minimum TTL of the zone's SOA (RFC 2308), as a resolver's negative cache keeps it.
 * @category Mesh
 */
export interface DnsAnswer {
  readonly addresses: readonly string[];
  /** Undefined or 0: unknown (the refresh rate applies). */
  readonly ttlMs?: number | undefined;
}

/**
 * Resolves a host name to addresses: `family` 4 (Envoy's `V4_ONLY`), 6 (`V6_ONLY`) or 0 (`ALL`).
 * A name that does not exist (or has no addresses) is an answer with none, or a rejection with
 * code `ENOTFOUND` / `ENODATA`; any other rejection is a failed resolution (the last answer is kept).
 * @category Mesh
 */
export type DnsResolve = (hostname: string, family: 0 | 4 | 6) => Promise<DnsAnswer>;

/**
 * The `dns` block of `createMesh` options: how the names of `resolution: DNS` services are resolved.
 * @category Mesh
 */
export interface DnsOptions {
  /**
   * MeshConfig `dnsRefreshRate` in milliseconds: how long an answer without a TTL is kept, and
   * the first wait after a failed resolution (doubling up to ten times it while it fails).
   * @defaultValue 60000 (Istio's default, 60 s)
   */
  readonly refreshRateMs?: number | undefined;
  /**
   * The resolver (tests give a fake one). It gets the name and the address family (4, 6 or 0
   * for both) and returns the addresses, with their TTL when it knows it.
   * @defaultValue the OS resolver (`dns.promises.lookup` with `all: true`), with the TTL of the name's A/AAAA records
   */
  readonly resolve?: DnsResolve | undefined;
}

/** A record with its TTL in seconds, as `dns.promises.Resolver`'s `resolve4`/`resolve6` with `{ ttl: true }` give it. */
export interface RecordWithTtl {
  readonly address: string;
  readonly ttl: number;
}

/** What the default resolver asks a name's records and their TTLs of, and a zone's SOA (a `dns.promises.Resolver`). */
export interface TtlQuery {
  resolve4(hostname: string, options: { ttl: true }): Promise<RecordWithTtl[]>;
  resolve6(hostname: string, options: { ttl: true }): Promise<RecordWithTtl[]>;
  resolveSoa?(hostname: string): Promise<{ readonly minttl: number }>;
}

/** Error codes that mean the name has no addresses (an answer), not that resolving failed. */
export const NO_SUCH_NAME = new Set(['ENOTFOUND', 'ENODATA']);

/** Whether `err` says the name has no addresses (NXDOMAIN, NODATA) rather than that resolving failed. */
export function isNegativeAnswer(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && NO_SUCH_NAME.has(code);
}

/** The most labels walked up from a name to find its zone's SOA. */
const MAX_SOA_STEPS = 8;

/**
 * How long a negative answer for `hostname` holds: the minimum TTL of its zone's SOA (RFC 2308,
 * what c-ares's query cache and istiod's gateway-name cache keep an NXDOMAIN for), found by
 * asking the SOA of the name and then of each parent (a name that does not exist has none of its
 * own). Undefined when no SOA answers (or the query has no `resolveSoa`).
 */
export async function negativeTtlMs(query: TtlQuery, hostname: string): Promise<number | undefined> {
  if (query.resolveSoa === undefined) return undefined;
  let name = hostname.endsWith('.') ? hostname.slice(0, -1) : hostname;
  for (let i = 0; i < MAX_SOA_STEPS && name !== ''; i++) {
    try {
      const soa = await query.resolveSoa(name);
      return Number.isFinite(soa.minttl) && soa.minttl >= 0 ? soa.minttl * 1000 : undefined;
    } catch (err) {
      // Only "no such name / no SOA here" goes up a label; a server that does not answer ends the search.
      if (!isNegativeAnswer(err)) return undefined;
    }
    const dot = name.indexOf('.');
    name = dot === -1 ? '' : name.slice(dot + 1);
  }
  return undefined;
}

/** The addresses of a name as the OS gives them (`dns.promises.lookup` with `all: true`). */
async function osAddresses(hostname: string, family: 0 | 4 | 6): Promise<string[]> {
  const list: LookupAddress[] = await lookup(hostname, { all: true, family, order: 'verbatim' });
  return list.map((a) => a.address);
}

/**
 * How long the default resolver waits for the records' TTL once the OS answered (c-ares's
 * per-try timeout, one try): a DNS server that does not answer delays an answer from
 * `/etc/hosts` by at most this, and that answer is kept for `dnsRefreshRate`.
 */
export const TTL_QUERY_TIMEOUT_MS = 1_000;

/** The records of `hostname` in `family` with their TTLs, or none when the query fails (a name only `/etc/hosts` knows, a search domain's). */
async function recordsWithTtl(query: TtlQuery, hostname: string, family: 0 | 4 | 6): Promise<RecordWithTtl[]> {
  const one = (f: 4 | 6): Promise<RecordWithTtl[]> => (f === 4 ? query.resolve4(hostname, { ttl: true }) : query.resolve6(hostname, { ttl: true })).catch(() => []);
  if (family !== 0) return one(family);
  const [v4, v6] = await Promise.all([one(4), one(6)]);
  return [...v4, ...v6];
}

/**
 * The smallest TTL (ms) of the records for the addresses the OS gave, as Envoy's STRICT_DNS takes
 * the smallest of its answer's; undefined when no record names one of them (the OS answered from
 * `/etc/hosts`, or the name's records are not the OS's answer): then `dnsRefreshRate` applies.
 */
export function smallestTtlMs(records: readonly RecordWithTtl[], addresses: readonly string[]): number | undefined {
  let min: number | undefined;
  for (const r of records) if (addresses.includes(r.address) && (min === undefined || r.ttl < min)) min = r.ttl;
  return min === undefined ? undefined : min * 1000;
}

/**
 * The default resolver: the addresses are the OS's (`dns.promises.lookup` with `all: true`, so
 * `/etc/hosts` and search domains apply as they do for any connection, as Envoy's c-ares resolver
 * reads them); their TTL comes from the same name's A/AAAA records asked of the DNS servers at the
 * same time (`resolve4`/`resolve6` with `ttl: true`; `getaddrinfo` gives no TTL), so with Istio's
 * `respect_dns_ttl: true` a name is re-resolved when its records expire. Without a TTL (a name
 * only `/etc/hosts` knows, a record with TTL 0, no DNS server answering within
 * {@link TTL_QUERY_TIMEOUT_MS}) the answer is kept for `dnsRefreshRate`. A name the OS says does
 * not exist (or has no addresses: `ENOTFOUND`, `ENODATA`) is a negative answer — no addresses,
 * as Envoy's c-ares resolver reports NXDOMAIN and NODATA — whose `ttlMs` is its zone's SOA minimum
 * ({@link negativeTtlMs}). `addressesOf` replaces the OS's lookup (tests point both at one server).
 */
export function systemDnsResolver(query?: TtlQuery, addressesOf: (hostname: string, family: 0 | 4 | 6) => Promise<string[]> = osAddresses): DnsResolve {
  let q = query;
  return async (hostname, family) => {
    q ??= new Resolver({ timeout: TTL_QUERY_TIMEOUT_MS, tries: 1 });
    const records = recordsWithTtl(q, hostname, family);
    let addresses: string[];
    try {
      addresses = await addressesOf(hostname, family);
    } catch (err) {
      // The records' query never rejects: a failed lookup leaves nothing unhandled behind.
      if (!isNegativeAnswer(err)) throw err;
      await records;
      return { addresses: [], ttlMs: await negativeTtlMs(q, hostname) };
    }
    return { addresses, ttlMs: smallestTtlMs(await records, addresses) };
  };
}

/** {@link systemDnsResolver} over a `dns.promises.Resolver` made on first use. */
export const systemDnsResolve: DnsResolve = systemDnsResolver();

/**
 * The lookup family Istio gives a DNS cluster (`SelectDNSLookupFamily` in
 * `pilot/pkg/networking/util/util.go`): `V4_ONLY` unless the proxy's addresses are all IPv6
 * (`V6_ONLY`; `ALL` with `ISTIO_ENABLE_IPV4_OUTBOUND_LISTENER_FOR_IPV6_CLUSTERS`, not modelled).
 * Dual stack (`ALL` with `ISTIO_DUAL_STACK`) is not known here: a dual-stack workload is V4_ONLY.
 */
export function lookupFamily(sourceIp: string): 4 | 6 {
  return isIP(sourceIp) === 6 ? 6 : 4;
}

/** What a {@link DnsTarget} needs. */
export interface DnsSettings {
  readonly resolve: DnsResolve;
  /** MeshConfig `dnsRefreshRate` in ms. */
  readonly refreshMs: number;
  readonly family: 0 | 4 | 6;
}

/** The default `dnsRefreshRate` (Istio's `pkg/config/mesh/mesh.go`: 60 s). */
export const DEFAULT_DNS_REFRESH_MS = 60_000;

/** How many times the refresh rate a failing name is retried after at most (Envoy: 10× `dns_refresh_rate`). */
const MAX_BACKOFF_FACTOR = 10;

/** c-ares's `qcache_max_ttl` default: the longest a cached answer (a negative one too) is served. */
const QUERY_CACHE_MAX_TTL_MS = 3_600_000;

/**
 * When a name that has no addresses is asked again, as Envoy's STRICT_DNS cluster over its c-ares
 * resolver sees it: the cluster asks every `dnsRefreshRate` (an empty answer gives no TTL to
 * respect), and c-ares's query cache answers NXDOMAIN from memory until the zone's SOA minimum
 * (`negativeTtlMs`, at most c-ares's one hour) has passed — so the first real question goes out
 * at the first refresh after that.
 */
export function negativeHoldMs(negativeTtlMs: number | undefined, refreshMs: number): number {
  if (negativeTtlMs === undefined || !(negativeTtlMs > refreshMs)) return refreshMs;
  return Math.ceil(Math.min(negativeTtlMs, QUERY_CACHE_MAX_TTL_MS) / refreshMs) * refreshMs;
}

/** One name being resolved for a cluster: its last good answer and the next refresh. */
export class DnsTarget {
  readonly hostname: string;
  /** The addresses of the last good answer; undefined until the first resolution ended (then [] if it failed). */
  addresses: readonly string[] | undefined;
  /** The first address of the last answer that had any (LOGICAL_DNS connects there). */
  firstAddress: string | undefined;
  /** Resolutions that failed in a row, and the last failure. */
  failures = 0;
  lastError: Error | undefined;
  readonly #settings: DnsSettings;
  readonly #clock: Clock;
  /** The answer changed (`first`: the first resolution ended). */
  readonly #onChange: (first: boolean) => void;
  #timer: Timer | undefined;
  #closed = false;

  constructor(hostname: string, settings: DnsSettings, clock: Clock, onChange: (first: boolean) => void) {
    this.hostname = hostname;
    this.#settings = settings;
    this.#clock = clock;
    this.#onChange = onChange;
    this.#resolve();
  }

  #resolve(): void {
    this.#timer = undefined;
    let p: Promise<DnsAnswer>;
    try {
      p = this.#settings.resolve(this.hostname, this.#settings.family);
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      (a) => this.#answered(a),
      (err: unknown) => this.#failed(err instanceof Error ? err : new Error(String(err))),
    );
  }

  #answered(a: DnsAnswer): void {
    if (this.#closed) return;
    const unique = [...new Set(a.addresses.filter((x) => isIP(x) !== 0))];
    this.failures = 0;
    this.lastError = undefined;
    const before = this.addresses;
    const firstBefore = this.firstAddress;
    this.addresses = unique;
    if (unique.length > 0) this.firstAddress = unique[0];
    this.#schedule(unique.length > 0 ? (a.ttlMs !== undefined && a.ttlMs > 0 ? a.ttlMs : this.#settings.refreshMs) : negativeHoldMs(a.ttlMs, this.#settings.refreshMs));
    if (before === undefined || before.length !== unique.length || before.some((x, i) => x !== unique[i]) || firstBefore !== this.firstAddress) this.#onChange(before === undefined);
  }

  #failed(err: Error): void {
    if (this.#closed) return;
    // NXDOMAIN or no records is an answer with no addresses (Envoy's c-ares resolver reports it as a success).
    if (isNegativeAnswer(err)) {
      this.#answered({ addresses: [] });
      return;
    }
    this.failures++;
    this.lastError = err;
    const first = this.addresses === undefined;
    // Envoy keeps the hosts of the last good answer; a first failure leaves the name without hosts.
    if (first) this.addresses = [];
    const base = this.#settings.refreshMs;
    this.#schedule(Math.min(base * 2 ** (this.failures - 1), base * MAX_BACKOFF_FACTOR));
    if (first) this.#onChange(true);
  }

  #schedule(ms: number): void {
    this.#timer = this.#clock.setTimer(() => this.#resolve(), ms);
  }

  /** Stops refreshing (an answer still on its way is dropped). */
  close(): void {
    this.#closed = true;
    this.#timer?.clear();
    this.#timer = undefined;
  }

  toString(): string {
    const a = this.addresses;
    return `${this.hostname} → ${a === undefined ? 'resolving' : a.length === 0 ? 'no addresses' : a.join(', ')}${this.lastError !== undefined ? ` (last resolution failed: ${this.lastError.message})` : ''}`;
  }
}
