/**
 * CEL's standard functions and methods as the evaluator (`cel.ts`) calls them: conversions
 * (`string`, `int`, `uint`, `double`, `bytes`, `duration`, `timestamp`, `dyn`), `size`,
 * `matches` (RE2, by re2js: linear time), and the string methods
 * `startsWith`, `endsWith`, `contains`.
 *
 * @module
 */
import { RE2JS } from 're2js';
import { MAX_REGEX_LENGTH } from '../config/regex.ts';
import { CelDuration, CelEvalError, CelTimestamp, checkedInt, isMapLike, keysOf, parseDuration, typeName } from './cel-values.ts';

/** Throws a CEL evaluation error (an error value). */
export function fail(msg: string): never {
  throw new CelEvalError(msg);
}

/** `v` as a bool, or an error naming `what` needed one. */
export function asBool(v: unknown, what: string): boolean {
  if (typeof v !== 'boolean') fail(`no matching overload: ${what} needs a bool, got ${typeName(v)}`);
  return v;
}

function asString(v: unknown, what: string): string {
  if (typeof v !== 'string') fail(`no matching overload: ${what} needs a string, got ${typeName(v)}`);
  return v;
}

const regexCache = new Map<string, RE2JS>();

/**
 * An RE2 pattern compiled by re2js (linear time whatever the pattern and input — a pattern may
 * come from a request header); `(?i)` and the other RE2 flag groups work as in RE2.
 */
export function regex(pattern: string): RE2JS {
  let re = regexCache.get(pattern);
  if (re === undefined) {
    if (pattern.length > MAX_REGEX_LENGTH) fail(`regular expression is ${pattern.length} characters long; the limit is ${MAX_REGEX_LENGTH}`);
    try {
      re = RE2JS.compile(pattern);
    } catch (e) {
      fail(`invalid regular expression ${JSON.stringify(pattern)}: ${(e as Error).message.replace(/^error parsing regexp: /, '')}`);
    }
    if (regexCache.size < 1000) regexCache.set(pattern, re);
  }
  return re;
}

/** CEL `matches`: true when the pattern matches anywhere in the string (RE2 search, not a full match). */
function search(pattern: string, input: string): boolean {
  return regex(pattern).matcher(input).find();
}

function size(v: unknown): bigint {
  if (typeof v === 'string') return BigInt([...v].length);
  if (v instanceof Uint8Array || Array.isArray(v)) return BigInt(v.length);
  if (isMapLike(v)) return BigInt(keysOf(v).length);
  return fail(`no matching overload: size(${typeName(v)})`);
}

function toInt(v: unknown): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) fail('int(): value out of range');
    return checkedInt(BigInt(Math.trunc(v)));
  }
  if (typeof v === 'string') {
    if (!/^[+-]?\d+$/.test(v)) fail(`int(): cannot parse ${JSON.stringify(v)}`);
    return checkedInt(BigInt(v));
  }
  if (v instanceof CelTimestamp) return BigInt(Math.floor(v.ms / 1000));
  return fail(`no matching overload: int(${typeName(v)})`);
}

function toDouble(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'string') {
    const n = Number(v);
    if (v.trim() === '' || Number.isNaN(n)) fail(`double(): cannot parse ${JSON.stringify(v)}`);
    return n;
  }
  return fail(`no matching overload: double(${typeName(v)})`);
}

function toCelString(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (typeof v === 'number') return String(v);
  if (v instanceof Uint8Array) return new TextDecoder('utf-8', { fatal: true }).decode(v);
  if (v instanceof CelDuration || v instanceof CelTimestamp) return v.toString();
  return fail(`no matching overload: string(${typeName(v)})`);
}

/** Global functions: name → [min args, max args, implementation]. */
export const FUNCTIONS: Readonly<Record<string, readonly [number, number, (args: unknown[]) => unknown]>> = Object.assign(Object.create(null), {
  size: [1, 1, (a: unknown[]) => size(a[0])],
  string: [1, 1, (a: unknown[]) => toCelString(a[0])],
  int: [1, 1, (a: unknown[]) => toInt(a[0])],
  uint: [
    1,
    1,
    (a: unknown[]) => {
      const v = toInt(a[0]);
      return v < 0n ? fail('uint(): value out of range') : v;
    },
  ],
  double: [1, 1, (a: unknown[]) => toDouble(a[0])],
  bytes: [1, 1, (a: unknown[]) => (a[0] instanceof Uint8Array ? a[0] : new TextEncoder().encode(asString(a[0], 'bytes()')))],
  dyn: [1, 1, (a: unknown[]) => a[0]],
  duration: [1, 1, (a: unknown[]) => (a[0] instanceof CelDuration ? a[0] : parseDuration(asString(a[0], 'duration()')))],
  timestamp: [
    1,
    1,
    (a: unknown[]) => {
      if (a[0] instanceof CelTimestamp) return a[0];
      const s = asString(a[0], 'timestamp()');
      const ms = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/i.test(s) ? Date.parse(s) : Number.NaN;
      return Number.isNaN(ms) ? fail(`timestamp(): cannot parse ${JSON.stringify(s)}`) : new CelTimestamp(ms);
    },
  ],
  matches: [2, 2, (a: unknown[]) => search(asString(a[1], 'matches()'), asString(a[0], 'matches()'))],
});

/** Methods (receiver first): name → [args, implementation]. */
export const METHODS: Readonly<Record<string, readonly [number, (t: unknown, args: unknown[]) => unknown]>> = Object.assign(Object.create(null), {
  startsWith: [1, (t: unknown, a: unknown[]) => asString(t, 'startsWith()').startsWith(asString(a[0], 'startsWith()'))],
  endsWith: [1, (t: unknown, a: unknown[]) => asString(t, 'endsWith()').endsWith(asString(a[0], 'endsWith()'))],
  contains: [1, (t: unknown, a: unknown[]) => asString(t, 'contains()').includes(asString(a[0], 'contains()'))],
  matches: [1, (t: unknown, a: unknown[]) => search(asString(a[0], 'matches()'), asString(t, 'matches()'))],
  size: [0, (t: unknown) => size(t)],
});
