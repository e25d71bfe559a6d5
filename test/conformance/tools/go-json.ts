/**
 * Converts parsed Go test-table literals (see go-literal.ts) to the JSON Istio's resources are
 * written in: protobuf JSON names, zero-valued proto3 scalars left out (they are unset), oneof
 * wrappers (`&networking.StringMatch_Exact{Exact: "x"}`) folded into their message, enum
 * constants as their names, durations as `"1.5s"`, wrapper types as plain values.
 *
 * Used only to (re)generate the conformance case files.
 */
import type { GoElem, GoExpr, GoType } from './go-literal.ts';

/** A value the TypeScript emitter prints as code instead of JSON (e.g. `'a'.repeat(1048577)`). */
export class Code {
  readonly code: string;
  /** The value the code evaluates to, where the converter needs it. */
  readonly value: unknown;
  constructor(code: string, value: unknown) {
    this.code = code;
    this.value = value;
  }
}

/** A oneof wrapper's field, to be merged into the enclosing message. */
class OneOf {
  readonly fields: Record<string, unknown>;
  constructor(fields: Record<string, unknown>) {
    this.fields = fields;
  }
}

/** Names in scope: the test function's local variables and package constants. */
export type Env = Map<string, GoExpr | { readonly value: unknown }>;

const TIME: Record<string, number> = {
  'time.Nanosecond': 1,
  'time.Microsecond': 1e3,
  'time.Millisecond': 1e6,
  'time.Second': 1e9,
  'time.Minute': 60e9,
  'time.Hour': 3600e9,
};

/**
 * Enum conversions of a number (`networking.OutboundTrafficPolicy_Mode(3)`) to the name a YAML
 * would write. Sidecar's mode 3 has no name in its own enum: ValidateSidecar casts it to
 * MeshConfig's, where 3 is ALLOW_ANY_DYNAMIC_DNS, the name a user would write.
 */
const ENUM_CASTS: Record<string, Record<number, string>> = {
  'networking.OutboundTrafficPolicy_Mode': { 0: 'REGISTRY_ONLY', 1: 'ALLOW_ANY', 3: 'ALLOW_ANY_DYNAMIC_DNS' },
};

/** Go field names whose JSON name is not the name with a lower-case first letter. */
const JSON_NAME_EXCEPTIONS: Record<string, string> = {
  Consecutive_5XxErrors: 'consecutive5xxErrors',
  String_: 'string',
};

/** The protobuf JSON name of a Go struct field. */
export function jsonName(goField: string): string {
  const exception = JSON_NAME_EXCEPTIONS[goField];
  if (exception !== undefined) return exception;
  if (goField.includes('_')) throw new Error(`no JSON name known for Go field ${goField}`);
  return goField[0]?.toLowerCase() + goField.slice(1);
}

/** Formats nanoseconds as protobuf JSON formats a Duration. */
export function formatDuration(seconds: number, nanos: number): string {
  const totalNanos = BigInt(seconds) * 1_000_000_000n + BigInt(nanos);
  const neg = totalNanos < 0n;
  const abs = neg ? -totalNanos : totalNanos;
  const s = abs / 1_000_000_000n;
  const n = abs % 1_000_000_000n;
  let frac = '';
  if (n !== 0n) {
    const padded = n.toString().padStart(9, '0');
    frac = `.${n % 1_000_000n === 0n ? padded.slice(0, 3) : n % 1_000n === 0n ? padded.slice(0, 6) : padded}`;
  }
  return `${neg ? '-' : ''}${s}${frac}s`;
}

function isZero(v: unknown): boolean {
  if (v instanceof Code) return false;
  if (v === undefined || v === null || v === '' || v === 0 || v === false) return true;
  if (Array.isArray(v)) return v.length === 0;
  return false;
}

/** Converts Go values to Istio JSON. */
export class GoToJson {
  readonly env: Env;
  /** Identifiers that could not be resolved (reported by the generator). */
  readonly unresolved = new Set<string>();

  constructor(env: Env) {
    this.env = env;
  }

  /** Evaluates a scalar expression (numbers, strings, time arithmetic, local constants). */
  scalar(e: GoExpr): unknown {
    switch (e.k) {
      case 'str': return e.v;
      case 'num': return e.v;
      case 'neg': return -(this.scalar(e.a) as number);
      case 'bin': {
        const a = this.scalar(e.a);
        const b = this.scalar(e.b);
        if (typeof a === 'string' || typeof b === 'string') {
          if (e.op !== '+') throw new Error(`string ${e.op}`);
          return String(a) + String(b);
        }
        const x = a as number;
        const y = b as number;
        switch (e.op) {
          case '+': return x + y;
          case '-': return x - y;
          case '*': return x * y;
          case '/': return Math.trunc(x / y);
          case '%': return x % y;
          case '<<': return x * 2 ** y;
          case '|': return x | y;
        }
        throw new Error(`operator ${e.op}`);
      }
      case 'ident': {
        if (e.name in TIME) return TIME[e.name];
        return this.value(e);
      }
      default: return this.value(e);
    }
  }

  /** Converts any expression, with `type` the static type where known. */
  value(e: GoExpr, type: GoType = { t: 'elided' }): unknown {
    switch (e.k) {
      case 'str':
      case 'num': return e.v;
      case 'neg':
      case 'bin': return this.scalar(e);
      case 'addr': return this.value(e.a, type);
      case 'func': return new Code(`(${JSON.stringify('<Go func literal>')})`, undefined);
      case 'ident': return this.#ident(e.name);
      case 'call': return this.#call(e);
      case 'composite': return this.#composite(e.type.t === 'elided' ? type : e.type, e.elems);
    }
  }

  #ident(name: string): unknown {
    if (name === 'nil') return null;
    if (name === 'true') return true;
    if (name === 'false') return false;
    if (name in TIME) return TIME[name];
    const bound = this.env.get(name);
    if (bound !== undefined) return 'value' in bound ? bound.value : this.value(bound);
    // An enum constant: pkg.Enclosing_VALUE → "VALUE".
    const dot = name.lastIndexOf('.');
    if (dot !== -1) {
      const local = name.slice(dot + 1);
      const parts = local.split('_');
      for (let i = 1; i < parts.length; i++) {
        const rest = parts.slice(i).join('_');
        if (/^[A-Z0-9_]+$/.test(rest)) return rest;
      }
    }
    this.unresolved.add(name);
    return new Code(`undefined /* unresolved ${name} */`, undefined);
  }

  #call(e: Extract<GoExpr, { k: 'call' }>): unknown {
    const args = e.args;
    const arg0 = args[0] as GoExpr;
    switch (e.fn) {
      case 'durationpb.New':
      case 'ptypes.DurationProto': {
        const ns = this.scalar(arg0) as number;
        return formatDuration(Math.trunc(ns / 1e9), ns % 1e9);
      }
      case 'time.Duration':
      case 'int':
      case 'int32':
      case 'int64':
      case 'uint32':
      case 'uint64':
      case 'float64':
      case 'float32':
      case 'string':
        return this.scalar(arg0);
      case 'wrapperspb.Bool':
      case 'wrapperspb.UInt32':
      case 'wrapperspb.Int32':
      case 'wrapperspb.UInt64':
      case 'wrapperspb.Int64':
      case 'wrapperspb.Double':
      case 'wrapperspb.Float':
      case 'wrapperspb.String':
      case 'ptr.Of':
        return this.value(arg0);
      case 'strings.Repeat': {
        const s = this.scalar(arg0) as string;
        const n = this.scalar(args[1] as GoExpr) as number;
        return n > 64 ? new Code(`${JSON.stringify(s)}.repeat(${n})`, s.repeat(n)) : s.repeat(n);
      }
      case '[]byte': {
        const v = this.value(arg0);
        const s = v instanceof Code ? (v.value as string) : (v as string);
        const b64 = Buffer.from(s, 'utf8').toString('base64');
        return v instanceof Code ? new Code(`Buffer.from(${v.code}).toString('base64')`, b64) : b64;
      }
      case 'errors.New':
      case 'fmt.Errorf':
        return this.scalar(arg0);
      case 'fmt.Sprintf': {
        const fmt = this.scalar(arg0) as string;
        let i = 1;
        return fmt.replace(/%[sdvq%]/g, (m) => {
          if (m === '%%') return '%';
          const v = this.scalar(args[i++] as GoExpr);
          return m === '%q' ? JSON.stringify(v) : String(v);
        });
      }
    }
    const names = ENUM_CASTS[e.fn];
    if (names !== undefined) {
      const name = names[this.scalar(arg0) as number];
      if (name !== undefined) return name;
    }
    this.unresolved.add(`${e.fn}()`);
    return new Code(`undefined /* unresolved call ${e.fn} */`, undefined);
  }

  #composite(type: GoType, elems: readonly GoElem[]): unknown {
    const t = type.t === 'ptr' ? type.elem : type;
    if (t.t === 'slice') {
      return elems.map((el) => this.value(el.value, t.elem));
    }
    if (t.t === 'map') {
      const out: Record<string, unknown> = {};
      for (const el of elems) out[String(this.scalar(el.key as GoExpr))] = this.value(el.value, t.value);
      return out;
    }
    if (t.t === 'named') return this.#message(t.name, elems);
    if (t.t === 'struct') {
      // An anonymous struct (a test table row): keyed or positional fields, converted as they are.
      const out: Record<string, unknown> = {};
      elems.forEach((el, i) => {
        const key = el.key !== undefined && el.key.k === 'ident' ? el.key.name : (t.fields[i] as string);
        out[key] = this.value(el.value);
      });
      return out;
    }
    // Elided type of unknown shape: decide by the elements.
    if (elems.length > 0 && elems.every((el) => el.key?.k === 'ident' && /^[A-Z]/.test(el.key.name))) return this.#message('<elided>', elems);
    if (elems.length > 0 && elems.every((el) => el.key !== undefined)) {
      const out: Record<string, unknown> = {};
      for (const el of elems) out[String(this.scalar(el.key as GoExpr))] = this.value(el.value);
      return out;
    }
    return elems.length === 0 ? {} : elems.map((el) => this.value(el.value));
  }

  #message(name: string, elems: readonly GoElem[]): unknown {
    const local = name.slice(name.lastIndexOf('.') + 1);
    const field = (goName: string) => elems.find((el) => el.key?.k === 'ident' && el.key.name === goName)?.value;
    if (name === 'durationpb.Duration' || name === 'types.Duration') {
      const s = field('Seconds');
      const n = field('Nanos');
      return formatDuration(s === undefined ? 0 : (this.scalar(s) as number), n === undefined ? 0 : (this.scalar(n) as number));
    }
    if (/^(wrapperspb|wrappers|types)\.\w+Value$/.test(name)) {
      const v = field('Value');
      if (v !== undefined) return this.value(v);
      return { BoolValue: false, StringValue: '' }[local] ?? 0;
    }
    // A oneof wrapper: Outer_Field{Field: v} becomes {field: v} merged into the parent; its value is kept even when zero.
    const us = local.lastIndexOf('_', local.endsWith('_') ? local.length - 2 : local.length);
    if (us > 0 && elems.length === 1 && elems[0]?.key?.k === 'ident' && elems[0].key.name === local.slice(us + 1)) {
      return new OneOf({ [jsonName(elems[0].key.name)]: this.value(elems[0].value) });
    }
    const out: Record<string, unknown> = {};
    for (const el of elems) {
      if (el.key === undefined || el.key.k !== 'ident') throw new Error(`positional field in ${name}`);
      const v = this.value(el.value);
      if (v instanceof OneOf) {
        Object.assign(out, v.fields);
        continue;
      }
      // A zero scalar or an empty list is unset; an explicit empty map literal is kept, because
      // Istio's YAML decoding (jsonpb) makes `{}` a non-nil empty map that validation can see.
      if (isZero(v) && !this.#hasPresence(el.value)) continue;
      out[jsonName(el.key.name)] = v;
    }
    return out;
  }

  /** Wrapper types (`&wrapperspb.BoolValue{Value: false}`) are set even when their value is zero. */
  #hasPresence(e: GoExpr): boolean {
    const x = e.k === 'addr' ? e.a : e;
    if (x.k === 'call') return /^(wrapperspb|durationpb)\./.test(x.fn);
    return x.k === 'composite' && x.type.t === 'named' && /^(wrapperspb|wrappers|types|durationpb)\./.test(x.type.name);
  }

}
