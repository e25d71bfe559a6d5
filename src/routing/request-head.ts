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
  if (u === undefined || u === a) return a;
  // The Host names a port already (an IPv6 literal ends with `]` when it has none).
  const colon = a.lastIndexOf(':');
  if (colon !== -1 && !a.endsWith(']')) return a;
  const uc = u.lastIndexOf(':');
  if (uc === -1 || u.endsWith(']')) return a;
  return `${a}${u.slice(uc)}`;
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

function decode(s: string): string {
  if (s.indexOf('%') === -1 && s.indexOf('+') === -1) return s;
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s; // keep the raw text for malformed escapes
  }
}

/** Parses the query string of a path into a map of first values (`?a` gives `a` → ''). */
export function parseQuery(path: string, start: number): ReadonlyMap<string, string> {
  if (start < 0 || start === path.length - 1) return NO_QUERY;
  const out = new Map<string, string>();
  for (const part of path.slice(start + 1).split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = decode(eq === -1 ? part : part.slice(0, eq));
    if (!out.has(key)) out.set(key, decode(eq === -1 ? '' : part.slice(eq + 1)));
  }
  return out;
}
