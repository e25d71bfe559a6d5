/**
 * A DestinationRule's `loadBalancer` block resolved once per config into what the data plane
 * runs: the picker kind Istio configures Envoy with, the hash table size, the consistent-hash
 * key (with a generated cookie's attributes prepared), slow start, and the locality setting in
 * effect. {@link createPicker} builds a picker from it; the balance layer computes request
 * hashes from {@link HashKeyPolicy} without parsing anything per request.
 *
 * @module
 */
import { parseDuration } from '../../config/duration.ts';
import type { LoadBalancerSettings, LocalityLoadBalancerSetting } from '../../config/types/destination-rule.ts';
import { DEFAULT_MAGLEV_TABLE_SIZE } from './maglev.ts';
import { DEFAULT_MIN_RING_SIZE } from './ring-hash.ts';
import { describeSlowStart, type SlowStart, slowStartFrom } from './warmup.ts';
import { localityFor, type TrafficDistribution } from '../../config/traffic-distribution.ts';

/** The algorithms Istio configures Envoy with. */
export type PickerKind = 'LEAST_REQUEST' | 'ROUND_ROBIN' | 'RANDOM' | 'PASSTHROUGH' | 'RING_HASH' | 'MAGLEV';

/** A cookie Envoy sets when a request has none (`httpCookie.ttl` given). */
export interface CookieGeneration {
  /** `Max-Age` in seconds; undefined for a session cookie (`ttl: 0s`). */
  readonly maxAgeS: number | undefined;
  readonly path: string | undefined;
  /** Extra attributes as written in `Set-Cookie` (`name` or `name=value`). */
  readonly attributes: readonly string[];
}

/**
 * Where a consistent-hash key comes from (Istio's `consistentHash` fields, first set wins in
 * this order: header, source IP, query parameter, cookie); `none` when the block names none
 * (every request then hashes at random, as Envoy does without a key).
 */
export type HashKeyPolicy =
  | { readonly from: 'header'; /** Lower-cased. */ readonly name: string }
  | { readonly from: 'source-ip' }
  | { readonly from: 'query'; readonly name: string }
  | { readonly from: 'cookie'; readonly name: string; /** Undefined: a request without the cookie has no key. */ readonly generate: CookieGeneration | undefined }
  | { readonly from: 'none' };

/** The `loadBalancer` block in effect for a cluster, resolved. */
export interface ResolvedLoadBalancer {
  readonly kind: PickerKind;
  /** RING_HASH: the minimum ring size; MAGLEV: the table size; undefined otherwise. */
  readonly tableSize: number | undefined;
  /** The consistent-hash key, when the cluster uses consistent hashing. */
  readonly hashKey: HashKeyPolicy | undefined;
  /** Slow start (ROUND_ROBIN and LEAST_REQUEST only, as Istio applies it). */
  readonly slowStart: SlowStart | undefined;
  /** The locality setting the picker plans with (`{ enabled: false }` for PASSTHROUGH, which has no locality structure). */
  readonly locality: LocalityLoadBalancerSetting | undefined;
  /** The locality setting comes from the service's traffic distribution: its failover applies without outlier detection (Istio). */
  readonly trafficDistribution: TrafficDistribution | undefined;
  /** What a picker adds to its kind when printed: the hash key or the slow start ('' for none). */
  readonly description: string;
}

/** The picker kind for `settings`: the algorithm Istio configures Envoy with. */
export function pickerKind(settings: LoadBalancerSettings | undefined): PickerKind {
  const ch = settings?.consistentHash;
  if (ch !== undefined) return ch.maglev !== undefined ? 'MAGLEV' : 'RING_HASH';
  switch (settings?.simple) {
    case 'ROUND_ROBIN':
    case 'RANDOM':
    case 'PASSTHROUGH':
      return settings.simple;
    default:
      return 'LEAST_REQUEST';
  }
}

function hashKeyPolicy(ch: NonNullable<LoadBalancerSettings['consistentHash']>): HashKeyPolicy {
  if (ch.httpHeaderName !== undefined) return Object.freeze({ from: 'header', name: ch.httpHeaderName.toLowerCase() });
  if (ch.useSourceIp === true) return Object.freeze({ from: 'source-ip' });
  if (ch.httpQueryParameterName !== undefined) return Object.freeze({ from: 'query', name: ch.httpQueryParameterName });
  const c = ch.httpCookie;
  if (c === undefined) return Object.freeze({ from: 'none' });
  let generate: CookieGeneration | undefined;
  if (c.ttl !== undefined) {
    const ttlMs = parseDuration(c.ttl);
    generate = Object.freeze({
      maxAgeS: typeof ttlMs === 'number' && ttlMs > 0 ? Math.floor(ttlMs / 1000) : undefined,
      path: c.path,
      attributes: Object.freeze((c.attributes ?? []).map((a) => (a.value === undefined ? a.name : `${a.name}=${a.value}`))),
    });
  }
  return Object.freeze({ from: 'cookie', name: c.name, generate });
}

function hashKeyDescription(ch: NonNullable<LoadBalancerSettings['consistentHash']>): string {
  if (ch.httpHeaderName !== undefined) return `hash on header ${ch.httpHeaderName}`;
  if (ch.httpCookie !== undefined) return `hash on cookie ${ch.httpCookie.name}`;
  if (ch.httpQueryParameterName !== undefined) return `hash on query ${ch.httpQueryParameterName}`;
  if (ch.useSourceIp === true) return 'hash on source IP';
  return '';
}

const PASSTHROUGH_LOCALITY: LocalityLoadBalancerSetting = Object.freeze({ enabled: false });

/**
 * Resolves the effective `loadBalancer` block (undefined = Istio's defaults); a service's
 * `trafficDistribution` stands in for a `localityLbSetting` the block does not have.
 */
export function resolveLoadBalancer(settings: LoadBalancerSettings | undefined, distribution?: TrafficDistribution): ResolvedLoadBalancer {
  const kind = pickerKind(settings);
  const ch = settings?.consistentHash;
  const td = kind !== 'PASSTHROUGH' && settings?.localityLbSetting === undefined ? distribution : undefined;
  const slowStart = kind === 'ROUND_ROBIN' || kind === 'LEAST_REQUEST' ? slowStartFrom(settings) : undefined;
  // 0 means unset (protobuf), so Envoy's default applies.
  const tableSize = kind === 'MAGLEV' ? (ch?.maglev?.tableSize ?? DEFAULT_MAGLEV_TABLE_SIZE) : kind === 'RING_HASH' ? ch?.ringHash?.minimumRingSize || ch?.minimumRingSize || DEFAULT_MIN_RING_SIZE : undefined;
  return Object.freeze({
    kind,
    tableSize,
    hashKey: ch === undefined ? undefined : hashKeyPolicy(ch),
    slowStart,
    locality: kind === 'PASSTHROUGH' ? PASSTHROUGH_LOCALITY : (settings?.localityLbSetting ?? (td === undefined ? undefined : localityFor(td))),
    trafficDistribution: td,
    description: ch !== undefined ? hashKeyDescription(ch) : slowStart === undefined ? '' : describeSlowStart(slowStart),
  });
}
