/**
 * The `controlPlane` option: one URL or a list, checked and reduced to origins.
 *
 * @module
 */

/**
 * Checks `controlPlane` (a URL or a list) and returns the origins; throws `TypeError` naming
 * the bad entry.
 */
export function controlPlaneUrls(value: unknown): string[] {
  const list = typeof value === 'string' ? [value] : Array.isArray(value) ? value : undefined;
  if (list === undefined || list.length === 0) throw new TypeError('`controlPlane` must be a URL or a non-empty list of URLs');
  return list.map((u) => {
    let url: URL;
    try {
      url = new URL(String(u));
    } catch {
      throw new TypeError(`\`controlPlane\`: not a URL: ${JSON.stringify(u)}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`\`controlPlane\`: expected an http(s) URL, got ${JSON.stringify(u)}`);
    return url.origin;
  });
}
