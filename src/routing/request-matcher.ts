/**
 * A compiled `HTTPMatchRequest`: every condition of one match block, ANDed.
 *
 * @module
 */
import type { HTTPMatchRequest } from '../config/types/networking.ts';
import type { StringMatch } from '../config/types/common.ts';
import { headerValue, parseQuery, type RequestHead } from './request-head.ts';
import { compileStringMatch, PathSeparatedPrefixMatcher, PRESENT, type StringMatcher } from './string-matcher.ts';

/** Per-lookup scratch state, so the query string is parsed at most once per request. */
export interface MatchScratch {
  /** Index of `?` in the path, or -1. */
  queryStart: number;
  query: ReadonlyMap<string, string> | undefined;
}

/** The request-head field a pseudo-header match reads (Envoy matches `:method`, `:path`, … as headers). */
type Pseudo = 'method' | 'authority' | 'path' | 'scheme' | 'status';

interface HeaderCondition {
  readonly name: string;
  readonly matcher: StringMatcher;
  /** Presence matcher: `{}` or `regex: "*"`. */
  readonly presence: boolean;
  /** For `:method`, `:authority`, `:path`, `:scheme`, `:status`: the field read instead of a header. */
  readonly pseudo: Pseudo | undefined;
}

function compileHeaders(map: Readonly<Record<string, StringMatch>> | undefined): HeaderCondition[] {
  const out: HeaderCondition[] = [];
  for (const [name, sm] of Object.entries(map ?? {})) {
    const lower = name.toLowerCase();
    // Istio ignores these keys in `headers` (they have their own match fields).
    if (lower === 'uri' || lower === 'scheme' || lower === 'method' || lower === 'authority') continue;
    const matcher = compileStringMatch(sm);
    // `host` is :authority, as Envoy's header map looks it up (a legacy alias): the Host the call is routed by.
    const pseudo = lower === 'host' ? 'authority' : lower.startsWith(':') ? (lower.slice(1) as Pseudo) : undefined;
    out.push({ name: lower, matcher, presence: matcher === PRESENT, pseudo });
  }
  return out;
}

/** The value a header condition looks at: a header, or for a pseudo-header the request-head field (`:status` never, on a request). */
function conditionValue(head: RequestHead, h: HeaderCondition): string | undefined {
  switch (h.pseudo) {
    case undefined: return headerValue(head.headers, h.name);
    case 'method': return head.method;
    case 'authority': return head.authority;
    case 'path': return head.path;
    case 'scheme': return head.scheme;
    default: return undefined;
  }
}

/** One compiled match block. */
export class RequestMatcher {
  /** The block's `name`, if any. */
  readonly name: string | undefined;
  /**
   * What a URI rewrite replaces when this block matched: the prefix of a `prefix` match, the
   * whole path (without the query) for `exact` and `regex`, `/` otherwise — Istio's match without
   * a uri is `prefix: /` (Envoy's `prefix_rewrite` on Istio's route match).
   */
  readonly rewritePrefix: { readonly kind: 'prefix' | 'exact' | 'regex' | 'other'; readonly value: string; readonly ignoreCase: boolean };
  readonly #uri: StringMatcher | undefined;
  readonly #scheme: StringMatcher | undefined;
  readonly #method: StringMatcher | undefined;
  readonly #authority: StringMatcher | undefined;
  readonly #headers: readonly HeaderCondition[];
  readonly #without: readonly HeaderCondition[];
  readonly #query: readonly { readonly name: string; readonly matcher: StringMatcher }[];
  readonly #description: string;

  /**
   * `pathSeparatedPrefix`: a `prefix` other than `/` is Envoy's `path_separated_prefix`, as istiod
   * generates it for routes with Gateway API semantics (route.go `translateRouteMatch`).
   */
  constructor(m: HTTPMatchRequest, pathSeparatedPrefix = false) {
    this.name = m.name;
    this.rewritePrefix = Object.freeze(
      m.uri?.prefix !== undefined
        ? { kind: 'prefix' as const, value: m.uri.prefix, ignoreCase: m.ignoreUriCase === true }
        : m.uri?.exact !== undefined
          ? { kind: 'exact' as const, value: m.uri.exact, ignoreCase: m.ignoreUriCase === true }
          : m.uri?.regex !== undefined
            ? { kind: 'regex' as const, value: m.uri.regex, ignoreCase: false }
            : { kind: 'other' as const, value: '/', ignoreCase: false },
    );
    this.#uri =
      m.uri === undefined
        ? undefined
        : pathSeparatedPrefix && m.uri.prefix !== undefined && m.uri.prefix !== '/'
          ? new PathSeparatedPrefixMatcher(m.uri.prefix.endsWith('/') ? m.uri.prefix.slice(0, -1) : m.uri.prefix)
          : compileStringMatch(m.uri, m.ignoreUriCase === true && m.uri.regex === undefined);
    this.#scheme = m.scheme === undefined ? undefined : compileStringMatch(m.scheme);
    this.#method = m.method === undefined ? undefined : compileStringMatch(m.method);
    this.#authority = m.authority === undefined ? undefined : compileStringMatch(m.authority);
    this.#headers = compileHeaders(m.headers);
    this.#without = compileHeaders(m.withoutHeaders);
    this.#query = Object.entries(m.queryParams ?? {}).map(([name, sm]) => ({ name, matcher: compileStringMatch(sm) }));
    const parts: string[] = [];
    if (this.#uri) parts.push(`uri ${this.#uri}`);
    if (this.#scheme) parts.push(`scheme ${this.#scheme}`);
    if (this.#method) parts.push(`method ${this.#method}`);
    if (this.#authority) parts.push(`authority ${this.#authority}`);
    for (const h of this.#headers) parts.push(`header ${h.name} ${h.matcher}`);
    for (const h of this.#without) parts.push(`without header ${h.name} ${h.matcher}`);
    for (const q of this.#query) parts.push(`query ${q.name} ${q.matcher}`);
    if (m.port !== undefined) parts.push(`port ${m.port}`);
    this.#description = parts.length === 0 ? 'any request' : parts.join(' and ');
  }

  /** True if the request satisfies every condition of the block. */
  matches(head: RequestHead, scratch: MatchScratch): boolean {
    const path = head.path;
    if (this.#uri !== undefined && !this.#uri.matches(path, scratch.queryStart === -1 ? path.length : scratch.queryStart)) return false;
    if (this.#method !== undefined && !this.#method.matches(head.method)) return false;
    if (this.#scheme !== undefined && !this.#scheme.matches(head.scheme)) return false;
    if (this.#authority !== undefined && !this.#authority.matches(head.authority)) return false;
    const hs = this.#headers;
    for (let i = 0; i < hs.length; i++) {
      const h = hs[i] as HeaderCondition;
      const v = conditionValue(head, h);
      if (v === undefined || !h.matcher.matches(v)) return false;
    }
    const ws = this.#without;
    for (let i = 0; i < ws.length; i++) {
      const h = ws[i] as HeaderCondition;
      const v = conditionValue(head, h);
      // Istio: invert_match with treat_missing_header_as_empty, except presence matchers.
      if (v === undefined) {
        if (h.presence) continue;
        if (h.matcher.matches('')) return false;
        continue;
      }
      if (h.matcher.matches(v)) return false;
    }
    const qs = this.#query;
    if (qs.length > 0) {
      if (scratch.query === undefined) scratch.query = parseQuery(path, scratch.queryStart);
      for (let i = 0; i < qs.length; i++) {
        const q = qs[i] as { name: string; matcher: StringMatcher };
        const v = scratch.query.get(q.name);
        if (v === undefined || !q.matcher.matches(v)) return false;
      }
    }
    return true;
  }

  /** e.g. `uri prefix "/api" and header end-user exact "jason"`. */
  toString(): string {
    return this.#description;
  }
}

/** Istio's catch-all test (`IsCatchAllRoute`), shared with the IST0130 analyzer. */
export { isCatchAllMatch } from '../config/analyze/match-order.ts';
