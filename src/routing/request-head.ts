/**
 * The request head the route table looks at: protocol-neutral, header names lower-cased.
 *
 * @module
 */

/** Header values as Node and undici give them. */
export type HeaderValue = string | readonly string[] | undefined;

/** A request as the router sees it. */
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
}

/** The value of a header as Envoy matches it: several values joined with `,`. */
export function headerValue(headers: Readonly<Record<string, HeaderValue>>, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  if (typeof v === 'string') return v;
  return v.join(',');
}

/** Parses the query string of a path into a map of first values (`?a` gives `a` → ''). */
export function parseQuery(path: string, start: number): Map<string, string> {
  const out = new Map<string, string>();
  if (start < 0) return out;
  for (const part of path.slice(start + 1).split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rawKey = eq === -1 ? part : part.slice(0, eq);
    const rawVal = eq === -1 ? '' : part.slice(eq + 1);
    let key = rawKey;
    let val = rawVal;
    try {
      key = decodeURIComponent(rawKey.replace(/\+/g, ' '));
      val = decodeURIComponent(rawVal.replace(/\+/g, ' '));
    } catch {
      // keep the raw text for malformed escapes
    }
    if (!out.has(key)) out.set(key, val);
  }
  return out;
}
