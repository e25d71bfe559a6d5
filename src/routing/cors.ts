/**
 * A VirtualService route's `corsPolicy`, as istiod hands it to Envoy (`TranslateCORSPolicy`: the
 * route's CORS filter config, enabled at 100 %) and as Envoy's CORS filter applies it
 * (`cors_filter.cc`):
 *
 * - a request with a non-empty `Origin` is a CORS request; the origin is allowed when a matcher of
 *   `allowOrigins` (or the deprecated `allowOrigin`, exact values) matches it — or matches `*`;
 * - a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered by the
 *   mesh, 200 and no body: `Access-Control-Allow-Origin` (the request's origin, when allowed),
 *   `-Allow-Credentials: true`, `-Allow-Methods` (`*`: the requested method), `-Allow-Headers`
 *   (`*`: the requested headers), `-Max-Age` — unless the origin is not allowed and
 *   `unmatchedPreflights` is FORWARD (the default): then it goes upstream as any request;
 * - the answer to any other request from an allowed origin gets `Access-Control-Allow-Origin`,
 *   `-Allow-Credentials` and `-Expose-Headers`, over whatever the route's own header operations set.
 *
 * @module
 */
import type { CorsPolicy } from '../config/types/networking.ts';
import type { ResponseHeaderOps } from '../core/handler.ts';
import { parseDuration } from '../config/duration.ts';
import { compileStringMatch, type StringMatcher } from './string-matcher.ts';

/**
 * A route's CORS policy, compiled.
 * @category Snapshot
 */
export interface CorsRule {
  /** @internal The allowed origins' matchers (`allowOrigins`, or `allowOrigin` as exact ones). */
  readonly origins: readonly StringMatcher[];
  /** `allowMethods` joined with `,` ('' when none). */
  readonly methods: string;
  readonly headers: string;
  readonly expose: string;
  /** `maxAge` in whole seconds, as text ('' when none). */
  readonly maxAge: string;
  readonly credentials: boolean;
  /** `unmatchedPreflights` is not IGNORE: a preflight from an origin not allowed goes upstream. */
  readonly forwardUnmatched: boolean;
}

/** Compiles `corsPolicy` (already validated); undefined when the route has none. */
export function compileCors(p: CorsPolicy | undefined): CorsRule | undefined {
  if (p === undefined) return undefined;
  const origins = p.allowOrigins !== undefined ? p.allowOrigins.map((m) => compileStringMatch(m)) : (p.allowOrigin ?? []).map((o) => compileStringMatch({ exact: o }));
  const age = p.maxAge === undefined ? undefined : parseDuration(p.maxAge);
  return Object.freeze({
    origins: Object.freeze(origins),
    methods: (p.allowMethods ?? []).join(','),
    headers: (p.allowHeaders ?? []).join(','),
    expose: (p.exposeHeaders ?? []).join(','),
    maxAge: typeof age === 'number' ? String(Math.floor(age / 1000)) : '',
    credentials: p.allowCredentials === true,
    forwardUnmatched: p.unmatchedPreflights !== 'IGNORE',
  });
}

/** Envoy's `isOriginAllowed`: a matcher that matches the origin, or `*`. */
export function originAllowed(rule: CorsRule, origin: string): boolean {
  for (const m of rule.origins) if (m.matches('*') || m.matches(origin)) return true;
  return false;
}

type HeaderValue = string | string[] | undefined;

function one(v: HeaderValue): string {
  return typeof v === 'string' ? v : v === undefined ? '' : (v[0] ?? '');
}

/** What the CORS filter does with a request: nothing, answer a preflight, or add headers to the answer. */
export type CorsOutcome = { readonly kind: 'none' } | { readonly kind: 'preflight'; readonly headers: Record<string, string> } | { readonly kind: 'answer'; readonly ops: ResponseHeaderOps };

const NONE: CorsOutcome = Object.freeze({ kind: 'none' });
const EMPTY: readonly never[] = Object.freeze([]);

/** The CORS filter's decision for a request (`headers`: its lower-case request headers). */
export function corsOutcome(rule: CorsRule, method: string, headers: Readonly<Record<string, HeaderValue>>): CorsOutcome {
  const origin = one(headers.origin);
  if (origin === '') return NONE;
  const allowed = originAllowed(rule, origin);
  const requested = one(headers['access-control-request-method']);
  if (method === 'OPTIONS' && requested !== '') {
    if (!allowed && rule.forwardUnmatched) return NONE;
    const h: Record<string, string> = Object.create(null) as Record<string, string>;
    if (allowed) h['access-control-allow-origin'] = origin;
    if (rule.credentials) h['access-control-allow-credentials'] = 'true';
    if (rule.methods !== '') h['access-control-allow-methods'] = rule.methods === '*' ? requested : rule.methods;
    if (rule.headers !== '') {
      const asked = one(headers['access-control-request-headers']);
      if (rule.headers !== '*') h['access-control-allow-headers'] = rule.headers;
      else if (asked !== '') h['access-control-allow-headers'] = asked;
    }
    if (rule.maxAge !== '') h['access-control-max-age'] = rule.maxAge;
    return { kind: 'preflight', headers: h };
  }
  if (!allowed) return NONE;
  const set: [string, string][] = [['access-control-allow-origin', origin]];
  if (rule.credentials) set.push(['access-control-allow-credentials', 'true']);
  if (rule.expose !== '') set.push(['access-control-expose-headers', rule.expose]);
  return { kind: 'answer', ops: { set, add: EMPTY, remove: EMPTY } };
}
