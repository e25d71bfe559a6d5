/**
 * A parser for the subset of Go that Istio's validation test tables are written in: composite
 * literals (`&networking.HTTPRoute{Route: …}`), slices and maps, string/number/bool literals,
 * qualified identifiers (enum constants), calls (`durationpb.New(2 * time.Second)`) and simple
 * arithmetic. It turns a table into a syntax tree that `translate.ts` converts to Istio's JSON.
 *
 * Used only to (re)generate the conformance case files; nothing at run time depends on it.
 */

import { type Tok, tokenize } from './go-tokens.ts';

/** A Go type as written in a composite literal. */
export type GoType =
  | { readonly t: 'named'; readonly name: string }
  | { readonly t: 'slice'; readonly elem: GoType }
  | { readonly t: 'map'; readonly key: GoType; readonly value: GoType }
  | { readonly t: 'ptr'; readonly elem: GoType }
  | { readonly t: 'struct'; readonly fields: readonly string[] }
  | { readonly t: 'elided' };

/** A Go expression. */
export type GoExpr =
  | { readonly k: 'str'; readonly v: string }
  | { readonly k: 'num'; readonly v: number; readonly float: boolean }
  | { readonly k: 'ident'; readonly name: string }
  | { readonly k: 'call'; readonly fn: string; readonly args: readonly GoExpr[]; readonly typeArg?: GoType }
  | { readonly k: 'bin'; readonly op: string; readonly a: GoExpr; readonly b: GoExpr }
  | { readonly k: 'neg'; readonly a: GoExpr }
  | { readonly k: 'addr'; readonly a: GoExpr }
  | { readonly k: 'composite'; readonly type: GoType; readonly elems: readonly GoElem[]; readonly pos: number }
  | { readonly k: 'func'; readonly src: string };

/** One element of a composite literal: `key: value` or a bare value. */
export interface GoElem {
  readonly key?: GoExpr;
  readonly value: GoExpr;
  /** Offset of the element's first character. */
  readonly pos: number;
}

/** A recursive-descent parser over the tokens of one expression or statement list. */
export class GoParser {
  readonly #toks: Tok[];
  readonly #src: string;
  #i = 0;

  constructor(src: string) {
    this.#src = src;
    this.#toks = tokenize(src);
  }

  get done(): boolean {
    return this.peek().type === 'eof';
  }

  peek(n = 0): Tok {
    return this.#toks[Math.min(this.#i + n, this.#toks.length - 1)] as Tok;
  }

  next(): Tok {
    const t = this.peek();
    this.#i++;
    return t;
  }

  isPunct(v: string, n = 0): boolean {
    const t = this.peek(n);
    return t.type === 'punct' && t.v === v;
  }

  expect(v: string): void {
    const t = this.next();
    if (t.v !== v) throw new Error(`expected "${v}" at ${t.pos}, got "${t.v}" near ${JSON.stringify(this.#src.slice(t.pos - 60, t.pos + 60))}`);
  }

  /** Parses a type (after which a `{` follows for a composite literal). */
  parseType(): GoType {
    if (this.isPunct('*')) {
      this.next();
      return { t: 'ptr', elem: this.parseType() };
    }
    if (this.isPunct('[')) {
      this.next();
      this.expect(']');
      return { t: 'slice', elem: this.parseType() };
    }
    const t = this.next();
    if (t.type !== 'ident') throw new Error(`expected a type at ${t.pos}, got "${t.v}"`);
    if (t.v === 'map') {
      this.expect('[');
      const key = this.parseType();
      this.expect(']');
      return { t: 'map', key, value: this.parseType() };
    }
    if (t.v === 'struct') {
      this.expect('{');
      const fields: string[] = [];
      while (!this.isPunct('}')) {
        const names = [this.next().v];
        while (this.isPunct(',')) {
          this.next();
          names.push(this.next().v);
        }
        this.parseType();
        if (this.peek().type === 'str') this.next(); // struct tag
        fields.push(...names);
        if (this.isPunct(';')) this.next();
      }
      this.expect('}');
      return { t: 'struct', fields };
    }
    let name = t.v;
    while (this.isPunct('.')) {
      this.next();
      name += `.${this.next().v}`;
    }
    if (this.isPunct('[') && !this.isPunct(']', 1)) {
      // generic instantiation, e.g. sets.New[string]
      this.next();
      this.parseType();
      this.expect(']');
    }
    return { t: 'named', name };
  }

  /** Parses a full expression. */
  parseExpr(): GoExpr {
    return this.#parseBinary(0);
  }

  #parseBinary(minPrec: number): GoExpr {
    let left = this.#parseUnary();
    for (;;) {
      const t = this.peek();
      const prec = t.type === 'punct' ? ({ '+': 1, '-': 1, '*': 2, '/': 2, '%': 2, '<<': 2, '|': 1 } as Record<string, number>)[t.v] : undefined;
      if (prec === undefined || prec < minPrec) return left;
      this.next();
      const right = this.#parseBinary(prec + 1);
      left = { k: 'bin', op: t.v, a: left, b: right };
    }
  }

  #parseUnary(): GoExpr {
    if (this.isPunct('&')) {
      this.next();
      return { k: 'addr', a: this.#parseUnary() };
    }
    if (this.isPunct('-')) {
      this.next();
      return { k: 'neg', a: this.#parseUnary() };
    }
    return this.#parsePrimary();
  }

  /** Parses `{ elems }` of a composite literal of type `type`. */
  parseComposite(type: GoType): GoExpr {
    const pos = this.peek().pos;
    this.expect('{');
    const elems: GoElem[] = [];
    while (!this.isPunct('}')) {
      const at = this.peek().pos;
      const first = this.#parseElemValue();
      if (this.isPunct(':')) {
        this.next();
        elems.push({ key: first, value: this.#parseElemValue(), pos: at });
      } else {
        elems.push({ value: first, pos: at });
      }
      if (this.isPunct(',')) this.next();
      else break;
    }
    this.expect('}');
    return { k: 'composite', type, elems, pos };
  }

  #parseElemValue(): GoExpr {
    if (this.isPunct('{')) return this.parseComposite({ t: 'elided' });
    return this.parseExpr();
  }

  #parsePrimary(): GoExpr {
    const t = this.peek();
    if (t.type === 'str') {
      this.next();
      let e: GoExpr = { k: 'str', v: t.v };
      while (this.isPunct('+') && this.peek(1).type === 'str') {
        this.next();
        e = { k: 'str', v: (e as { v: string }).v + this.next().v };
      }
      return e;
    }
    if (t.type === 'num') {
      this.next();
      const raw = t.v.replace(/_/g, '');
      return { k: 'num', v: Number(raw), float: /[.eE]/.test(raw) && !/^0[xX]/.test(raw) };
    }
    if (this.isPunct('(')) {
      this.next();
      const e = this.parseExpr();
      this.expect(')');
      return this.#postfix(e);
    }
    if (this.isPunct('[') || this.isPunct('*')) {
      const type = this.parseType();
      if (this.isPunct('(')) {
        // conversion such as []byte("x")
        this.next();
        const arg = this.parseExpr();
        this.expect(')');
        return { k: 'call', fn: typeName(type), args: [arg], typeArg: type };
      }
      if (!this.isPunct('{')) return { k: 'ident', name: typeName(type) }; // a type as an argument, e.g. make([]byte, n)
      return this.parseComposite(type);
    }
    if (t.type === 'ident' && t.v === 'func') return this.#parseFuncLit();
    if (t.type === 'ident') {
      if (t.v === 'map' || t.v === 'struct') return this.parseComposite(this.parseType());
      const save = this.#i;
      const type = this.parseType();
      if (this.isPunct('{') && type.t === 'named' && /^[A-Za-z_]/.test(type.name) && /(^|\.)[A-Z]/.test(type.name)) {
        return this.parseComposite(type);
      }
      this.#i = save;
      let name = this.next().v;
      while (this.isPunct('.') && this.peek(1).type === 'ident') {
        this.next();
        name += `.${this.next().v}`;
      }
      return this.#postfix({ k: 'ident', name });
    }
    throw new Error(`unexpected "${t.v}" at ${t.pos} near ${JSON.stringify(this.#src.slice(t.pos - 80, t.pos + 40))}`);
  }

  #postfix(e: GoExpr): GoExpr {
    let cur = e;
    for (;;) {
      if (this.isPunct('(')) {
        this.next();
        const args: GoExpr[] = [];
        while (!this.isPunct(')')) {
          args.push(this.parseExpr());
          if (this.isPunct('...')) this.next();
          if (this.isPunct(',')) this.next();
        }
        this.expect(')');
        cur = { k: 'call', fn: cur.k === 'ident' ? cur.name : '<expr>', args };
        continue;
      }
      if (this.isPunct('.') && this.peek(1).type === 'ident') {
        this.next();
        const name = this.next().v;
        cur = { k: 'call', fn: `.${name}`, args: [cur] };
        continue;
      }
      return cur;
    }
  }

  #parseFuncLit(): GoExpr {
    const start = this.peek().pos;
    this.next(); // func
    let depth = 0;
    // skip the signature, then the body
    while (!(this.isPunct('{') && depth === 0)) {
      const t = this.next();
      if (t.v === '(') depth++;
      if (t.v === ')') depth--;
    }
    this.#skipBraces();
    return { k: 'func', src: this.#src.slice(start, this.peek().pos) };
  }

  #skipBraces(): void {
    this.expect('{');
    let depth = 1;
    while (depth > 0) {
      const t = this.next();
      if (t.type === 'eof') throw new Error('unbalanced braces');
      if (t.v === '{') depth++;
      if (t.v === '}') depth--;
    }
  }
}

/** A readable name of a type. */
export function typeName(t: GoType): string {
  switch (t.t) {
    case 'named': return t.name;
    case 'slice': return `[]${typeName(t.elem)}`;
    case 'ptr': return `*${typeName(t.elem)}`;
    case 'map': return `map[${typeName(t.key)}]${typeName(t.value)}`;
    case 'struct': return 'struct';
    case 'elided': return '_';
  }
}

/** Parses one expression from source text. */
export function parseGoExpr(src: string): GoExpr {
  const p = new GoParser(src);
  const e = p.parseExpr();
  return e;
}

/** The body of `func <name>(…) {…}` in a Go file, and the 1-based line it starts on. */
export function functionBody(file: string, name: string): { body: string; line: number; offset: number } {
  const re = new RegExp(`^func ${name}\\(`, 'm');
  const m = re.exec(file);
  if (m === null) throw new Error(`no func ${name}`);
  const open = file.indexOf('{', file.indexOf(')', m.index));
  let depth = 0;
  let i = open;
  // Walk characters, skipping strings and comments.
  for (; i < file.length; i++) {
    const c = file[i];
    if (c === '/' && file[i + 1] === '/') {
      i = file.indexOf('\n', i);
      continue;
    }
    if (c === '"') {
      i++;
      while (file[i] !== '"') i += file[i] === '\\' ? 2 : 1;
      continue;
    }
    if (c === '`') {
      i = file.indexOf('`', i + 1);
      continue;
    }
    if (c === "'") {
      i++;
      while (file[i] !== "'") i += file[i] === '\\' ? 2 : 1;
      continue;
    }
    if (c === '{') depth++;
    if (c === '}') {
      depth--;
      if (depth === 0) break;
    }
  }
  return { body: file.slice(open + 1, i), line: file.slice(0, m.index).split('\n').length, offset: open + 1 };
}

/** 1-based line number of a character offset. */
export function lineAt(file: string, offset: number): number {
  let n = 1;
  for (let i = 0; i < offset; i++) if (file.charCodeAt(i) === 10) n++;
  return n;
}
