/**
 * Request path normalization as Istio configures Envoy (MeshConfig `pathNormalization`), before
 * anything reads the path:
 *
 * | mode | what Envoy does |
 * |---|---|
 * | `NONE` | nothing |
 * | `BASE` (default) | `normalize_path`: RFC 3986 dot segments (`.`, `..`, and their `%2e` spellings), `\` as `/`, a leading `/`, escaped unreserved characters (`%61` → `a`) unescaped |
 * | `MERGE_SLASHES` | `BASE`, then `merge_slashes` (`//` → `/`) |
 * | `DECODE_AND_MERGE_SLASHES` | `%2F`/`%5C` unescaped first (`UNESCAPE_AND_FORWARD`), then `MERGE_SLASHES` |
 *
 * A path the canonicalizer refuses (an encoded NUL) is answered 400, as Envoy does. Only the
 * path is normalized, never the query. The rules and cases are Envoy's
 * (source/common/http/path_utility.cc and its tests, over Chromium's URL canonicalizer).
 *
 * meshlet then goes further than a sidecar can: the server adapters hand the app the normalized
 * path, so the path authorization judged is exactly the path the app routes on. Calls to mesh
 * hosts are normalized too before they are routed, as istiod sets the mode on the sidecar's
 * outbound listeners as well (listener_builder.go buildHTTPConnectionManager).
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

/** Whether `c` is a character Chromium's path canonicalizer unescapes: ALPHA, DIGIT, `-`, `.`, `_`, `~`. */
function isUnreserved(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

/**
 * Chromium's path canonicalizer (`kPathCharLookup` UNESCAPE): `%41` → `A` for every unreserved
 * character, so `/%61dmin` is `/admin` for authorization exactly as for a router that decodes
 * (find-my-way does). A literal `%` that would begin a new escape once its neighbour is unescaped
 * (`/%%361dmin` → `%61`) is written `%25`, as Chromium's `CheckForNestedEscapes` does, so nothing
 * downstream decodes a second time into a different path.
 */
function unescapeUnreserved(path: string): string {
  let out = '';
  const literal: number[] = [];
  let from = 0;
  for (let i = path.indexOf('%'); i !== -1; i = path.indexOf('%', i + 1)) {
    const hi = hexValue(path.charCodeAt(i + 1));
    const lo = hexValue(path.charCodeAt(i + 2));
    if (hi === -1 || lo === -1) {
      out += path.slice(from, i + 1);
      literal.push(out.length - 1);
      from = i + 1;
      continue;
    }
    const c = hi * 16 + lo;
    if (!isUnreserved(c)) continue;
    out += path.slice(from, i) + String.fromCharCode(c);
    from = i + 3;
    i += 2;
  }
  if (from === 0) return path;
  out += path.slice(from);
  if (literal.length === 0) return out;
  // One pass, in order (a slice per literal `%` rewritten was quadratic: 10 ms for a 16 KiB
  // target of `%%361`s). The characters after each literal are the unescaped ones: a `%25`
  // written for one never makes the one before it an escape (`%` is no hex digit).
  let fixed = '';
  let prev = 0;
  for (const at of literal) {
    if (hexValue(out.charCodeAt(at + 1)) === -1 || hexValue(out.charCodeAt(at + 2)) === -1) continue;
    fixed += `${out.slice(prev, at)}%25`;
    prev = at + 1;
  }
  return prev === 0 ? out : fixed + out.slice(prev);
}

/** Envoy's `normalize_path` (RFC 3986 dot segments, backslashes, unreserved escapes); undefined when the path is refused. */
function canonical(path: string): string | undefined {
  // Chromium refuses an encoded NUL anywhere in a path.
  if (path.indexOf('%00') !== -1) return undefined;
  if (path.indexOf('%') !== -1) path = unescapeUnreserved(path);
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
 * Whether a request target is already normal in every mode, in one scan (every outbound call
 * asks): it starts with `/`, and its path (up to `?`) has no dot segment, backslash, escape or
 * repeated slash, and there is no fragment.
 */
function isPlain(target: string): boolean {
  if (target.charCodeAt(0) !== 47 /* / */) return false;
  let prev = 47;
  for (let i = 1; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c === 63 /* ? */) return target.indexOf('#', i) === -1;
    if (c === 35 /* # */ || c === 37 /* % */ || c === 92 /* \ */ || (prev === 47 && (c === 46 /* . */ || c === 47))) return false;
    prev = c;
  }
  return true;
}

/**
 * The normalized form of a request target (path with query), or undefined when Envoy would
 * refuse it (400). The query is kept as it was. A fragment (`#…`, which a client should not
 * send) is dropped first, whatever the mode: Istio's bootstrap sets Envoy's
 * `http_reject_path_with_fragment` off and keeps `http_strip_fragment_from_path_unsafe_if_disabled`
 * on (pkg/bootstrap/config.go), so the sidecar strips it before normalizing — `/admin#/../pub` is
 * `/admin`, not `/pub`.
 */
export function normalizePath(received: string, mode: PathNormalization): string | undefined {
  if (mode !== 'NONE' && isPlain(received)) return received;
  const hash = received.indexOf('#');
  const target = hash === -1 ? received : received.slice(0, hash);
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
