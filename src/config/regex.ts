/**
 * RE2 regular expressions, as Envoy uses them: RE2 syntax, full-match semantics, and a
 * linear-time matching engine (re2js), so no configured pattern can cause catastrophic
 * backtracking (ReDoS) on request data.
 *
 * @module
 */
import { RE2JS } from 're2js';

/** Istio rejects regexes longer than this. */
export const MAX_REGEX_LENGTH = 1024;

/**
 * A compiled RE2 pattern.
 * @category Snapshot
 */
export interface Re2 {
  /** The source pattern. */
  readonly source: string;
  /** True when the whole input matches (Envoy `safe_regex` semantics). */
  matches(input: string): boolean;
  /**
   * Replaces every match, as Envoy's `regex_rewrite` (RE2::GlobalReplace): in `replacement`,
   * `\0`–`\9` insert a group (`\0` the whole match) and `\\` a backslash; everything else, `$`
   * included, is literal. A replacement naming a group the pattern does not have changes nothing.
   */
  replaceAll(input: string, replacement: string): string;
}

const SAFE_ESCAPES = new Set([...'dDwWbB.\\/-^$*+?()[]{}|tnrf']);

/**
 * Translates an RE2 pattern to an equivalent V8 RegExp when that is provably safe: RE2 syntax
 * that means the same in JavaScript, quantifiers only on single atoms (never on groups), and at
 * most one unbounded quantifier — so V8's backtracking engine runs in linear time on it.
 * Anything else returns undefined and is matched by re2js (linear time by construction).
 */
export function fastPathRegExp(pattern: string): RegExp | undefined {
  let out = '';
  let unbounded = 0;
  let inClass = false;
  let prevAtomIsGroup = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '\\') {
      const n = pattern[i + 1];
      if (n === undefined || !SAFE_ESCAPES.has(n)) return undefined;
      if (n === 's' || n === 'S') return undefined; // RE2 \s is ASCII-only, V8's is Unicode
      out += c + n;
      i++;
      prevAtomIsGroup = false;
      continue;
    }
    if (inClass) {
      if (c === '[' && pattern[i + 1] === ':') return undefined; // POSIX classes
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    switch (c) {
      case '[':
        inClass = true;
        prevAtomIsGroup = false;
        out += c;
        break;
      case '(':
        if (pattern[i + 1] === '?' && pattern.slice(i, i + 3) !== '(?:') return undefined; // flags, named groups
        out += c;
        break;
      case ')':
        prevAtomIsGroup = true;
        out += c;
        break;
      case '*':
      case '+':
      case '?':
      case '{': {
        if (c === '?' && (pattern[i - 1] === '*' || pattern[i - 1] === '+' || pattern[i - 1] === '?' || pattern[i - 1] === '}')) {
          out += c; // lazy modifier
          break;
        }
        if (prevAtomIsGroup) return undefined;
        if (c === '{') {
          const close = pattern.indexOf('}', i);
          if (close === -1) return undefined;
          const body = pattern.slice(i + 1, close);
          if (!/^\d+(,\d*)?$/.test(body)) return undefined;
          if (body.endsWith(',')) unbounded++;
          out += pattern.slice(i, close + 1);
          i = close;
        } else {
          if (c !== '?') unbounded++;
          out += c;
        }
        if (unbounded > 1) return undefined;
        break;
      }
      default:
        prevAtomIsGroup = false;
        out += c;
    }
  }
  if (inClass) return undefined;
  try {
    return new RegExp(`^(?:${out})$`, 'u');
  } catch {
    return undefined;
  }
}

/** Most patterns {@link compileRe2} remembers (the oldest is forgotten first). */
export const RE2_MEMO_SIZE = 4096;
const memo = new Map<string, Re2 | { error: string }>();

/**
 * Compiles an RE2 pattern, or returns the reason it is not valid RE2. The same pattern gives the
 * same (immutable) result: validation and compilation each compile every regex of a config, and
 * re2js's compile is most of a regex's cost at start-up (a cold start of 2,000 resources with 667
 * regexes spent ~90 ms in it).
 */
export function compileRe2(pattern: string): Re2 | { error: string } {
  const known = memo.get(pattern);
  if (known !== undefined) return known;
  const made = Object.freeze(compileRe2Now(pattern));
  if (memo.size >= RE2_MEMO_SIZE) memo.delete(memo.keys().next().value as string);
  memo.set(pattern, made);
  return made;
}

function compileRe2Now(pattern: string): Re2 | { error: string } {
  if (pattern.length > MAX_REGEX_LENGTH) {
    return { error: `regex is ${pattern.length} characters long; the limit is ${MAX_REGEX_LENGTH}` };
  }
  let re: RE2JS;
  try {
    re = RE2JS.compile(pattern);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    return { error: `invalid RE2 regex "${pattern}": ${msg.replace(/^error parsing regexp: /, '')}` };
  }
  const fast = fastPathRegExp(pattern);
  let lastReplacement: string | undefined;
  let lastRewrite: ((...args: unknown[]) => string) | undefined;
  return {
    source: pattern,
    matches: fast === undefined ? (input) => re.matches(input) : (input) => fast.test(input),
    replaceAll: (input, replacement) => {
      if (replacement !== lastReplacement) {
        lastReplacement = replacement;
        lastRewrite = re2Rewrite(replacement, re.groupCount());
      }
      const rewrite = lastRewrite;
      if (rewrite === undefined) return input;
      // RE2::GlobalReplace skips an empty match that starts where the last replaced match ended
      // ("Disallow empty match at end of last match"): `(.*)` replaces `/a/b` once, not also the
      // empty string after it, as Java's rules (re2js's) and JavaScript's would.
      const startArg = re.groupCount() + 1;
      let lastEnd = -1;
      return re.matcher(input).replaceAll((...args: unknown[]) => {
        const match = args[0] as string;
        const start = args[startArg] as number;
        if (match === '' && start === lastEnd) return '';
        lastEnd = start + match.length;
        return rewrite(...args);
      });
    },
  };
}

/**
 * An RE2 rewrite string as a replacer function (RE2::Rewrite): `\d` is group d (an unmatched group
 * is empty), `\\` a backslash, any other character itself; at any other escape RE2 stops the
 * rewrite there (what came before it is kept). Undefined when the rewrite names a group the pattern
 * lacks: RE2::GlobalReplace then replaces nothing (its MaxSubmatch check).
 */
function re2Rewrite(rewrite: string, groups: number): ((...args: unknown[]) => string) | undefined {
  for (let i = 0; i < rewrite.length; i++) {
    if (rewrite[i] !== '\\') continue;
    const n = rewrite[++i];
    if (n !== undefined && n >= '0' && n <= '9' && Number(n) > groups) return undefined;
  }
  const parts: (string | number)[] = [];
  let text = '';
  for (let i = 0; i < rewrite.length; i++) {
    const c = rewrite[i] as string;
    if (c !== '\\') {
      text += c;
      continue;
    }
    const n = rewrite[++i];
    if (n !== undefined && n >= '0' && n <= '9') {
      if (text !== '') parts.push(text);
      text = '';
      parts.push(Number(n));
    } else if (n === '\\') text += '\\';
    else break;
  }
  if (text !== '') parts.push(text);
  return (...args) => {
    let out = '';
    for (const p of parts) out += typeof p === 'string' ? p : ((args[p] as string | null | undefined) ?? '');
    return out;
  };
}
