/**
 * Validators for Envoy config written in protobuf JSON (an EnvoyFilter's `patch.value`): field
 * names in either spelling (`max_tokens` or `maxTokens`, as protobuf's JSON parser takes them),
 * `uint32` as a number or a numeric string, durations as `"60s"` / `"0.5s"` (protobuf's JSON
 * form — not Istio's `"1m"`), enums by name or number, and `Any` values both direct
 * (`"@type": <type URL>` beside the fields) and wrapped in a `TypedStruct`
 * (`udpa.type.v1.TypedStruct` / `xds.type.v3.TypedStruct`: `type_url` + `value`).
 *
 * @module
 */
import type { FieldPath } from '../issues.ts';
import { aliased, fail, type FieldSpec, type Fields, obj, type ObjectOptions, type Validator } from './schema.ts';

/** `max_tokens` → `maxTokens` (protobuf's JSON name). */
export function jsonName(protoName: string): string {
  return protoName.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * A protobuf message: fields declared by their proto (snake_case) names, each also accepted in
 * its JSON (lowerCamelCase) spelling; unknown fields are errors.
 */
export function message<T extends object>(fields: Fields<T>, options: ObjectOptions<T> = {}): Validator<T> {
  const withAliases: Record<string, Validator<unknown> | FieldSpec<unknown>> = {};
  for (const [name, f] of Object.entries(fields) as [string, Validator<unknown> | FieldSpec<unknown>][]) {
    const alias = jsonName(name);
    withAliases[name] = alias === name ? f : aliased(f, alias);
  }
  return obj<T>(withAliases as Fields<T>, options);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  return typeof v === 'string' ? `"${v}"` : String(v);
}

/** A `uint32` (or `UInt32Value`): a whole number, or a string of one, within bounds. */
export function uint32(bounds: { min?: number; max?: number; why?: string } = {}): Validator<number> {
  const min = bounds.min ?? 0;
  const max = bounds.max ?? 4294967295;
  const why = bounds.why === undefined ? '' : ` ${bounds.why}`;
  return (v, path, ctx) => {
    const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n)) return fail(ctx, path, `must be a whole number, got ${describe(v)}`);
    if (n < min) return fail(ctx, path, `must be >= ${min}${why}, got ${n}`);
    if (n > max) return fail(ctx, path, `must be <= ${max}${why}, got ${n}`);
    return n;
  };
}

const PROTO_DURATION = /^(\d+)(?:\.(\d{1,9}))?s$/;

/** Milliseconds of a protobuf JSON duration (`"60s"`, `"0.05s"`), or undefined. */
export function protoDurationMs(s: string): number | undefined {
  const m = PROTO_DURATION.exec(s);
  if (m === null) return undefined;
  const frac = m[2] ?? '';
  return Number(m[1]) * 1000 + (frac === '' ? 0 : Number(frac.padEnd(9, '0')) / 1e6);
}

/** A `google.protobuf.Duration` in protobuf JSON, returned in milliseconds, within bounds. */
export function duration(bounds: { minMs?: number; why?: string } = {}): Validator<number> {
  return (v, path, ctx) => {
    if (typeof v !== 'string') return fail(ctx, path, `must be a duration such as "60s" or "0.5s", got ${describe(v)}`);
    const ms = protoDurationMs(v);
    if (ms === undefined) {
      return fail(ctx, path, `"${v}" is not a duration: Envoy takes protobuf durations, seconds with an "s" suffix ("60s", "0.5s"), not "1m" or "500ms"`);
    }
    if (bounds.minMs !== undefined && ms < bounds.minMs) return fail(ctx, path, `must be at least ${bounds.minMs}ms${bounds.why === undefined ? '' : ` ${bounds.why}`}, got "${v}"`);
    return ms;
  };
}

/** A protobuf enum, by name or number; returns the name. */
export function enumOf<T extends string>(names: readonly T[]): Validator<T> {
  return (v, path, ctx) => {
    if (typeof v === 'string' && (names as readonly string[]).includes(v)) return v as T;
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < names.length) return names[v] as T;
    return fail(ctx, path, `must be one of ${names.join(', ')}; got ${describe(v)}`);
  };
}

/** A protobuf JSON `bool` or `BoolValue`. */
export const boolean: Validator<boolean> = (v, path, ctx) => (typeof v === 'boolean' ? v : fail(ctx, path, `must be true or false, got ${describe(v)}`));

/** A protobuf JSON `string`. */
export const text: Validator<string> = (v, path, ctx) => (typeof v === 'string' ? v : fail(ctx, path, `must be a string, got ${describe(v)}`));

/** A protobuf JSON `string` that must not be empty (`min_len: 1`). */
export const nonEmptyText: Validator<string> = (v, path, ctx) => {
  const s = text(v, path, ctx);
  if (s === undefined) return undefined;
  return s === '' ? fail(ctx, path, 'must not be empty') : s;
};

/** The `TypedStruct` wrappers Envoy unpacks. */
export const TYPED_STRUCT_URLS: readonly string[] = ['type.googleapis.com/udpa.type.v1.TypedStruct', 'type.googleapis.com/xds.type.v3.TypedStruct'];

/** A `google.protobuf.Any` as written: its message type and where its fields are. */
export interface AnyValue {
  /** The message's type URL (`type.googleapis.com/envoy.….LocalRateLimit`). */
  readonly typeUrl: string;
  /** The message's fields (without `@type`). */
  readonly fields: Record<string, unknown>;
  /** Where the fields are, for messages. */
  readonly path: FieldPath;
}

/**
 * Reads the type URL of an `Any` without reporting anything (for deciding what a patch is);
 * undefined when `v` is not an `Any` at all.
 */
export function peekAny(v: unknown): { typeUrl: string; fields: unknown; wrapped: boolean } | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  const type = o['@type'];
  if (typeof type !== 'string') return undefined;
  if (TYPED_STRUCT_URLS.includes(type)) {
    const url = o.type_url ?? o.typeUrl;
    return typeof url === 'string' ? { typeUrl: url, fields: o.value, wrapped: true } : undefined;
  }
  const { '@type': _, ...fields } = o;
  return { typeUrl: type, fields, wrapped: false };
}

/** Reads an `Any`, direct or in a `TypedStruct`, reporting a malformed one. */
export const anyValue: Validator<AnyValue> = (v, path, ctx) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(ctx, path, `must be an object with an "@type", got ${describe(v)}`);
  const o = v as Record<string, unknown>;
  const type = o['@type'];
  if (typeof type !== 'string' || type === '') return fail(ctx, [...path, '@type'], 'is required: the type URL of the config (type.googleapis.com/…)');
  if (!TYPED_STRUCT_URLS.includes(type)) {
    const { '@type': _, ...fields } = o;
    return { typeUrl: type, fields, path };
  }
  for (const k of Object.keys(o)) {
    if (!['@type', 'type_url', 'typeUrl', 'value'].includes(k)) fail(ctx, [...path, k], `unknown field "${k}" (a TypedStruct has type_url and value)`);
  }
  const url = o.type_url ?? o.typeUrl;
  const urlPath = [...path, o.type_url !== undefined ? 'type_url' : 'typeUrl'];
  if (typeof url !== 'string' || url === '') return fail(ctx, urlPath, 'is required: the type URL of the config in value');
  const value = o.value ?? {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail(ctx, [...path, 'value'], `must be an object, got ${describe(value)}`);
  return { typeUrl: url, fields: value as Record<string, unknown>, path: [...path, 'value'] };
};
