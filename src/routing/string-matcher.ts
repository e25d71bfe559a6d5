/**
 * Compiled string matchers (Istio `StringMatch`): exact, prefix, RE2 regex (full match, linear
 * time) and presence. Compiled once per snapshot; matching allocates nothing for exact and
 * prefix.
 *
 * @module
 */
import { compileRe2, type Re2 } from '../config/regex.ts';
import type { StringMatch } from '../config/types/common.ts';

/** A compiled matcher over a string or a slice of one. */
export interface StringMatcher {
  /** True if `value[0, end)` matches; `end` defaults to the whole string. */
  matches(value: string, end?: number): boolean;
  /** Compact description, e.g. `prefix "/api"`. */
  toString(): string;
}

function eqIgnoreCase(a: string, aStart: number, b: string, len: number): boolean {
  for (let i = 0; i < len; i++) {
    let x = a.charCodeAt(aStart + i);
    let y = b.charCodeAt(i);
    if (x >= 65 && x <= 90) x += 32;
    if (y >= 65 && y <= 90) y += 32;
    if (x !== y) return false;
  }
  return true;
}

class ExactMatcher implements StringMatcher {
  readonly #value: string;
  readonly #ignoreCase: boolean;
  constructor(value: string, ignoreCase: boolean) {
    this.#value = value;
    this.#ignoreCase = ignoreCase;
  }
  matches(value: string, end = value.length): boolean {
    const v = this.#value;
    if (end !== v.length) return false;
    return this.#ignoreCase ? eqIgnoreCase(value, 0, v, end) : value.startsWith(v);
  }
  toString(): string {
    return `exact ${JSON.stringify(this.#value)}${this.#ignoreCase ? ' (ignore case)' : ''}`;
  }
}

/**
 * Envoy's `path_separated_prefix` (what istiod generates for a Gateway API PathPrefix other than
 * `/`): the path equals the prefix or continues with `/` after it (`/api` matches `/api` and
 * `/api/v1`, not `/apiv1`), case-sensitively.
 */
export class PathSeparatedPrefixMatcher implements StringMatcher {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  matches(value: string, end = value.length): boolean {
    const v = this.#value;
    if (end < v.length || !value.startsWith(v)) return false;
    return end === v.length || value.charCodeAt(v.length) === 47;
  }
  toString(): string {
    return `path prefix ${JSON.stringify(this.#value)}`;
  }
}

class PrefixMatcher implements StringMatcher {
  readonly #value: string;
  readonly #ignoreCase: boolean;
  constructor(value: string, ignoreCase: boolean) {
    this.#value = value;
    this.#ignoreCase = ignoreCase;
  }
  matches(value: string, end = value.length): boolean {
    const v = this.#value;
    if (end < v.length) return false;
    return this.#ignoreCase ? eqIgnoreCase(value, 0, v, v.length) : value.startsWith(v);
  }
  toString(): string {
    return `prefix ${JSON.stringify(this.#value)}${this.#ignoreCase ? ' (ignore case)' : ''}`;
  }
}

class RegexMatcher implements StringMatcher {
  readonly #re: Re2;
  constructor(re: Re2) {
    this.#re = re;
  }
  matches(value: string, end = value.length): boolean {
    return this.#re.matches(end === value.length ? value : value.slice(0, end));
  }
  toString(): string {
    return `regex ${JSON.stringify(this.#re.source)}`;
  }
}

/** Matches any value that is present (used for `{}` and `regex: "*"` header matches). */
export const PRESENT: StringMatcher = Object.freeze({
  matches: () => true,
  toString: () => 'present',
});

/**
 * Compiles a StringMatch. `{}` and `regex: "*"` become {@link PRESENT}.
 * @throws Error if the regex does not compile (validation has already rejected such config).
 */
export function compileStringMatch(m: StringMatch, ignoreCase = false): StringMatcher {
  if (m.exact !== undefined) return new ExactMatcher(m.exact, ignoreCase);
  if (m.prefix !== undefined) return new PrefixMatcher(m.prefix, ignoreCase);
  if (m.regex !== undefined) {
    if (m.regex === '*') return PRESENT;
    const re = compileRe2(m.regex);
    if ('error' in re) throw new Error(re.error);
    return new RegexMatcher(re);
  }
  return PRESENT;
}
