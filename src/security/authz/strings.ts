/**
 * Envoy's string matchers as Istio's authorization builder generates them
 * (`pilot/pkg/security/authz/matcher`): exact, prefix, suffix (optionally ignoring ASCII case,
 * as `absl::EqualsIgnoreCase` does), and the few RE2 full-match regexes Istio writes (`.+` for
 * the `*` presence value, `spiffe://.*<suffix>`, …). Matchers are built once per policy and
 * allocate nothing when they run.
 *
 * @module
 */

/** A compiled string matcher. */
export interface StringMatcher {
  /** True when `s` matches (the whole of `s`, Envoy's semantics). */
  match(s: string): boolean;
  /** True when `s.slice(0, end)` matches, without slicing (paths without their query). */
  matchTo(s: string, end: number): boolean;
  /** Envoy's config form, e.g. `exact:/a`, `prefix(i):api.`, `regex:.+`. */
  toString(): string;
}

function lowerAscii(c: number): number {
  return c >= 65 && c <= 90 ? c + 32 : c;
}

/** True when `s[at..at+v.length)` equals `v`, ignoring ASCII case. */
function regionEqualsIgnoreCase(s: string, at: number, v: string): boolean {
  for (let i = 0; i < v.length; i++) {
    if (lowerAscii(s.charCodeAt(at + i)) !== lowerAscii(v.charCodeAt(i))) return false;
  }
  return true;
}

class Exact implements StringMatcher {
  readonly #v: string;
  readonly #ic: boolean;
  constructor(v: string, ignoreCase: boolean) {
    this.#v = v;
    this.#ic = ignoreCase;
  }
  match(s: string): boolean {
    return this.#ic ? s.length === this.#v.length && regionEqualsIgnoreCase(s, 0, this.#v) : s === this.#v;
  }
  matchTo(s: string, end: number): boolean {
    if (end !== this.#v.length) return false;
    return this.#ic ? regionEqualsIgnoreCase(s, 0, this.#v) : s.startsWith(this.#v);
  }
  toString(): string {
    return `exact${this.#ic ? '(i)' : ''}:${this.#v}`;
  }
}

class Prefix implements StringMatcher {
  readonly #v: string;
  readonly #ic: boolean;
  constructor(v: string, ignoreCase: boolean) {
    this.#v = v;
    this.#ic = ignoreCase;
  }
  match(s: string): boolean {
    return this.matchTo(s, s.length);
  }
  matchTo(s: string, end: number): boolean {
    if (end < this.#v.length) return false;
    return this.#ic ? regionEqualsIgnoreCase(s, 0, this.#v) : s.startsWith(this.#v);
  }
  toString(): string {
    return `prefix${this.#ic ? '(i)' : ''}:${this.#v}`;
  }
}

class Suffix implements StringMatcher {
  readonly #v: string;
  readonly #ic: boolean;
  constructor(v: string, ignoreCase: boolean) {
    this.#v = v;
    this.#ic = ignoreCase;
  }
  match(s: string): boolean {
    return this.matchTo(s, s.length);
  }
  matchTo(s: string, end: number): boolean {
    if (end < this.#v.length) return false;
    return this.#ic ? regionEqualsIgnoreCase(s, end - this.#v.length, this.#v) : s.endsWith(this.#v, end);
  }
  toString(): string {
    return `suffix${this.#ic ? '(i)' : ''}:${this.#v}`;
  }
}

/** RE2 `.+` (full match): one or more characters, none of them a newline. */
class NonEmpty implements StringMatcher {
  match(s: string): boolean {
    return this.matchTo(s, s.length);
  }
  matchTo(s: string, end: number): boolean {
    if (end === 0) return false;
    const nl = s.indexOf('\n');
    return nl === -1 || nl >= end;
  }
  toString(): string {
    return 'regex:.+';
  }
}

/** A full-match regex (built by this module from RE2-compatible pieces). */
class Regex implements StringMatcher {
  readonly #re: RegExp;
  readonly #source: string;
  constructor(source: string, re: RegExp) {
    this.#source = source;
    this.#re = re;
  }
  match(s: string): boolean {
    return this.#re.test(s);
  }
  matchTo(s: string, end: number): boolean {
    return this.#re.test(end === s.length ? s : s.slice(0, end));
  }
  toString(): string {
    return `regex:${this.#source}`;
  }
}

const NON_EMPTY = new NonEmpty();

/** Exact match. */
export function exact(v: string, ignoreCase = false): StringMatcher {
  return new Exact(v, ignoreCase);
}

/** Prefix match. */
export function prefix(v: string, ignoreCase = false): StringMatcher {
  return new Prefix(v, ignoreCase);
}

/** Suffix match. */
export function suffix(v: string, ignoreCase = false): StringMatcher {
  return new Suffix(v, ignoreCase);
}

/** RE2 `.+`: any non-empty value (Istio's `*`). */
export function nonEmpty(): StringMatcher {
  return NON_EMPTY;
}

/** Escapes a literal for a JS regex (the same characters RE2's `QuoteMeta` protects that matter here). */
export function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/**
 * A full-match regex from a pattern written in the RE2 subset Istio generates, where `.`
 * means RE2's `.` (any character but a newline). `source` is shown in `toString()`.
 */
export function fullRegex(source: string, jsPattern: string): StringMatcher {
  return new Regex(source, new RegExp(`^(?:${jsPattern})$`, 'u'));
}

/**
 * `matcher.StringMatcherWithPrefix(v, prefix)`: `*` → `.+` (the prefix is dropped), `*abc` →
 * suffix (or the regex `<prefix>.*abc` when there is a prefix), `abc*` → prefix, else exact.
 */
export function istioString(v: string, pre = ''): StringMatcher {
  if (v === '*') return NON_EMPTY;
  if (v.startsWith('*')) {
    const rest = v.slice(1);
    if (pre === '') return new Suffix(rest, false);
    return fullRegex(`${pre}.*${rest}`, `${escapeRegex(pre)}[^\\n]*${escapeRegex(rest)}`);
  }
  if (v.endsWith('*')) return new Prefix(pre + v.slice(0, -1), false);
  return new Exact(pre + v, false);
}

/** A header matcher: `present` (Istio's `*`, the header exists) or a string matcher on the value. */
export type HeaderValueMatcher = { readonly present: true } | { readonly present: false; readonly value: StringMatcher };

const PRESENT: HeaderValueMatcher = Object.freeze({ present: true as const });

/**
 * `matcher.HeaderMatcher` / `matcher.HostMatcher`: `*` → present, `*abc` → suffix, `abc*` →
 * prefix, else exact; `ignoreCase` for hosts.
 */
export function istioHeaderValue(v: string, ignoreCase: boolean): HeaderValueMatcher {
  if (v === '*') return PRESENT;
  if (v.startsWith('*')) return { present: false, value: new Suffix(v.slice(1), ignoreCase) };
  if (v.endsWith('*')) return { present: false, value: new Prefix(v.slice(0, -1), ignoreCase) };
  return { present: false, value: new Exact(v, ignoreCase) };
}
