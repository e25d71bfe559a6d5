/**
 * CEL, compiled once and evaluated per request over the attribute view of the request
 * (`attributes.ts`): the values of Telemetry `tagOverrides` and access-log `filter.expression`.
 *
 * Supported: literals (int, uint, double, string, bytes, bool, null, lists, maps), field
 * selection and `[…]` indexing, `has()`, `!`, unary `-`, `* / % + -`, comparisons, `in`,
 * `&&` and `||` (with CEL's error absorption: `false && error` is false), `? :`, the functions
 * `size`, `string`, `int`, `uint`, `double`, `bytes`, `duration`, `timestamp`, `dyn`,
 * `matches` (RE2 syntax as JavaScript reads it), the methods `startsWith`, `endsWith`,
 * `contains`, `matches`, `size`, and the macros `all`, `exists`, `exists_one`, `map`, `filter`.
 * Not supported (a compile error names it): message construction (`pkg.Msg{…}`), other functions.
 *
 * An expression that fails at run time — most often because it reads an attribute the request
 * does not have — is an error, and the caller does what Envoy does with it:
 * - an access-log filter ({@link CompiledCel.test}) is false, so the line is not written
 *   (Envoy `CELAccessLogExtensionFilter::evaluate`: an error or a non-bool is false);
 * - a metric tag ({@link CompiledCel.text} is undefined) takes the value `unknown`
 *   (istio/proxy `istio_stats.cc`: an error becomes `context_.unknown_`);
 * - a `%CEL(…)%` log operator prints `-` (Envoy `CELFormatter`: an error is no value).
 *
 * @module
 */
import { CelError, type CelNode, parseCel } from '../config/validate/cel-parse.ts';
import { asBool, FUNCTIONS, fail, METHODS, regex } from './cel-functions.ts';
import { CelDuration, CelEvalError, CelTimestamp, celCompare, celEquals, checkedInt, isMapLike, keysOf, lookup, printValue, typeName } from './cel-values.ts';

export { CelDuration, CelEvalError, CelObject, CelTimestamp, printValue } from './cel-values.ts';

/** Where an expression reads its top-level names (`request`, `response`, `xds`, …). */
export interface CelActivation {
  /** The value of the top-level name, or undefined when there is no such attribute. */
  resolve(name: string): unknown;
}

/** An expression that failed to compile: names the expression and the offset. */
export class CelCompileError extends Error {
  readonly expression: string;
  constructor(expression: string, problem: string) {
    super(`invalid CEL expression ${JSON.stringify(expression)}: ${problem}`);
    this.name = 'CelCompileError';
    this.expression = expression;
  }
}

/** A compiled expression. */
export interface CompiledCel {
  readonly expression: string;
  /** The top-level names it reads (`request`, `filter_state`, …). */
  readonly roots: readonly string[];
  /** The value; throws {@link CelEvalError} when the expression is an error for this request. */
  evaluate(activation: CelActivation): unknown;
  /** As a filter: true only when the value is the bool `true` (an error or a non-bool is false). */
  test(activation: CelActivation): boolean;
  /** As Envoy prints it (`Expr::print`), or undefined when the expression is an error. */
  text(activation: CelActivation): string | undefined;
}

type Ev = (a: CelActivation) => unknown;

class Scope implements CelActivation {
  readonly #parent: CelActivation;
  readonly #name: string;
  readonly #value: unknown;
  constructor(parent: CelActivation, name: string, value: unknown) {
    this.#parent = parent;
    this.#name = name;
    this.#value = value;
  }
  resolve(name: string): unknown {
    return name === this.#name ? this.#value : this.#parent.resolve(name);
  }
}

const MACROS = new Set(['all', 'exists', 'exists_one', 'map', 'filter']);

function select(obj: unknown, field: string): unknown {
  if (!isMapLike(obj)) fail(`no such field ${JSON.stringify(field)} on a ${typeName(obj)}`);
  const v = lookup(obj, field);
  return v === undefined ? fail(`no such key: ${JSON.stringify(field)}`) : v;
}

function index(obj: unknown, idx: unknown): unknown {
  if (Array.isArray(obj)) {
    const i = typeof idx === 'bigint' ? Number(idx) : typeof idx === 'number' && Number.isInteger(idx) ? idx : fail(`no matching overload: list index of type ${typeName(idx)}`);
    return i >= 0 && i < obj.length ? obj[i] : fail(`index out of range: ${i}`);
  }
  if (!isMapLike(obj)) fail(`no matching overload: ${typeName(obj)} cannot be indexed`);
  const v = lookup(obj, idx);
  return v === undefined ? fail(`no such key: ${printValue(idx)}`) : v;
}

function arith(op: string, l: unknown, r: unknown): unknown {
  if (typeof l === 'bigint' && typeof r === 'bigint') {
    if ((op === '/' || op === '%') && r === 0n) fail(op === '/' ? 'division by zero' : 'modulus by zero');
    return checkedInt(op === '+' ? l + r : op === '-' ? l - r : op === '*' ? l * r : op === '/' ? l / r : l % r);
  }
  if (typeof l === 'number' && typeof r === 'number' && op !== '%') return op === '+' ? l + r : op === '-' ? l - r : op === '*' ? l * r : l / r;
  if (op === '+') {
    if (typeof l === 'string' && typeof r === 'string') return l + r;
    if (Array.isArray(l) && Array.isArray(r)) return [...l, ...r];
    if (l instanceof Uint8Array && r instanceof Uint8Array) return Uint8Array.from([...l, ...r]);
    if (l instanceof CelDuration && r instanceof CelDuration) return new CelDuration(l.ms + r.ms);
    if (l instanceof CelTimestamp && r instanceof CelDuration) return new CelTimestamp(l.ms + r.ms);
    if (l instanceof CelDuration && r instanceof CelTimestamp) return new CelTimestamp(l.ms + r.ms);
  }
  if (op === '-') {
    if (l instanceof CelDuration && r instanceof CelDuration) return new CelDuration(l.ms - r.ms);
    if (l instanceof CelTimestamp && r instanceof CelDuration) return new CelTimestamp(l.ms - r.ms);
    if (l instanceof CelTimestamp && r instanceof CelTimestamp) return new CelDuration(l.ms - r.ms);
  }
  return fail(`no matching overload: ${typeName(l)} ${op} ${typeName(r)}`);
}

function contains(container: unknown, v: unknown): boolean {
  if (Array.isArray(container)) return container.some((x) => celEquals(x, v));
  if (isMapLike(container)) return lookup(container, v) !== undefined;
  return fail(`no matching overload: in ${typeName(container)}`);
}

/** `&&` / `||` with CEL's commutative error handling. */
function logical(op: '&&' | '||', l: Ev, r: Ev): Ev {
  const decisive = op === '||';
  return (a) => {
    let le: unknown;
    let lv: unknown;
    try {
      lv = asBool(l(a), op);
      if (lv === decisive) return decisive;
    } catch (e) {
      le = e;
    }
    const rv = asBool(r(a), op);
    if (rv === decisive) return decisive;
    if (le !== undefined) throw le;
    return !decisive;
  };
}

function macro(n: CelNode & { k: 'call' }, target: Ev, roots: Set<string>): Ev {
  const v = n.args[0];
  if (n.args.length !== 2 || v?.k !== 'ident') throw new CelError(`${n.fn}() takes a variable name and an expression, e.g. list.${n.fn}(x, x > 0), at ${n.pos}`);
  const name = v.name;
  // The variable is not a top-level name the expression reads.
  const inner = new Set<string>();
  const body = compileNode(n.args[1] as CelNode, inner);
  inner.delete(name);
  for (const r of inner) roots.add(r);
  return (a) => {
    const t = target(a);
    const items = Array.isArray(t) ? t : isMapLike(t) ? keysOf(t) : fail(`no matching overload: ${n.fn}() on a ${typeName(t)}`);
    const each = (x: unknown): unknown => body(new Scope(a, name, x));
    switch (n.fn) {
      case 'all':
        return logical('&&', () => true, () => items.every((x) => asBool(each(x), 'all()')))(a);
      case 'exists':
        return items.some((x) => asBool(each(x), 'exists()'));
      case 'exists_one':
        return items.filter((x) => asBool(each(x), 'exists_one()')).length === 1;
      case 'map':
        return items.map(each);
      default:
        return items.filter((x) => asBool(each(x), 'filter()'));
    }
  };
}

function compileNode(n: CelNode, roots: Set<string>): Ev {
  const c = (x: CelNode): Ev => compileNode(x, roots);
  switch (n.k) {
    case 'lit': {
      const v = n.v;
      return () => v;
    }
    case 'ident': {
      const name = n.name;
      roots.add(name);
      return (a) => {
        const v = a.resolve(name);
        return v === undefined ? fail(`no such attribute: ${name}`) : v;
      };
    }
    case 'select': {
      const obj = c(n.obj);
      const f = n.field;
      return (a) => select(obj(a), f);
    }
    case 'has': {
      const obj = c(n.obj);
      const f = n.field;
      return (a) => {
        const o = obj(a);
        if (!isMapLike(o)) fail(`has(): no such field ${JSON.stringify(f)} on a ${typeName(o)}`);
        return lookup(o, f) !== undefined;
      };
    }
    case 'index': {
      const obj = c(n.obj);
      const idx = c(n.idx);
      return (a) => index(obj(a), idx(a));
    }
    case 'list': {
      const items = n.items.map(c);
      return (a) => items.map((i) => i(a));
    }
    case 'map': {
      const entries = n.entries.map(([k, v]) => [c(k), c(v)] as const);
      return (a) => new Map(entries.map(([k, v]) => [k(a), v(a)]));
    }
    case 'unary': {
      const x = c(n.x);
      if (n.op === '!') return (a) => !asBool(x(a), '!');
      return (a) => {
        const v = x(a);
        if (typeof v === 'bigint') return checkedInt(-v);
        if (typeof v === 'number') return -v;
        if (v instanceof CelDuration) return new CelDuration(-v.ms);
        return fail(`no matching overload: -${typeName(v)}`);
      };
    }
    case 'message':
      throw new CelError(`message construction is not supported (at ${n.pos})`);
    case 'cond': {
      const [cc, t, f] = [c(n.c), c(n.t), c(n.f)];
      return (a) => (asBool(cc(a), '? :') ? t(a) : f(a));
    }
    case 'binary': {
      const [l, r] = [c(n.l), c(n.r)];
      switch (n.op) {
        case '&&':
        case '||':
          return logical(n.op, l, r);
        case '==':
          return (a) => celEquals(l(a), r(a));
        case '!=':
          return (a) => !celEquals(l(a), r(a));
        case '<':
          return (a) => celCompare(l(a), r(a)) < 0;
        case '<=':
          return (a) => celCompare(l(a), r(a)) <= 0;
        case '>':
          return (a) => celCompare(l(a), r(a)) > 0;
        case '>=':
          return (a) => celCompare(l(a), r(a)) >= 0;
        case 'in':
          return (a) => contains(r(a), l(a));
        default: {
          const op = n.op;
          return (a) => arith(op, l(a), r(a));
        }
      }
    }
    case 'call': {
      if (n.target !== undefined) {
        const target = c(n.target);
        if (MACROS.has(n.fn)) return macro(n, target, roots);
        const m = METHODS[n.fn];
        if (m === undefined) throw new CelError(`unknown function .${n.fn}() at ${n.pos}`);
        if (n.args.length !== m[0]) throw new CelError(`.${n.fn}() takes ${m[0]} argument${m[0] === 1 ? '' : 's'}, got ${n.args.length}, at ${n.pos}`);
        const args = n.args.map(c);
        const impl = m[1];
        precompileRegex(n.fn, n.args[0]);
        return (a) => impl(target(a), args.map((x) => x(a)));
      }
      const f = FUNCTIONS[n.fn];
      if (f === undefined) throw new CelError(`unknown function ${n.fn}() at ${n.pos}`);
      if (n.args.length < f[0] || n.args.length > f[1]) throw new CelError(`${n.fn}() takes ${f[0]} argument${f[0] === 1 ? '' : 's'}, got ${n.args.length}, at ${n.pos}`);
      const args = n.args.map(c);
      const impl = f[2];
      precompileRegex(n.fn, n.args[1]);
      return (a) => impl(args.map((x) => x(a)));
    }
  }
}

/** A literal pattern of `matches` is checked when the expression compiles. */
function precompileRegex(fn: string, pattern: CelNode | undefined): void {
  if (fn !== 'matches' || pattern?.k !== 'lit' || typeof pattern.v !== 'string') return;
  try {
    regex(pattern.v);
  } catch (e) {
    throw new CelError(`${(e as Error).message} at ${pattern.pos}`);
  }
}

/**
 * Compiles `expression` once; throws {@link CelCompileError} naming the expression and the
 * offset of the problem (a syntax error, an unknown function, a wrong number of arguments, an
 * invalid literal regular expression).
 */
export function compileCel(expression: string): CompiledCel {
  const roots = new Set<string>();
  let ev: Ev;
  try {
    ev = compileNode(parseCel(expression), roots);
  } catch (e) {
    if (e instanceof CelError) throw new CelCompileError(expression, e.message);
    throw e;
  }
  return Object.freeze({
    expression,
    roots: Object.freeze([...roots]),
    evaluate: ev,
    test(a: CelActivation): boolean {
      try {
        return ev(a) === true;
      } catch (e) {
        if (e instanceof CelEvalError) return false;
        throw e;
      }
    },
    text(a: CelActivation): string | undefined {
      try {
        return printValue(ev(a));
      } catch (e) {
        if (e instanceof CelEvalError) return undefined;
        throw e;
      }
    },
  });
}
