/**
 * CEL values in JavaScript, and the operations on them the evaluator (`cel.ts`) needs.
 *
 * | CEL type | JavaScript |
 * |---|---|
 * | `int`, `uint` | `bigint` (uint is not told apart from int) |
 * | `double` | `number` |
 * | `string`, `bool`, `null` | `string`, `boolean`, `null` |
 * | `bytes` | `Uint8Array` |
 * | `list` | array |
 * | `map`, message | `Map`, a {@link CelObject} (fields computed on demand), or a plain object |
 * | `google.protobuf.Duration` / `Timestamp` | {@link CelDuration} / {@link CelTimestamp} |
 *
 * @module
 */

/** An evaluation error: what CEL calls an error value (a missing attribute, no such overload, …). */
export class CelEvalError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CelEvalError';
  }
}

/**
 * A message or map whose fields are computed when read: attribute groups (`request`,
 * `response`, …) and header maps. `field` returns undefined for an absent field.
 */
export abstract class CelObject {
  /** The value of `name`, or undefined when it is absent. */
  abstract field(name: string): unknown;
  /** The names of the fields that are present (for `size`, `in` over a list of keys, equality). */
  abstract keys(): readonly string[];
}

/** A `google.protobuf.Duration`. */
export class CelDuration {
  readonly ms: number;
  constructor(ms: number) {
    this.ms = ms;
  }
  /** As CEL's `string(duration)` prints it: seconds with a `s` suffix (`1.5s`). */
  toString(): string {
    return `${Number((this.ms / 1000).toFixed(9))}s`;
  }
}

/** A `google.protobuf.Timestamp`. */
export class CelTimestamp {
  readonly ms: number;
  constructor(ms: number) {
    this.ms = ms;
  }
  /** RFC 3339 in UTC. */
  toString(): string {
    return new Date(this.ms).toISOString();
  }
}

/** The CEL type name of `v` (for error messages). */
export function typeName(v: unknown): string {
  if (v === null) return 'null_type';
  if (typeof v === 'bigint') return 'int';
  if (typeof v === 'number') return 'double';
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'bool';
  if (v instanceof Uint8Array) return 'bytes';
  if (Array.isArray(v)) return 'list';
  if (v instanceof CelDuration) return 'google.protobuf.Duration';
  if (v instanceof CelTimestamp) return 'google.protobuf.Timestamp';
  if (typeof v === 'object') return 'map';
  return typeof v;
}

const INT_MIN = -(2n ** 63n);
const INT_MAX = 2n ** 63n - 1n;

/** Checks an int result for int64 overflow. */
export function checkedInt(v: bigint): bigint {
  if (v < INT_MIN || v > INT_MAX) throw new CelEvalError('integer overflow');
  return v;
}

/** `true` when `v` is a CEL map or message. */
export function isMapLike(v: unknown): v is Map<unknown, unknown> | CelObject | Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof CelDuration) && !(v instanceof CelTimestamp);
}

/** The value of field or key `key` of map `m`, or undefined when absent. */
export function lookup(m: Map<unknown, unknown> | CelObject | Record<string, unknown>, key: unknown): unknown {
  if (m instanceof CelObject) return typeof key === 'string' ? m.field(key) : undefined;
  if (m instanceof Map) {
    if (m.has(key)) return m.get(key);
    // Numeric keys compare by value across int and double (CEL heterogeneous equality).
    if (typeof key === 'number' && Number.isInteger(key)) return m.get(BigInt(key));
    return undefined;
  }
  return typeof key === 'string' && Object.hasOwn(m, key) ? m[key] : undefined;
}

/** The keys of a map. */
export function keysOf(m: Map<unknown, unknown> | CelObject | Record<string, unknown>): readonly unknown[] {
  if (m instanceof CelObject) return m.keys();
  if (m instanceof Map) return [...m.keys()];
  return Object.keys(m).filter((k) => m[k] !== undefined);
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** CEL `==` (heterogeneous: values of different types are not equal; ints and doubles compare by value). */
export function celEquals(a: unknown, b: unknown): boolean {
  if (typeof a === 'bigint' || typeof a === 'number') {
    if (typeof b !== 'bigint' && typeof b !== 'number') return false;
    if (typeof a === typeof b) return a === b;
    // biome-ignore lint/suspicious/noDoubleEquals: int == double compares the numbers
    return a == b;
  }
  if (a === null || typeof a !== 'object') return a === b;
  if (b === null || typeof b !== 'object') return false;
  if (a instanceof Uint8Array) return b instanceof Uint8Array && bytesEqual(a, b);
  if (a instanceof CelDuration) return b instanceof CelDuration && a.ms === b.ms;
  if (a instanceof CelTimestamp) return b instanceof CelTimestamp && a.ms === b.ms;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => celEquals(x, b[i]));
  if (!isMapLike(a) || !isMapLike(b)) return false;
  const ka = keysOf(a);
  if (ka.length !== keysOf(b).length) return false;
  return ka.every((k) => {
    const vb = lookup(b, k);
    return vb !== undefined && celEquals(lookup(a, k), vb);
  });
}

/** CEL ordering (`<` and friends): -1, 0 or 1; an error for values that have no order. */
export function celCompare(a: unknown, b: unknown): number {
  const numeric = (typeof a === 'bigint' || typeof a === 'number') && (typeof b === 'bigint' || typeof b === 'number');
  if (numeric || (typeof a === typeof b && (typeof a === 'string' || typeof a === 'boolean'))) {
    // biome-ignore lint/suspicious/noExplicitAny: mixed bigint/number comparison is well defined in JavaScript
    return (a as any) < (b as any) ? -1 : (a as any) > (b as any) ? 1 : 0;
  }
  if ((a instanceof CelDuration && b instanceof CelDuration) || (a instanceof CelTimestamp && b instanceof CelTimestamp)) return Math.sign(a.ms - b.ms);
  if (a instanceof Uint8Array && b instanceof Uint8Array) {
    for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return (a[i] as number) < (b[i] as number) ? -1 : 1;
    return Math.sign(a.length - b.length);
  }
  throw new CelEvalError(`no such overload: ${typeName(a)} and ${typeName(b)} cannot be ordered`);
}

/** Go duration syntax (`1h2m3.5s`, `300ms`, `-1.5h`), as CEL's `duration()` reads it. */
export function parseDuration(s: string): CelDuration {
  const m = /^([+-])?((?:\d+(?:\.\d*)?|\.\d+)(?:h|m|s|ms|us|µs|ns))+$/.exec(s);
  if (m === null && s !== '0') throw new CelEvalError(`invalid duration ${JSON.stringify(s)}`);
  const unit: Readonly<Record<string, number>> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 1e-3, µs: 1e-3, ns: 1e-6 };
  let ms = 0;
  for (const part of s.matchAll(/(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)/g)) ms += Number(part[1]) * (unit[part[2] as string] as number);
  return new CelDuration(s.startsWith('-') ? -ms : ms);
}

/** How Envoy prints a CEL result as a string (`Expr::print`): tag values and `%CEL(…)%`. */
export function printValue(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v === null) return 'NULL';
  if (v instanceof Uint8Array) return new TextDecoder().decode(v);
  if (v instanceof CelDuration || v instanceof CelTimestamp) return v.toString();
  if (Array.isArray(v)) return `[${v.map(printValue).join(', ')}]`;
  if (isMapLike(v)) return `{${keysOf(v).map((k) => `${printValue(k)}: ${printValue(lookup(v, k))}`).join(', ')}}`;
  return String(v);
}
