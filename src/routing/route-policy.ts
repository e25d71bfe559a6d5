/**
 * Per-route policies compiled from a VirtualService rule: retries (with Istio's default
 * policy), timeout, fault, mirrors, header operations, rewrite, redirect, direct response.
 * Plain immutable data: the data plane reads it, nothing here runs per request.
 *
 * @module
 */
import { STATUS_CODES } from 'node:http';
import { durationMs as ms } from '../config/duration.ts';
import type {
  HeaderOperations,
  HTTPDirectResponse,
  HTTPFaultInjection,
  HTTPRedirect,
  HTTPRetry,
  HTTPRewrite,
} from '../config/types/networking.ts';
import { compileRe2, type Re2 } from '../config/regex.ts';
import { unescapeHeaderValue } from '../config/validate/header-value.ts';

/**
 * A compiled retry policy.
 * @category Snapshot
 */
export interface RetryPolicy {
  /** Retries after the first attempt (0 = none). */
  readonly attempts: number;
  /** Per-attempt timeout in ms, or undefined (the route timeout applies). */
  readonly perTryTimeoutMs: number | undefined;
  /** Envoy retry policies (`5xx`, `connect-failure`, …). */
  readonly retryOn: ReadonlySet<string>;
  /** Status codes retried (from numeric `retryOn` items). */
  readonly retriableStatusCodes: ReadonlySet<number>;
  /** Base interval of the jittered exponential backoff, ms. */
  readonly backoffBaseMs: number;
  /** Avoid hosts already tried. */
  readonly retryIgnorePreviousHosts: boolean;
  /**
   * Tried hosts are avoided under consistent hashing too. Istio adds the previous-hosts predicate
   * to a route with a hash policy only when `retryIgnorePreviousHosts: true` is written
   * (retry.ConvertPolicy leaves the default predicate out then) — except where istiod converts the
   * policy without the hash policy: the default route of a service without a VirtualService
   * (BuildDefaultHTTPOutboundRoute) and a rule with more than one destination (route.go passes
   * `consistentHash` only for a single one), so there it is `retryIgnorePreviousHosts` (`retryWithoutHashPolicy`).
   */
  readonly retryIgnorePreviousHostsSet: boolean;
  readonly retryRemoteLocalities: boolean;
  /** True when the route had no `retries`: the mesh's default policy applies (Istio's, or MeshConfig's `defaultHttpRetryPolicy`). */
  readonly isDefault: boolean;
  /**
   * The default policy is the mesh's `defaultHttpRetryPolicy` (`createMesh({ defaultHttpRetryPolicy })`,
   * MeshConfig's), not Istio's built-in one. Only with `isDefault`.
   */
  readonly meshDefault?: boolean | undefined;
}

/** Istio's default retry policy (reference §2.3): 2 retries on connect-failure, refused-stream, unavailable, cancelled, retriable-status-codes. */
export const DEFAULT_RETRY_ON = 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes';

/**
 * Compiles a route's `retries`. Without them the mesh's default applies: `meshDefault` (from
 * {@link compileMeshDefaultRetry}) when the mesh has a `defaultHttpRetryPolicy`, else Istio's
 * default policy (one shared object). A route's own `retries` replace the default wholly, as
 * istiod's route.go does (`in.Retries`, else `mesh.defaultHttpRetryPolicy`, through ConvertPolicy).
 */
export function compileRetry(r: HTTPRetry | undefined, meshDefault?: RetryPolicy): RetryPolicy {
  return r === undefined ? (meshDefault ?? DEFAULT_RETRY_POLICY) : makeRetry(r);
}

const meshDefaults = new WeakMap<HTTPRetry, RetryPolicy>();

/**
 * MeshConfig's `defaultHttpRetryPolicy` compiled, as istiod's retry.ConvertPolicy reads it: the
 * same rules as a route's `retries` (an unset or 0 `attempts` turns retries off; an unset
 * `retryOn` is Istio's default conditions), marked as the default of routes without `retries`.
 * One object per policy object (so routes compiled again share it).
 */
export function compileMeshDefaultRetry(r: HTTPRetry): RetryPolicy {
  let p = meshDefaults.get(r);
  if (p === undefined) {
    p = Object.freeze({ ...makeRetry(r), isDefault: true, meshDefault: true });
    meshDefaults.set(r, p);
  }
  return p;
}

const defaultRouteRetries = new WeakMap<RetryPolicy, RetryPolicy>();

/**
 * A retry policy as istiod converts it with `retry.ConvertPolicy(policy, false)` — as if the route
 * had no hash policy, though a DestinationRule's consistent hash gives it one — so the
 * previous-hosts predicate stays under consistent hashing unless `retryIgnorePreviousHosts: false`.
 * istiod does so for the default route of a service without a VirtualService
 * (BuildDefaultHTTPOutboundRoute) and for a rule with more than one destination, even when all but
 * one weigh 0 (pilot/pkg/networking/core/route/route.go: `consistentHash` is set only under
 * `len(in.Route) == 1`; the weighted clusters' hash policies are added all the same).
 */
export function retryWithoutHashPolicy(p: RetryPolicy): RetryPolicy {
  if (p.retryIgnorePreviousHostsSet === p.retryIgnorePreviousHosts) return p;
  let out = defaultRouteRetries.get(p);
  if (out === undefined) {
    out = Object.freeze({ ...p, retryIgnorePreviousHostsSet: p.retryIgnorePreviousHosts });
    defaultRouteRetries.set(p, out);
  }
  return out;
}

function makeRetry(r: HTTPRetry | undefined): RetryPolicy {
  // An empty retryOn is unset in Istio's proto (ConvertPolicy keeps the default conditions).
  const retryOnText = r?.retryOn || DEFAULT_RETRY_ON;
  const retryOn = new Set<string>();
  const codes = new Set<number>();
  for (const raw of retryOnText.split(',')) {
    const t = raw.trim();
    if (t === '') continue;
    // As istiod's parseRetryOn: a number HTTP knows is a retriable status code; any other item
    // goes to Envoy's retry_on, which ignores what it does not know.
    if (/^\d+$/.test(t) && STATUS_CODES[Number(t)] !== undefined) {
      codes.add(Number(t));
      retryOn.add('retriable-status-codes');
    } else retryOn.add(t);
  }
  // Istio: with `retries` present, an unset `attempts` is 0 (retries off).
  const attempts = r === undefined ? 2 : (r.attempts ?? 0);
  return Object.freeze({
    attempts,
    // Retries off is no Envoy retry policy at all (Istio retry.ConvertPolicy returns nil for attempts <= 0), so no per-try timeout.
    perTryTimeoutMs: attempts <= 0 ? undefined : ms(r?.perTryTimeout),
    retryOn,
    retriableStatusCodes: codes,
    backoffBaseMs: ms(r?.backoff) ?? 25,
    retryIgnorePreviousHosts: r?.retryIgnorePreviousHosts ?? true,
    retryIgnorePreviousHostsSet: r?.retryIgnorePreviousHosts === true,
    retryRemoteLocalities: r?.retryRemoteLocalities ?? false,
    isDefault: r === undefined,
  });
}

const DEFAULT_RETRY_POLICY = makeRetry(undefined);

/** Prints a retry policy compactly. */
export function retryToString(p: RetryPolicy): string {
  const from = !p.isDefault ? '' : p.meshDefault === true ? ' (mesh defaultHttpRetryPolicy)' : ' (Istio default)';
  if (p.attempts === 0) return `retries off${from}`;
  const on = [...p.retryOn].filter((t) => t !== 'retriable-status-codes' || p.retriableStatusCodes.size === 0);
  const codes = [...p.retriableStatusCodes];
  const per = p.perTryTimeoutMs === undefined ? '' : `, perTry ${p.perTryTimeoutMs}ms`;
  return `retries ${p.attempts}× on ${[...on, ...codes].join(',')}${per}${from}`;
}

/**
 * A compiled fault. Percentages are in [0, 1].
 * @category Snapshot
 */
export interface FaultPolicy {
  readonly delayMs: number | undefined;
  readonly delayFraction: number;
  readonly abortHttpStatus: number | undefined;
  readonly abortGrpcStatus: string | undefined;
  readonly abortFraction: number;
}

/**
 * A `Percent` as the fraction Envoy applies: istiod sends it as a FractionalPercent over a million
 * with the numerator truncated, `uint32(value * 10000)` (route.go translatePercentToFractionalPercent),
 * so `29.2` is 291999 in a million, not 292000.
 */
export function percentFraction(p: { value: number }): number {
  return Math.trunc(p.value * 10000) / 1_000_000;
}

function fraction(p: { value: number } | undefined, legacy?: number): number {
  if (p !== undefined) return percentFraction(p);
  if (legacy !== undefined) return legacy / 100;
  return 0; // Istio: an unset percentage means 0%.
}

/** Compiles a fault. */
export function compileFault(f: HTTPFaultInjection | undefined): FaultPolicy | undefined {
  if (f === undefined) return undefined;
  return Object.freeze({
    delayMs: ms(f.delay?.fixedDelay),
    delayFraction: f.delay === undefined ? 0 : fraction(f.delay.percentage, f.delay.percent),
    abortHttpStatus: f.abort?.httpStatus,
    abortGrpcStatus: f.abort?.grpcStatus,
    abortFraction: f.abort === undefined ? 0 : fraction(f.abort.percentage),
  });
}

/**
 * Compiled header operations (names lower-cased).
 * @category Snapshot
 */
export interface HeaderOps {
  readonly set: readonly (readonly [string, string])[];
  readonly add: readonly (readonly [string, string])[];
  readonly remove: readonly string[];
}

/**
 * Compiles header operations; `:authority`/`host` entries are left out (they become host
 * rewrites). Values are Envoy header formats: `%%` is a literal `%` (other `%VARIABLE%`
 * formatters are sent as written; validation warns about them).
 */
export function compileHeaderOps(ops: HeaderOperations | undefined): HeaderOps | undefined {
  if (ops === undefined) return undefined;
  // Envoy leaves out an operation whose value is empty (HeaderValueOption.keep_empty_value, which
  // istiod never sets): `set: {x: ""}` neither clears nor adds `x`.
  const keep = ([k, v]: [string, string]) => k.toLowerCase() !== 'host' && k.toLowerCase() !== ':authority' && v !== '';
  // istiod sorts each map by its keys as written (translateAppendHeaders, sort.Stable), which decides
  // between `X-Foo` and `x-foo` in one map: the later in that order is set last.
  const list = (m: Record<string, string> | undefined) =>
    Object.entries(m ?? {}).filter(keep).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => [k.toLowerCase(), unescapeHeaderValue(v)] as const);
  return Object.freeze({
    set: list(ops.set),
    add: list(ops.add),
    remove: (ops.remove ?? []).map((k) => k.toLowerCase()),
  });
}

/**
 * A rule's and its one destination's header operations, as istiod gives them to Envoy: appended
 * to the route's own lists (route.go processDestination), one HeaderParser where every remove runs
 * first, then every overwrite, then every append, each in list order (route's, then the
 * destination's) — HeaderParser::evaluateHeaders. So the destination's remove cannot undo the
 * route's `add`, and the route's `add` comes after the destination's `set`.
 */
export function mergeDestinationOps(route: HeaderOps | undefined, dest: HeaderOps | undefined): HeaderOps | undefined {
  if (route === undefined || dest === undefined) return route ?? dest;
  return Object.freeze({ set: [...route.set, ...dest.set], add: [...route.add, ...dest.add], remove: [...route.remove, ...dest.remove] });
}

/** The host rewrite a header operation asks for (`set` beats `add`), if any. */
export function authorityFromHeaderOps(ops: HeaderOperations | undefined): string | undefined {
  const find = (m: Record<string, string> | undefined) =>
    Object.entries(m ?? {}).find(([k]) => k.toLowerCase() === 'host' || k.toLowerCase() === ':authority')?.[1];
  // An empty value is no host rewrite (route.go only rewrites a non-empty authority).
  const v = find(ops?.set) || find(ops?.add);
  return v === undefined || v === '' ? undefined : unescapeHeaderValue(v);
}

/**
 * A compiled rewrite.
 * @category Snapshot
 */
export interface RewritePolicy {
  readonly uriPrefix: string | undefined;
  readonly uriRegex: Re2 | undefined;
  readonly uriRegexReplacement: string | undefined;
  readonly authority: string | undefined;
}

/** Compiles a rewrite (plus a host rewrite from header operations). */
export function compileRewrite(r: HTTPRewrite | undefined, headerAuthority: string | undefined): RewritePolicy | undefined {
  if (r === undefined && headerAuthority === undefined) return undefined;
  let re: Re2 | undefined;
  if (r?.uriRegexRewrite?.match !== undefined) {
    const c = compileRe2(r.uriRegexRewrite.match);
    if (!('error' in c)) re = c;
  }
  return Object.freeze({
    uriPrefix: r?.uri,
    uriRegex: re,
    uriRegexReplacement: r?.uriRegexRewrite?.rewrite,
    // An empty rewrite authority is none (route.go checks `GetAuthority() != ""`).
    authority: r?.authority || headerAuthority,
  });
}

/**
 * A compiled redirect.
 * @category Snapshot
 */
export interface RedirectPolicy extends HTTPRedirect {
  readonly redirectCode: number;
}

/** Compiles a redirect (default code 301). */
export function compileRedirect(r: HTTPRedirect | undefined): RedirectPolicy | undefined {
  return r === undefined ? undefined : Object.freeze({ ...r, redirectCode: r.redirectCode ?? 301 });
}

/**
 * A compiled direct response.
 * @category Snapshot
 */
export interface DirectResponsePolicy {
  readonly status: number;
  readonly body: Buffer | undefined;
}

/** Compiles a direct response. */
export function compileDirectResponse(d: HTTPDirectResponse | undefined): DirectResponsePolicy | undefined {
  if (d === undefined) return undefined;
  const body = d.body?.string !== undefined ? Buffer.from(d.body.string) : d.body?.bytes !== undefined ? Buffer.from(d.body.bytes, 'base64') : undefined;
  return Object.freeze({ status: d.status, body });
}

/** Route timeout in ms (0 and unset mean none). */
export function compileTimeout(t: string | undefined): number | undefined {
  const v = ms(t);
  return v === undefined || v === 0 ? undefined : v;
}
