/**
 * A small validation DSL: validators check a raw (parsed YAML/JSON) value at a field path,
 * report every problem to an {@link IssueList} and return the typed value. Objects reject
 * unknown fields (as `kubectl apply --validate=strict` does), warn about fields meshlet
 * does not implement, and never stop at the first problem.
 *
 * @module
 */
import { suggest } from '../../core/did-you-mean.ts';
import { parseDuration } from '../duration.ts';
import { formatPath, type FieldPath, type IssueList, type IssueSubject } from '../issues.ts';
import { compileRe2 } from '../regex.ts';

/** What every validator can see. */
export interface Ctx {
  readonly issues: IssueList;
  readonly subject: IssueSubject;
  /** The resource's namespace. */
  readonly namespace: string;
  /** The resource's name, labels and annotations as written (for rules that read them, e.g. Istio's `istio.io/use-waypoint` label). */
  readonly metadata?: { readonly name?: unknown; readonly labels?: unknown; readonly annotations?: unknown };
}

/** Checks `value` at `path`; reports problems; returns the typed value, or `undefined` if it is unusable. */
export type Validator<T> = (value: unknown, path: FieldPath, ctx: Ctx) => T | undefined;

/** A label (`labels`) or annotation (`annotations`) of the resource being validated, if it is a string. */
export function metadataValue(ctx: Ctx, field: 'labels' | 'annotations', key: string): string | undefined {
  const m = ctx.metadata?.[field];
  if (typeof m !== 'object' || m === null || !Object.hasOwn(m, key)) return undefined;
  const v = (m as Record<string, unknown>)[key];
  return typeof v === 'string' ? v : undefined;
}

/** Reports an error at a path. */
export function fail(ctx: Ctx, path: FieldPath, message: string): undefined {
  ctx.issues.at(ctx.subject, path, 'error', message);
  return undefined;
}

/** Reports a warning at a path. */
export function warn(ctx: Ctx, path: FieldPath, message: string): void {
  ctx.issues.at(ctx.subject, path, 'warning', message);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `a string ("${v.length > 40 ? `${v.slice(0, 40)}…` : v}")`;
  return `a ${typeof v} (${String(v)})`;
}

/** Any string. */
export const str: Validator<string> = (v, path, ctx) =>
  typeof v === 'string' ? v : fail(ctx, path, `must be a string, got ${typeName(v)}`);

/** A string that also passes `check` (which returns an error message or nothing). */
export function strWith(check: (s: string) => string | undefined): Validator<string> {
  return (v, path, ctx) => {
    const s = str(v, path, ctx);
    if (s === undefined) return undefined;
    const problem = check(s);
    return problem === undefined ? s : fail(ctx, path, problem);
  };
}

/** A non-empty string. */
export const nonEmpty: Validator<string> = strWith((s) => (s.length === 0 ? 'must not be empty' : undefined));

/** A boolean (protobuf BoolValue is a plain boolean in YAML). */
export const bool: Validator<boolean> = (v, path, ctx) =>
  typeof v === 'boolean' ? v : fail(ctx, path, `must be true or false, got ${typeName(v)}`);

/** Bounds for numbers. */
export interface NumberBounds {
  min?: number;
  max?: number;
  /** Message suffix naming the bound's origin, e.g. `(Istio: 200-599)`. */
  why?: string;
}

/** A number within bounds. */
export function num(bounds: NumberBounds = {}): Validator<number> {
  return (v, path, ctx) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) return fail(ctx, path, `must be a number, got ${typeName(v)}`);
    return checkBounds(v, bounds, path, ctx);
  };
}

/** An integer within bounds. Defaults to the int32 range. */
export function int(bounds: NumberBounds = {}): Validator<number> {
  return (v, path, ctx) => {
    if (typeof v !== 'number' || !Number.isInteger(v)) return fail(ctx, path, `must be an integer, got ${typeName(v)}`);
    return checkBounds(v, { min: -2147483648, max: 4294967295, ...bounds }, path, ctx);
  };
}

function checkBounds(v: number, b: NumberBounds, path: FieldPath, ctx: Ctx): number | undefined {
  const why = b.why === undefined ? '' : ` ${b.why}`;
  if (b.min !== undefined && v < b.min) return fail(ctx, path, `must be >= ${b.min}${why}, got ${v}`);
  if (b.max !== undefined && v > b.max) return fail(ctx, path, `must be <= ${b.max}${why}, got ${v}`);
  return v;
}

/** A port number, 1–65535. */
export const port: Validator<number> = int({ min: 1, max: 65535 });

/** One of a fixed set of strings (enum names, as Istio writes them). */
export function oneOf<T extends string>(values: readonly T[]): Validator<T> {
  return (v, path, ctx) => {
    if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T;
    return fail(ctx, path, `must be one of ${values.join(', ')}; got ${typeName(v)}`);
  };
}

/** Options for {@link durationStr}. */
export interface DurationBounds {
  /** Smallest allowed value in ms. @defaultValue 1 (Istio: durations must be >= 1ms) */
  minMs?: number;
  /** Whether `0s` is allowed despite `minMs` (it usually means "disabled"). */
  allowZero?: boolean;
}

/** A duration string such as `1.5s`, `300ms`, `1h`. */
export function durationStr(bounds: DurationBounds = {}): Validator<string> {
  const minMs = bounds.minMs ?? 1;
  return (v, path, ctx) => {
    const s = str(v, path, ctx);
    if (s === undefined) return undefined;
    const ms = parseDuration(s);
    if (typeof ms !== 'number') return fail(ctx, path, ms.error);
    if (ms === 0 && bounds.allowZero === true) return s;
    if (ms < minMs) return fail(ctx, path, `duration must be >= ${minMs}ms, got "${s}"`);
    return s;
  };
}

/** An RE2 regular expression (validated with the same engine that will match it). */
export const regex: Validator<string> = (v, path, ctx) => {
  const s = str(v, path, ctx);
  if (s === undefined) return undefined;
  const re = compileRe2(s);
  return 'error' in re ? fail(ctx, path, re.error) : s;
};

/** Options for lists. */
export interface ListBounds {
  min?: number;
  max?: number;
  /** Report duplicate items (by JSON identity). */
  unique?: boolean;
}

/** A list whose items pass `item`. */
export function list<T>(item: Validator<T>, bounds: ListBounds = {}): Validator<T[]> {
  return (v, path, ctx) => {
    if (!Array.isArray(v)) return fail(ctx, path, `must be a list, got ${typeName(v)}`);
    if (bounds.min !== undefined && v.length < bounds.min) {
      return fail(ctx, path, bounds.min === 1 ? 'must have at least one item' : `must have at least ${bounds.min} items`);
    }
    if (bounds.max !== undefined && v.length > bounds.max) return fail(ctx, path, `must have at most ${bounds.max} items, got ${v.length}`);
    const out: T[] = [];
    const seen = new Map<string, number>();
    v.forEach((el, i) => {
      const p = [...path, i];
      if (bounds.unique === true) {
        const key = JSON.stringify(el);
        const first = seen.get(key);
        if (first !== undefined) fail(ctx, p, `duplicates item ${first}`);
        else seen.set(key, i);
      }
      const r = item(el, p, ctx);
      if (r !== undefined) out.push(r);
    });
    return out;
  };
}

/** Options for maps. */
export interface MapOptions {
  /** Checks each key; returns an error message or nothing. */
  key?: (key: string) => string | undefined;
  max?: number;
}

/** A string-keyed map whose values pass `value`. */
export function map<T>(value: Validator<T>, options: MapOptions = {}): Validator<Record<string, T>> {
  return (v, path, ctx) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(ctx, path, `must be a map, got ${typeName(v)}`);
    const entries = Object.entries(v);
    if (options.max !== undefined && entries.length > options.max) return fail(ctx, path, `must have at most ${options.max} entries`);
    const out: Record<string, T> = {};
    // defineProperty, so a key such as "__proto__" is an ordinary entry, not the prototype.
    const put = (k: string, r: T) => Object.defineProperty(out, k, { value: r, enumerable: true, writable: true, configurable: true });
    for (const [k, el] of entries) {
      const p = [...path, k];
      const keyProblem = options.key?.(k);
      if (keyProblem !== undefined) {
        fail(ctx, p, keyProblem);
        continue;
      }
      if (el === null) {
        fail(ctx, p, 'has no value (null)');
        continue;
      }
      const r = value(el, p, ctx);
      if (r !== undefined) put(k, r);
    }
    return out;
  };
}

/** A string→string map (labels, header values). */
export const stringMap: Validator<Record<string, string>> = map(str);

/** How a field is declared inside {@link obj}. */
export interface FieldSpec<V> {
  readonly validate: Validator<V>;
  /** The field must be present. */
  readonly required?: boolean;
  /** meshlet accepts but does not implement the field: warn `not supported by meshlet: <path>`, and why. */
  readonly unsupported?: string;
  /** The field is deprecated in Istio: warn, naming the replacement. */
  readonly deprecated?: string;
  /**
   * Another spelling Istio's CRD schema also accepts for the field (its protobuf name, e.g.
   * `jwks_uri` for `jwksUri`): read as the field itself; giving both is an error.
   */
  readonly alias?: string;
}

/** A required field. */
export function req<V>(validate: Validator<V>): FieldSpec<V> {
  return { validate, required: true };
}

/** A field accepted with a "not supported by meshlet" warning; `why` says what happens instead. */
export function unsupported<V>(validate: Validator<V>, why: string): FieldSpec<V> {
  return { validate, unsupported: why };
}

/** A deprecated field; `instead` names the replacement. */
export function deprecated<V>(validate: Validator<V>, instead: string): FieldSpec<V> {
  return { validate, deprecated: instead };
}

/** A field that Istio's CRD schema also accepts under `alias` (see {@link FieldSpec.alias}). */
export function aliased<V>(field: Validator<V> | FieldSpec<V>, alias: string): FieldSpec<V> {
  return typeof field === 'function' ? { validate: field, alias } : { ...field, alias };
}

/** Every field of `T`, each with its validator (a plain validator means optional). */
export type Fields<T> = { readonly [K in keyof T]-?: Validator<NonNullable<T[K]>> | FieldSpec<NonNullable<T[K]>> };

/** Options for {@link obj}. */
export interface ObjectOptions<T> {
  /** Groups of fields of which at most one may be set (protobuf `oneof`). */
  readonly oneOf?: readonly (readonly (keyof T & string)[])[];
  /** Groups of fields of which exactly one must be set. */
  readonly exactlyOne?: readonly (readonly (keyof T & string)[])[];
  /** Cross-field checks, run on the typed value after the fields. */
  readonly check?: (value: T, path: FieldPath, ctx: Ctx, raw: Record<string, unknown>) => void;
}

/** An object with exactly these fields; unknown fields are errors. */
export function obj<T extends object>(fields: Fields<T>, options: ObjectOptions<T> = {}): Validator<T> {
  const specs = Object.entries(fields).map(([name, f]) => {
    const spec: FieldSpec<unknown> = typeof f === 'function' ? { validate: f as Validator<unknown> } : (f as FieldSpec<unknown>);
    return [name, spec] as const;
  });
  const known = specs.map(([n]) => n);
  const aliases = specs.filter(([, s]) => s.alias !== undefined).map(([n, s]) => [n, s.alias as string] as const);
  const accepted = new Set([...known, ...aliases.map(([, a]) => a)]);
  return (v, path, ctx) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(ctx, path, `must be an object, got ${typeName(v)}`);
    let raw = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(raw)) {
      if (!accepted.has(key)) fail(ctx, [...path, key], `unknown field "${key}"${suggest(key, known)}`);
    }
    for (const [name, alias] of aliases) {
      if (raw[alias] === undefined || raw[alias] === null) continue;
      if (raw[name] !== undefined && raw[name] !== null) {
        fail(ctx, [...path, alias], `"${alias}" is another spelling of "${name}"; give only one of them`);
        continue;
      }
      // Read the alias as the field itself (the typed value uses the canonical name).
      raw = { ...raw, [name]: raw[alias] };
    }
    for (const [name, spec] of specs) {
      const value = raw[name];
      if ((value === undefined || value === null) && spec.required !== true) continue; // most fields are absent: no path for them
      const p = [...path, spec.alias !== undefined && raw[spec.alias] === value && value !== undefined ? spec.alias : name];
      if (value === undefined || value === null) {
        fail(ctx, p, 'is required');
        continue;
      }
      if (spec.unsupported !== undefined) {
        ctx.issues.at(ctx.subject, p, 'warning', `not supported by meshlet: ${formatPath(p)}; ${spec.unsupported}`, 'MESHLET0002');
        // Still type-checked, so a later meshlet that implements it will not find surprises.
      }
      if (spec.deprecated !== undefined) warn(ctx, p, `deprecated; use ${spec.deprecated}`);
      const r = spec.validate(value, p, ctx);
      if (r !== undefined) out[name] = r;
    }
    for (const group of options.oneOf ?? []) {
      const set = group.filter((g) => raw[g] !== undefined && raw[g] !== null);
      if (set.length > 1) fail(ctx, path, `only one of ${group.join(', ')} may be set, got ${set.join(' and ')}`);
    }
    for (const group of options.exactlyOne ?? []) {
      const set = group.filter((g) => raw[g] !== undefined && raw[g] !== null);
      if (set.length === 0) fail(ctx, path, `one of ${group.join(', ')} is required`);
      else if (set.length > 1) fail(ctx, path, `only one of ${group.join(', ')} may be set, got ${set.join(' and ')}`);
    }
    const typed = out as T;
    options.check?.(typed, path, ctx, raw);
    return typed;
  };
}

/** A lazily resolved validator, for recursive or late-bound schemas. */
export function lazy<T>(get: () => Validator<T>): Validator<T> {
  return (v, path, ctx) => get()(v, path, ctx);
}
