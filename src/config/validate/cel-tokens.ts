/**
 * CEL's lexical grammar (github.com/google/cel-spec, langdef.md): the tokens the parser in
 * `cel-parse.ts` reads.
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

/** Splits a CEL expression into tokens. */
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
