/**
 * CEL syntax, as Istio checks Telemetry access-log filters (`cel.NewEnv().Parse`): the
 * expression must parse; it is not type-checked or evaluated. A recursive-descent parser of the
 * CEL grammar (github.com/google/cel-spec, langdef.md), with the `has()` macro's argument rule.
 *
 * @module
 */

/** A token's kind. */
export type TokType = 'ident' | 'num' | 'str' | 'op' | 'eof';

/** A token: its kind, its source text (strings and numbers raw, as written) and its offset. */
export interface Tok {
  readonly type: TokType;
  readonly v: string;
  readonly pos: number;
}

/** Words CEL reserves: not usable as identifiers (`in` is an operator). */
export const RESERVED = new Set(['as', 'break', 'const', 'continue', 'else', 'for', 'function', 'if', 'import', 'let', 'loop', 'package', 'namespace', 'return', 'var', 'void', 'while']);
const OPS = ['==', '!=', '<=', '>=', '&&', '||', '<', '>', '!', '-', '+', '*', '/', '%', '?', ':', '.', ',', '(', ')', '[', ']', '{', '}'];
const NUMBER = /^(?:0[xX][0-9a-fA-F]+[uU]?|\d*\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+[uU]?)/;

/** A syntax error; the message names the offset. */
export class CelError extends Error {}

/** Splits a CEL expression into tokens (shared with the evaluator in `src/telemetry/cel.ts`). */
export function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i] as string;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (src.startsWith('//', i)) {
      const nl = src.indexOf('\n', i);
      i = nl === -1 ? src.length : nl;
      continue;
    }
    const strStart = /^([rRbB]{0,2})("""|'''|"|')/.exec(src.slice(i, i + 5));
    if (strStart !== null && (strStart[1] === '' || /^(?:[rR][bB]?|[bB][rR]?)$/.test(strStart[1] as string))) {
      const raw = /[rR]/.test(strStart[1] as string);
      const quote = strStart[2] as string;
      let j = i + strStart[0].length;
      for (;;) {
        if (j >= src.length) throw new CelError(`unterminated string at ${i}`);
        if (!raw && src[j] === '\\') {
          j += 2;
          continue;
        }
        if (quote.length === 1 && (src[j] === '\n' || src[j] === '\r')) throw new CelError(`newline in a string at ${j}`);
        if (src.startsWith(quote, j)) break;
        j++;
      }
      out.push({ type: 'str', v: src.slice(i, j + quote.length), pos: i });
      i = j + quote.length;
      continue;
    }
    const num = /[\d.]/.test(c) ? NUMBER.exec(src.slice(i)) : null;
    if (num !== null && !(c === '.' && !/\d/.test(src[i + 1] ?? ''))) {
      if (/^[A-Za-z_]/.test(src.slice(i + num[0].length))) throw new CelError(`invalid number at ${i}`);
      out.push({ type: 'num', v: num[0], pos: i });
      i += num[0].length;
      continue;
    }
    const id = /^[_a-zA-Z][_a-zA-Z0-9]*/.exec(src.slice(i));
    if (id !== null) {
      out.push({ type: id[0] === 'in' ? 'op' : 'ident', v: id[0], pos: i });
      i += id[0].length;
      continue;
    }
    const op = OPS.find((o) => src.startsWith(o, i));
    if (op === undefined) throw new CelError(`unexpected character ${JSON.stringify(c)} at ${i}`);
    out.push({ type: 'op', v: op, pos: i });
    i += op.length;
  }
  out.push({ type: 'eof', v: '', pos: src.length });
  return out;
}

/** What a parsed expression is, as far as the `has()` macro cares. */
type Shape = 'select' | 'other';

class Parser {
  readonly #t: Tok[];
  #i = 0;
  #depth = 0;

  constructor(src: string) {
    this.#t = tokenize(src);
  }

  parse(): void {
    this.#expr();
    const t = this.#peek();
    if (t.type !== 'eof') throw new CelError(`unexpected "${t.v}" at ${t.pos}`);
  }

  #peek(): Tok {
    return this.#t[this.#i] as Tok;
  }

  #is(v: string): boolean {
    const t = this.#peek();
    return t.type === 'op' && t.v === v;
  }

  #take(v: string): void {
    const t = this.#peek();
    if (t.type !== 'op' || t.v !== v) throw new CelError(`expected "${v}" at ${t.pos}, got ${t.type === 'eof' ? 'the end' : `"${t.v}"`}`);
    this.#i++;
  }

  #expr(): Shape {
    if (++this.#depth > 250) throw new CelError('expression nested too deeply');
    let shape = this.#binary(0);
    if (this.#is('?')) {
      this.#i++;
      this.#binary(0);
      this.#take(':');
      this.#expr();
      shape = 'other';
    }
    this.#depth--;
    return shape;
  }

  static readonly #LEVELS: readonly (readonly string[])[] = [['||'], ['&&'], ['<', '<=', '>=', '>', '==', '!=', 'in'], ['+', '-'], ['*', '/', '%']];

  #binary(level: number): Shape {
    if (level === Parser.#LEVELS.length) return this.#unary();
    let shape = this.#binary(level + 1);
    while ((Parser.#LEVELS[level] as readonly string[]).some((o) => this.#is(o))) {
      this.#i++;
      this.#binary(level + 1);
      shape = 'other';
    }
    return shape;
  }

  #unary(): Shape {
    if (this.#is('!') || this.#is('-')) {
      const op = this.#peek().v;
      while (this.#is(op)) this.#i++;
      this.#member();
      return 'other';
    }
    return this.#member();
  }

  #member(): Shape {
    let shape = this.#primary();
    for (;;) {
      if (this.#is('.')) {
        this.#i++;
        this.#ident();
        if (this.#is('(')) {
          this.#args(')');
          shape = 'other';
        } else {
          shape = 'select';
        }
      } else if (this.#is('[')) {
        this.#i++;
        this.#expr();
        this.#take(']');
        shape = 'other';
      } else {
        return shape;
      }
    }
  }

  #ident(): string {
    const t = this.#peek();
    if (t.type !== 'ident') throw new CelError(`expected a name at ${t.pos}, got ${t.type === 'eof' ? 'the end' : `"${t.v}"`}`);
    if (RESERVED.has(t.v)) throw new CelError(`"${t.v}" is a reserved word at ${t.pos}`);
    this.#i++;
    return t.v;
  }

  /** Parses `(a, b)` or `[a, b,]` after the opening token; returns the argument shapes. */
  #args(close: string): Shape[] {
    this.#i++;
    const shapes: Shape[] = [];
    while (!this.#is(close)) {
      shapes.push(this.#expr());
      if (!this.#is(',')) break;
      this.#i++;
      if (close === ')' && this.#is(')')) throw new CelError(`unexpected "," before ")" at ${this.#peek().pos}`);
    }
    this.#take(close);
    return shapes;
  }

  #primary(): Shape {
    const t = this.#peek();
    if (t.type === 'num' || t.type === 'str') {
      this.#i++;
      return 'other';
    }
    if (this.#is('(')) {
      this.#i++;
      this.#expr();
      this.#take(')');
      return 'other';
    }
    if (this.#is('[')) {
      this.#args(']');
      return 'other';
    }
    if (this.#is('{')) {
      this.#i++;
      while (!this.#is('}')) {
        this.#expr();
        this.#take(':');
        this.#expr();
        if (!this.#is(',')) break;
        this.#i++;
      }
      this.#take('}');
      return 'other';
    }
    if (this.#is('.')) this.#i++;
    const at = this.#peek();
    if (at.type !== 'ident') throw new CelError(`expected an expression at ${at.pos}, got ${at.type === 'eof' ? 'the end' : `"${at.v}"`}`);
    const name = this.#ident();
    if (this.#is('(')) {
      const args = this.#args(')');
      if (name === 'has' && (args.length !== 1 || args[0] !== 'select')) throw new CelError('invalid argument to has() macro: it takes one field selection, e.g. has(request.headers)');
      return 'other';
    }
    // A message construction: a.b.Name{field: value, …}
    let k = this.#i;
    while (this.#t[k]?.v === '.' && this.#t[k + 1]?.type === 'ident') k += 2;
    if (this.#t[k]?.v === '{') {
      while (this.#i < k) {
        this.#i++;
        this.#ident();
      }
      this.#i++;
      while (!this.#is('}')) {
        this.#ident();
        this.#take(':');
        this.#expr();
        if (!this.#is(',')) break;
        this.#i++;
      }
      this.#take('}');
    }
    return 'other';
  }
}

/** Checks CEL syntax; returns the problem, or nothing when the expression parses. */
export function checkCel(expression: string): string | undefined {
  try {
    new Parser(expression).parse();
    return undefined;
  } catch (err) {
    if (err instanceof CelError) return `must be a valid CEL expression: ${err.message}`;
    throw err;
  }
}
