/**
 * `paths` with the `{*}` / `{**}` URI-template operators, as Istio hands them to Envoy and
 * Envoy matches them: Istio replaces `{*}` with `*` and `{**}` with `**`
 * (`matcher.PathTemplateMatcher`), Envoy's `uri_template` extension parses the result
 * (`parsePathPatternSyntax`) and full-matches a regex against the path without its query and
 * fragment:
 *
 * - `*` is one path segment: `[a-zA-Z0-9-._~%!$&'()+,;:@=]+` (RFC 3986 pchar without `*`, at
 *   least one character, never `/`);
 * - `**` is any text: the same characters and `/`, possibly none;
 * - literals are segments of those characters; segments are joined by `/`; a trailing `/` is
 *   an empty last segment; text after an operator that does not start with `/` is a suffix.
 *
 * So `/allow/admin/{**}` matches `/allow/admin/` and `/allow/admin/a/b` but not `/allow/admin`,
 * and `/store/{**}/cart` matches `/store//cart` but not `/store/cart` (Istio's
 * `TestAuthz_PathTemplating`). A template Envoy would refuse is reported, never matched.
 *
 * @module
 */
import { fullRegex, type StringMatcher } from './strings.ts';

/** Envoy's `kLiteral`: RFC 3986 pchar without `*` (a sub-delim it uses as the operator). */
const LITERAL_CHARS = "a-zA-Z0-9\\-._~%!$&'()+,;:@=";
const LITERAL = new RegExp(`^[${LITERAL_CHARS}]+$`);
const PATH_GLOB = `[${LITERAL_CHARS}]+`;
const TEXT_GLOB = `[${LITERAL_CHARS}/]*`;

/** True when an Istio path value is a URI template (contains `{*}` or `{**}`). */
export function isPathTemplate(path: string): boolean {
  return path.includes('{*}') || path.includes('{**}');
}

type Segment = { op: '*' | '**' } | { literal: string };

/** Envoy's `toRegexPattern(literal)`: escapes `$ ( ) + .`, the only regex metacharacters a literal may hold. */
function literalRegex(s: string): string {
  return s.replace(/[$()+.]/g, '\\$&');
}

function parseSegment(rest: string): { seg: Segment; rest: string } | { error: string } {
  if (rest.startsWith('**')) return { seg: { op: '**' }, rest: rest.slice(2) };
  if (rest.startsWith('*')) return { seg: { op: '*' }, rest: rest.slice(1) };
  if (rest.startsWith('{')) return { error: 'variables ({name}) are not part of Istio paths' };
  const slash = rest.indexOf('/');
  const literal = slash === -1 ? rest : rest.slice(0, slash);
  if (!LITERAL.test(literal)) return { error: `invalid literal "${literal}"` };
  return { seg: { literal }, rest: rest.slice(literal.length) };
}

/**
 * Compiles an Istio `paths` template into Envoy's matcher, or says why Envoy would reject it.
 * The matcher's `matchTo(path, end)` is given the path and where its query or fragment starts.
 */
export function compilePathTemplate(istioPath: string): StringMatcher | { error: string } {
  const template = istioPath.replaceAll('{**}', '**').replaceAll('{*}', '*');
  if (!/^\/[\x21-\x7e]*$/.test(template)) return { error: `invalid path template "${istioPath}": must start with "/" and hold printable characters only` };
  const segments: Segment[] = [];
  let suffix = '';
  let rest = template.slice(1);
  while (rest !== '') {
    const parsed = parseSegment(rest);
    if ('error' in parsed) return { error: `invalid path template "${istioPath}": ${parsed.error}` };
    segments.push(parsed.seg);
    rest = parsed.rest;
    if (rest === '') break;
    if (rest === '/') {
      segments.push({ literal: '' });
      break;
    }
    if (rest.startsWith('/')) {
      rest = rest.slice(1);
      continue;
    }
    if (!LITERAL.test(rest)) return { error: `invalid path template "${istioPath}": invalid suffix "${rest}"` };
    suffix = rest;
    break;
  }
  let textGlobSeen = false;
  for (const s of segments) {
    if (!('op' in s)) continue;
    if (textGlobSeen) return { error: `invalid path template "${istioPath}": no operator may follow {**}` };
    textGlobSeen = s.op === '**';
  }
  const body = segments.map((s) => ('op' in s ? (s.op === '*' ? PATH_GLOB : TEXT_GLOB) : literalRegex(s.literal))).join('/');
  const pattern = `/${body}${literalRegex(suffix)}`;
  return fullRegex(`uri_template:${template}`, pattern);
}
