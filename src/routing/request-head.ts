/**
 * The request head the route table looks at: protocol-neutral, header names lower-cased.
 *
 * @module
 */

/**
 * Header values as Node and undici give them.
 * @category Snapshot
 */
export type HeaderValue = string | readonly string[] | undefined;

/**
 * A request as the router sees it.
 * @category Snapshot
 */
export interface RequestHead {
  /** `GET`, `POST`, … (case-sensitive, as Envoy matches it). */
  readonly method: string;
  /** `http` or `https`. */
  readonly scheme: string;
  /** Host header / :authority, with the port when one was given (`reviews:9080`). */
  readonly authority: string;
  /** Path with the query string (`/reviews/1?x=y`). */
  readonly path: string;
  /** Request headers, names lower-cased. */
  readonly headers: Readonly<Record<string, HeaderValue>>;
  /**
   * The URL's authority, when it may differ from {@link RequestHead.authority} (a Host header was
   * given): its port is the port the call connects to — the listener port a sidecar's routes are
   * chosen by.
   */
  readonly urlAuthority?: string;
}

/**
 * The authority a virtual host is looked up by: the Host header, with the port the call connects
 * to when the Host header names none (`Host: reviews` on a call to `http://reviews:9080` is
 * `reviews:9080`), as a sidecar chooses the route configuration by its listener's port and then
 * the virtual host by the Host among that port's.
 */
export function routingAuthority(head: RequestHead): string {
  const a = head.authority;
  const u = head.urlAuthority;
  if (u === undefined || u === a || portColon(a) !== -1) return a;
  const uc = portColon(u);
  return uc === -1 ? a : `${a}${u.slice(uc)}`;
}

/** Where an authority's port starts (its `:`), or -1 when it names none (an IPv6 literal without one ends with `]`). */
export function portColon(authority: string): number {
  const colon = authority.lastIndexOf(':');
  return colon !== -1 && !authority.endsWith(']') ? colon : -1;
}

/** The port a call to `authority` connects to: its own, else the scheme's default (the listener port a sidecar's routes are built for). */
export function connectPort(authority: string, scheme: string): number {
  const colon = portColon(authority);
  if (colon !== -1) {
    const p = Number(authority.slice(colon + 1));
    if (Number.isInteger(p) && p > 0) return p;
  }
  return scheme === 'https' ? 443 : 80;
}

/** The value of a header as Envoy matches it: several values joined with `,`. */
export function headerValue(headers: Readonly<Record<string, HeaderValue>>, name: string): string | undefined {
  const v = headers[name];
  if (typeof v === 'string') return v;
  // An array of values; anything else (nothing, or an Object.prototype member of a plain
  // object — a header named `constructor`) is no header.
  return Array.isArray(v) ? v.join(',') : undefined;
}

const NO_QUERY: ReadonlyMap<string, string> = new Map();

/**
 * Parses the query string of a path into a map of first values (`?a` gives `a` → ''), names and
 * values as sent, not URL-decoded: Envoy's route and hash policy read the query with
 * `QueryParamsMulti::parseQueryString`, which parses with `decode_params=false`
 * (source/common/http/utility.cc), so `?q=a%20b` matches `exact: "a%20b"`, not `"a b"`.
 */
export function parseQuery(path: string, start: number): ReadonlyMap<string, string> {
  if (start < 0 || start === path.length - 1) return NO_QUERY;
  const out = new Map<string, string>();
  for (const part of path.slice(start + 1).split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = eq === -1 ? part : part.slice(0, eq);
    if (!out.has(key)) out.set(key, eq === -1 ? '' : part.slice(eq + 1));
  }
  return out;
}
