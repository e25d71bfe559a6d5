/**
 * Request path normalization as Istio configures Envoy (MeshConfig `pathNormalization`), before
 * anything reads the path:
 *
 * | mode | what Envoy does |
 * |---|---|
 * | `NONE` | nothing |
 * | `BASE` (default) | `normalize_path`: RFC 3986 dot segments (`.`, `..`, and their `%2e` spellings), `\` as `/`, a leading `/` |
 * | `MERGE_SLASHES` | `BASE`, then `merge_slashes` (`//` → `/`) |
 * | `DECODE_AND_MERGE_SLASHES` | `%2F`/`%5C` unescaped first (`UNESCAPE_AND_FORWARD`), then `MERGE_SLASHES` |
 *
 * A path the canonicalizer refuses (an encoded NUL) is answered 400, as Envoy does. Only the
 * path is normalized, never the query. The rules and cases are Envoy's
 * (source/common/http/path_utility.cc and its tests, over Chromium's URL canonicalizer).
 *
 * meshlet then goes further than a sidecar can: the server adapters hand the app the normalized
 * path, so the path authorization judged is exactly the path the app routes on.
 *
 * @module
 */

/**
 * MeshConfig `pathNormalization.normalization`.
 * @category Server
 */
export type PathNormalization = 'NONE' | 'BASE' | 'MERGE_SLASHES' | 'DECODE_AND_MERGE_SLASHES';

/** The modes, for validating options. */
export const PATH_NORMALIZATIONS: readonly PathNormalization[] = Object.freeze(['NONE', 'BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES']);

/** Whether a segment is `.` in any spelling (`.`, `%2e`, `%2E`). */
function isDot(s: string): boolean {
  return s === '.' || s === '%2e' || s === '%2E';
}

/** Whether a segment is `..` in any spelling (`..`, `.%2e`, `%2e.`, `%2e%2e`, any case). */
function isDotDot(s: string): boolean {
  if (s === '..') return true;
  if (s.length !== 4 && s.length !== 6) return false;
  const l = s.toLowerCase();
  return l === '.%2e' || l === '%2e.' || l === '%2e%2e';
}

/** Envoy's `normalize_path` (RFC 3986 dot segments, backslashes); undefined when the path is refused. */
function canonical(path: string): string | undefined {
  // Chromium refuses an encoded NUL anywhere in a path.
  if (path.indexOf('%00') !== -1) return undefined;
  const p = path.indexOf('\\') === -1 ? path : path.replace(/\\/g, '/');
  const segments = p.split('/');
  const out: string[] = [];
  // The first element is what precedes the first '/' ('' for an absolute path).
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i] as string;
    const last = i === segments.length - 1;
    if (isDot(seg)) {
      if (last) out.push('');
      continue;
    }
    if (isDotDot(seg)) {
      if (out.length > 1 || (out.length === 1 && out[0] !== '')) out.pop();
      if (last) out.push('');
      continue;
    }
    out.push(seg);
  }
  if (out.length === 0 || out[0] !== '') out.unshift('');
  const joined = out.join('/');
  return joined === '' ? '/' : joined;
}

function mergeSlashes(path: string): string {
  return path.indexOf('//') === -1 ? path : path.replace(/\/{2,}/g, '/');
}

function unescapeSlashes(path: string): string {
  return path.indexOf('%') === -1 ? path : path.replace(/%2f/gi, '/').replace(/%5c/gi, '\\');
}

/**
 * The normalized form of a request target (path with query), or undefined when Envoy would
 * refuse it (400). The query is kept as it was.
 */
export function normalizePath(target: string, mode: PathNormalization): string | undefined {
  if (mode === 'NONE') return target;
  const q = target.indexOf('?');
  let path = q === -1 ? target : target.slice(0, q);
  const query = q === -1 ? '' : target.slice(q);
  // Fast path: an already normal path (no dot segment, backslash, escape or repeated slash).
  const plain = path.charCodeAt(0) === 47 /* / */ && path.indexOf('/.') === -1 && path.indexOf('%') === -1 && path.indexOf('\\') === -1 && path.indexOf('//') === -1;
  if (plain) return target;
  if (mode === 'DECODE_AND_MERGE_SLASHES') path = unescapeSlashes(path);
  const c = canonical(path);
  if (c === undefined) return undefined;
  path = mode === 'BASE' ? c : mergeSlashes(c);
  return path + query;
}
