/**
 * CEL expressions to syntax trees: the one parser behind both Telemetry validation
 * ({@link checkCel} in `cel.ts`, which only asks whether it parses, as Istio's
 * `cel.NewEnv().Parse`) and the evaluator in `src/telemetry/cel.ts`, so what validation accepts
 * and what telemetry evaluates are read the same way.
 *
 * Grammar: github.com/google/cel-spec `doc/langdef.md` (precedence: `?:` < `||` < `&&` <
 * relations and `in` < `+ -` < `* / %` < unary `! -` < member, index and call).
 *
 * @module
 */
import { CelError, RESERVED, type Tok, tokenize } from './cel-tokens.ts';

/** A parsed CEL expression. `pos` is the offset in the source, for error messages. */
export type CelNode =
  | { readonly k: 'lit'; readonly pos: number; readonly v: unknown }
  | { readonly k: 'ident'; readonly pos: number; readonly name: string }
  | { readonly k: 'select'; readonly pos: number; readonly obj: CelNode; readonly field: string }
  | { readonly k: 'has'; readonly pos: number; readonly obj: CelNode; readonly field: string }
  | { readonly k: 'index'; readonly pos: number; readonly obj: CelNode; readonly idx: CelNode }
  | { readonly k: 'call'; readonly pos: number; readonly fn: string; readonly target: CelNode | undefined; readonly args: readonly CelNode[] }
  | { readonly k: 'list'; readonly pos: number; readonly items: readonly CelNode[] }
  | { readonly k: 'map'; readonly pos: number; readonly entries: readonly (readonly [CelNode, CelNode])[] }
  | { readonly k: 'unary'; readonly pos: number; readonly op: '!' | '-'; readonly x: CelNode }
  | { readonly k: 'binary'; readonly pos: number; readonly op: string; readonly l: CelNode; readonly r: CelNode }
  | { readonly k: 'cond'; readonly pos: number; readonly c: CelNode; readonly t: CelNode; readonly f: CelNode }
  /** A message construction `a.b.Name{field: value, …}`: valid syntax, which the evaluator does not support. */
  | { readonly k: 'message'; readonly pos: number; readonly type: string; readonly fields: readonly (readonly [string, CelNode])[] };

export { CelError };

const LEVELS: readonly (readonly string[])[] = [['||'], ['&&'], ['<', '<=', '>=', '>', '==', '!=', 'in'], ['+', '-'], ['*', '/', '%']];

const ESCAPES: Readonly<Record<string, string>> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', '?': '?', '"': '"', "'": "'", '`': '`' };

/** The value of a string or bytes literal as written (prefixes, quotes, escapes). */
function literalString(raw: string, pos: number): string | Uint8Array {
  const m = /^([rRbB]{0,2})("""|'''|"|')/.exec(raw) as RegExpExecArray;
  const prefix = (m[1] as string).toLowerCase();
  const body = raw.slice(m[0].length, raw.length - (m[2] as string).length);
  const isBytes = prefix.includes('b');
  if (prefix.includes('r')) return isBytes ? new TextEncoder().encode(body) : body;
  const bytes: number[] = [];
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i] as string;
    if (c !== '\\') {
      if (isBytes) bytes.push(...new TextEncoder().encode(c));
      else out += c;
      continue;
    }
    const e = body[++i] ?? '';
    let code: number | undefined;
    let isByte = false;
    if (Object.hasOwn(ESCAPES, e)) {
      const ch = ESCAPES[e] as string;
      if (isBytes) bytes.push(ch.charCodeAt(0));
      else out += ch;
      continue;
    }
    if (e === 'x' || e === 'X') {
      code = Number.parseInt(body.slice(i + 1, i + 3), 16);
      i += 2;
      isByte = true;
    } else if (e === 'u' || e === 'U') {
      const n = e === 'u' ? 4 : 8;
      code = Number.parseInt(body.slice(i + 1, i + 1 + n), 16);
      i += n;
    } else if (/[0-3]/.test(e)) {
      code = Number.parseInt(body.slice(i, i + 3), 8);
      i += 2;
      isByte = true;
    } else throw new CelError(`invalid escape "\\${e}" in the string at ${pos}`);
    if (code === undefined) continue;
    if (Number.isNaN(code)) throw new CelError(`invalid escape in the string at ${pos}`);
    if (isBytes) {
      if (isByte) bytes.push(code);
      else bytes.push(...new TextEncoder().encode(String.fromCodePoint(code)));
    } else out += String.fromCodePoint(code);
  }
  return isBytes ? Uint8Array.from(bytes) : out;
}

/** The value of a number literal: ints and uints are `bigint`, doubles `number`. */
function literalNumber(raw: string, pos: number): bigint | number {
  const unsigned = /[uU]$/.test(raw);
  const text = unsigned ? raw.slice(0, -1) : raw;
  if (/^0[xX]/.test(text) || /^\d+$/.test(text)) {
    const v = BigInt(text);
    if (unsigned ? v > 0xffffffffffffffffn : v > 0x7fffffffffffffffn + 1n) throw new CelError(`integer literal ${raw} out of range at ${pos}`);
    return v;
  }
  return Number(text);
}

const INT_EDGE = 0x7fffffffffffffffn + 1n;

class Parser {
  readonly #t: Tok[];
  #i = 0;
  #depth = 0;
  /** Int literals of 2^63, in range only when a `-` folds into them (cel-go: invalid int literal). */
  readonly #edges = new Set<CelNode>();

  constructor(src: string) {
    this.#t = tokenize(src);
  }

  parse(): CelNode {
    const n = this.#expr();
    const t = this.#peek();
    if (t.type !== 'eof') throw new CelError(`unexpected "${t.v}" at ${t.pos}`);
    for (const e of this.#edges) throw new CelError(`integer literal ${String((e as { v: bigint }).v)} out of range at ${e.pos}`);
    return n;
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

  #expr(): CelNode {
    if (++this.#depth > 250) throw new CelError('expression nested too deeply');
    let n = this.#binary(0);
    if (this.#is('?')) {
      const pos = this.#peek().pos;
      this.#i++;
      const t = this.#binary(0);
      this.#take(':');
      const f = this.#expr();
      n = { k: 'cond', pos, c: n, t, f };
    }
    this.#depth--;
    return n;
  }

  #binary(level: number): CelNode {
    if (level === LEVELS.length) return this.#unary();
    let n = this.#binary(level + 1);
    while ((LEVELS[level] as readonly string[]).some((o) => this.#is(o))) {
      const t = this.#peek();
      this.#i++;
      const r = this.#binary(level + 1);
      n = { k: 'binary', pos: t.pos, op: t.v, l: n, r };
    }
    return n;
  }

  #unary(): CelNode {
    if (this.#is('!') || this.#is('-')) {
      const t = this.#peek();
      const op = t.v as '!' | '-';
      let count = 0;
      while (this.#is(op)) {
        this.#i++;
        count++;
      }
      // `-` directly before a number literal is part of it (so -9223372036854775808 fits).
      let n = this.#member();
      if (op === '-' && n.k === 'lit' && (typeof n.v === 'bigint' || typeof n.v === 'number') && count % 2 === 1) {
        this.#edges.delete(n);
        n = { k: 'lit', pos: t.pos, v: typeof n.v === 'bigint' ? -n.v : -(n.v as number) };
        count--;
      }
      for (let c = 0; c < count; c++) n = { k: 'unary', pos: t.pos, op, x: n };
      return n;
    }
    return this.#member();
  }

  #member(): CelNode {
    let n = this.#primary();
    for (;;) {
      if (this.#is('.')) {
        const pos = this.#peek().pos;
        this.#i++;
        const field = this.#ident();
        if (this.#is('(')) n = { k: 'call', pos, fn: field, target: n, args: this.#args(')') };
        else n = { k: 'select', pos, obj: n, field };
      } else if (this.#is('[')) {
        const pos = this.#peek().pos;
        this.#i++;
        const idx = this.#expr();
        this.#take(']');
        n = { k: 'index', pos, obj: n, idx };
      } else {
        return n;
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

  #args(close: string): CelNode[] {
    this.#i++;
    const out: CelNode[] = [];
    while (!this.#is(close)) {
      out.push(this.#expr());
      if (!this.#is(',')) break;
      this.#i++;
      if (close === ')' && this.#is(')')) throw new CelError(`unexpected "," before ")" at ${this.#peek().pos}`);
    }
    this.#take(close);
    return out;
  }

  /** Parses `{key: value, …}` from its `{`, each key read by `key`. */
  #entries<K>(key: () => K): [K, CelNode][] {
    this.#i++;
    const out: [K, CelNode][] = [];
    while (!this.#is('}')) {
      const k = key();
      this.#take(':');
      out.push([k, this.#expr()]);
      if (!this.#is(',')) break;
      this.#i++;
    }
    this.#take('}');
    return out;
  }

  #primary(): CelNode {
    const t = this.#peek();
    if (t.type === 'num') {
      this.#i++;
      const n: CelNode = { k: 'lit', pos: t.pos, v: literalNumber(t.v, t.pos) };
      if (n.v === INT_EDGE && !/[uU]$/.test(t.v)) this.#edges.add(n);
      return n;
    }
    if (t.type === 'str') {
      this.#i++;
      return { k: 'lit', pos: t.pos, v: literalString(t.v, t.pos) };
    }
    if (this.#is('(')) {
      this.#i++;
      const n = this.#expr();
      this.#take(')');
      return n;
    }
    if (this.#is('[')) return { k: 'list', pos: t.pos, items: this.#args(']') };
    if (this.#is('{')) return { k: 'map', pos: t.pos, entries: this.#entries(() => this.#expr()) };
    if (this.#is('.')) this.#i++;
    const at = this.#peek();
    if (at.type !== 'ident') throw new CelError(`expected an expression at ${at.pos}, got ${at.type === 'eof' ? 'the end' : `"${at.v}"`}`);
    const name = this.#ident();
    if (name === 'true' || name === 'false') return { k: 'lit', pos: at.pos, v: name === 'true' };
    if (name === 'null') return { k: 'lit', pos: at.pos, v: null };
    if (this.#is('(')) {
      const args = this.#args(')');
      if (name === 'has') {
        const a = args[0];
        if (args.length !== 1 || a === undefined || a.k !== 'select') throw new CelError('invalid argument to has() macro: it takes one field selection, e.g. has(request.headers)');
        return { k: 'has', pos: at.pos, obj: a.obj, field: a.field };
      }
      return { k: 'call', pos: at.pos, fn: name, target: undefined, args };
    }
    // A message construction: a.b.Name{field: value, …}
    let k = this.#i;
    while (this.#t[k]?.v === '.' && this.#t[k + 1]?.type === 'ident') k += 2;
    if (this.#t[k]?.v === '{') {
      let type = name;
      while (this.#i < k) {
        this.#i++;
        type += `.${this.#ident()}`;
      }
      return { k: 'message', pos: at.pos, type, fields: this.#entries(() => this.#ident()) };
    }
    return { k: 'ident', pos: at.pos, name };
  }
}

/** Parses `src`; throws {@link CelError} naming the offset of the problem. */
export function parseCel(src: string): CelNode {
  return new Parser(src).parse();
}
