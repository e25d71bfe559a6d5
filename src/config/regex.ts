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

/** A compiled RE2 pattern. */
export interface Re2 {
  /** The source pattern. */
  readonly source: string;
  /** True when the whole input matches (Envoy `safe_regex` semantics). */
  matches(input: string): boolean;
  /** Replaces every match (`\1` or `$1` refer to groups), as Envoy's `regex_rewrite`. */
  replaceAll(input: string, replacement: string): string;
}

/** Compiles an RE2 pattern, or returns the reason it is not valid RE2. */
export function compileRe2(pattern: string): Re2 | { error: string } {
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
  return {
    source: pattern,
    matches: (input) => re.matches(input),
    // RE2 rewrites use \1; re2js uses $1.
    replaceAll: (input, replacement) => re.matcher(input).replaceAll(replacement.replace(/\\(\d)/g, '$$$1')),
  };
}
