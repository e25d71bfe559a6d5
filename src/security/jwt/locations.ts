/**
 * Where a JWT rule looks for tokens, and how a token is taken out of the request, as Envoy's
 * `jwt_authn` extractor does it:
 *
 * - **Headers** (`fromHeaders`): the value must contain the prefix (case-sensitive; Envoy finds
 *   it anywhere in the value, not only at the start); the token is the run of base64url and `.`
 *   characters that follows it, spaces before it skipped. An empty prefix takes the whole value.
 * - **Query parameters** (`fromParams`): the percent-decoded value of the parameter.
 * - **Cookies** (`fromCookies`): the cookie's value, surrounding double quotes removed; with two
 *   cookies of one name the first counts (browsers send path-scoped cookies that way).
 * - **Default** (no location configured): `Authorization: Bearer <token>`, then `access_token`.
 *
 * Locations are ordered as Envoy's extractor orders them (headers by name and prefix, then
 * parameters, then cookies, each sorted), and Envoy verifies the tokens it finds from the last
 * to the first, which decides the status reported when several fail.
 *
 * meshlet refuses one header or parameter that carries two different tokens (a repeated
 * `Authorization` header, `?access_token=a&access_token=b`): Envoy would check the first and let
 * the app see the other; here the request is answered `Found multiple Jwt tokens`.
 *
 * @module
 */
import type { Headers } from '../../core/handler.ts';

/** One place a token may be. */
export type TokenLocation =
  | { readonly kind: 'header'; readonly name: string; readonly prefix: string }
  | { readonly kind: 'param'; readonly name: string }
  | { readonly kind: 'cookie'; readonly name: string };

/** What the extractor reads and, when a token is not forwarded, changes. */
export interface TokenCarrier {
  /** Path with query. */
  path: string;
  /** Lower-cased header names. */
  readonly headers: Headers;
  /** Set when `headers` was changed, so the adapter updates what the app sees. */
  headersChanged?: boolean;
}

/** The default locations (RFC 6750): `Authorization: Bearer`, then `access_token`. */
export const DEFAULT_LOCATIONS: readonly TokenLocation[] = Object.freeze([
  Object.freeze({ kind: 'header', name: 'authorization', prefix: 'Bearer ' } as const),
  Object.freeze({ kind: 'param', name: 'access_token' } as const),
]);

/** A rule's locations in Envoy's extraction order, the defaults when none is configured. */
export function ruleLocations(rule: {
  readonly fromHeaders?: readonly { readonly name: string; readonly prefix?: string }[];
  readonly fromParams?: readonly string[];
  readonly fromCookies?: readonly string[];
}): readonly TokenLocation[] {
  const headers = rule.fromHeaders ?? [];
  const params = rule.fromParams ?? [];
  const cookies = rule.fromCookies ?? [];
  if (headers.length === 0 && params.length === 0 && cookies.length === 0) return DEFAULT_LOCATIONS;
  const hs = new Map<string, TokenLocation>();
  for (const h of headers) {
    const name = h.name.toLowerCase();
    const prefix = h.prefix ?? '';
    hs.set(name + prefix, { kind: 'header', name, prefix });
  }
  const sorted = <T>(m: Map<string, T>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
  return Object.freeze([
    ...sorted(hs),
    ...sorted(new Map(params.map((p) => [p, { kind: 'param', name: p } as const]))),
    ...sorted(new Map(cookies.map((c) => [c, { kind: 'cookie', name: c } as const]))),
  ]);
}

const described = new WeakMap<TokenLocation, string>();

/** Prints a location as configuration names it. */
export function describeLocation(loc: TokenLocation): string {
  let d = described.get(loc);
  if (d === undefined) {
    d = loc.kind === 'header' ? (loc.prefix === '' ? `header ${loc.name}` : `header ${loc.name} (prefix ${JSON.stringify(loc.prefix)})`) : loc.kind === 'param' ? `query parameter ${loc.name}` : `cookie ${loc.name}`;
    described.set(loc, d);
  }
  return d;
}

/** A run of base64url characters and `.` (RFC 4648 §5), what a compact JWT is made of. */
const JWT_RUN = /[A-Za-z0-9_.-]+/g;
const WHOLE_JWT_RUN = /^[A-Za-z0-9_.-]+$/;

/** Envoy's `extractJWT`: the first run of JWT characters from `after`; the whole value when there is none. */
export function extractJwtRun(value: string, after: number): string {
  JWT_RUN.lastIndex = after;
  const m = JWT_RUN.exec(value);
  return m === null ? value : m[0];
}

/** True when `s` is one whole run of JWT characters: then `extractJwtRun(x + s, x.length)` is `s`. */
export function isJwtRun(s: string): boolean {
  return WHOLE_JWT_RUN.test(s);
}

function percentDecode(s: string): string {
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function valuesOf(headers: Headers, name: string): readonly string[] {
  const v = Object.hasOwn(headers, name) ? headers[name] : undefined;
  if (v === undefined) return [];
  return typeof v === 'string' ? [v] : v;
}

/** Splits a path's query into `[decoded name, decoded value, raw part]`. */
function queryParts(path: string): [string, string, string][] {
  const q = path.indexOf('?');
  if (q === -1) return [];
  return path
    .slice(q + 1)
    .split('&')
    .filter((p) => p !== '')
    .map((raw) => {
      const eq = raw.indexOf('=');
      return eq === -1 ? [percentDecode(raw), '', raw] : [percentDecode(raw.slice(0, eq)), percentDecode(raw.slice(eq + 1)), raw];
    });
}

/** Splits one Cookie header value into `[name, value]` pairs (Envoy's `parseCookieValue`). */
function cookiePairs(header: string): [string, string][] {
  const out: [string, string][] = [];
  for (const part of header.split(';')) {
    const p = part.trimStart();
    const eq = p.indexOf('=');
    if (eq === -1) continue;
    let v = p.slice(eq + 1);
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    out.push([p.slice(0, eq), v]);
  }
  return out;
}

/** No token: shared by every location that has none. */
const NONE: readonly string[] = Object.freeze([]);

/** The tokens one location holds. */
export interface Found {
  readonly location: TokenLocation;
  /** The distinct tokens there (more than one is refused by the caller). */
  readonly tokens: readonly string[];
}

/** The tokens of one request, with the query and cookies parsed once for every rule. */
export class RequestTokens {
  readonly #req: TokenCarrier;
  readonly #knownRun: ((s: string) => boolean) | undefined;
  #params: Map<string, string[]> | undefined;
  #cookies: Map<string, string> | undefined;

  /**
   * `knownRun`, when given, says of a header's rest after its prefix whether it is already known
   * to be one whole run of JWT characters (a token the verified-token cache holds, checked with
   * {@link isJwtRun} when it was added): that rest is then the token as it is, without scanning it
   * again (a ~700-character RS256 token took ~0.5 µs of the regular expression per request).
   */
  constructor(req: TokenCarrier, knownRun?: (s: string) => boolean) {
    this.#req = req;
    this.#knownRun = knownRun;
  }

  /** The token in one value of header location `loc`, or undefined when the value lacks the prefix. */
  #inHeader(loc: { readonly prefix: string }, value: string): string | undefined {
    if (loc.prefix === '') return value;
    const at = value.indexOf(loc.prefix);
    if (at === -1) return undefined;
    const start = at + loc.prefix.length;
    const known = this.#knownRun;
    if (known !== undefined && start < value.length) {
      const rest = value.slice(start);
      return known(rest) ? rest : extractJwtRun(value, start);
    }
    return extractJwtRun(value, start);
  }

  /** The distinct tokens at `loc` (none, one, or several); read-only (an empty result may be shared). */
  at(loc: TokenLocation): readonly string[] {
    switch (loc.kind) {
      case 'header': {
        const headers = this.#req.headers;
        const v = Object.hasOwn(headers, loc.name) ? headers[loc.name] : undefined;
        if (v === undefined) return NONE;
        if (typeof v === 'string') {
          // One header line, the common case: no list of values to walk.
          const token = this.#inHeader(loc, v);
          return token === undefined ? NONE : [token];
        }
        const out: string[] = [];
        for (const value of v) {
          const token = this.#inHeader(loc, value);
          if (token !== undefined && !out.includes(token)) out.push(token);
        }
        return out;
      }
      case 'param': {
        // Most queries do not mention the parameter at all: skip the parse (an encoded name has a '%').
        const q = this.#req.path.indexOf('?');
        if (q === -1) return NONE;
        if (this.#params === undefined && !this.#req.path.includes(loc.name, q) && !this.#req.path.includes('%', q)) return NONE;
        if (this.#params === undefined) {
          this.#params = new Map();
          for (const [k, v] of queryParts(this.#req.path)) {
            const list = this.#params.get(k);
            if (list === undefined) this.#params.set(k, [v]);
            else if (!list.includes(v)) list.push(v);
          }
        }
        return this.#params.get(loc.name) ?? [];
      }
      default: {
        if (this.#cookies === undefined) {
          this.#cookies = new Map();
          for (const h of valuesOf(this.#req.headers, 'cookie')) {
            for (const [k, v] of cookiePairs(h)) if (!this.#cookies.has(k)) this.#cookies.set(k, v);
          }
        }
        const v = this.#cookies.get(loc.name);
        return v === undefined ? [] : [v];
      }
    }
  }
}

/**
 * Takes the token out of the request: the whole header (as Envoy removes it), every occurrence of
 * the query parameter, every cookie of that name (the Cookie header goes when it is left empty).
 */
export function removeToken(req: TokenCarrier, loc: TokenLocation): void {
  switch (loc.kind) {
    case 'header':
      if (Object.hasOwn(req.headers, loc.name)) {
        delete req.headers[loc.name];
        req.headersChanged = true;
      }
      return;
    case 'param': {
      const q = req.path.indexOf('?');
      if (q === -1) return;
      const kept = queryParts(req.path)
        .filter(([k]) => k !== loc.name)
        .map(([, , raw]) => raw);
      req.path = kept.length === 0 ? req.path.slice(0, q) : `${req.path.slice(0, q)}?${kept.join('&')}`;
      return;
    }
    default: {
      const values = valuesOf(req.headers, 'cookie');
      if (values.length === 0) return;
      const kept = values
        .map((h) =>
          h
            .split(';')
            .map((p) => p.trim())
            .filter((p) => p !== '' && !(p.startsWith(`${loc.name}=`) || p === loc.name))
            .join('; '),
        )
        .filter((h) => h !== '');
      if (kept.length === 0) delete req.headers.cookie;
      else req.headers.cookie = kept.length === 1 ? (kept[0] as string) : kept;
      req.headersChanged = true;
    }
  }
}
