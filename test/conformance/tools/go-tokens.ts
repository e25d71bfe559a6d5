/**
 * The tokenizer of the Go subset that Istio's test tables are written in (see go-literal.ts):
 * identifiers, numbers, interpreted and raw strings, runes and punctuation; comments dropped.
 *
 * Used only to (re)generate the conformance case files.
 */

export interface Tok {
  readonly type: 'ident' | 'str' | 'num' | 'punct' | 'eof';
  readonly v: string;
  readonly pos: number;
}

const PUNCT = [':=', '...', '&&', '||', '==', '!=', '<=', '>=', '<<', '>>', '{', '}', '[', ']', '(', ')', ',', ':', '&', '*', '+', '-', '/', '.', ';', '=', '!', '<', '>', '%', '|'];

function unescapeGo(body: string): string {
  return body.replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)/g, (_m, e: string) => {
    switch (e[0]) {
      case 'n': return '\n';
      case 't': return '\t';
      case 'r': return '\r';
      case '\\': return '\\';
      case '"': return '"';
      case "'": return "'";
      case 'a': return '\x07';
      case 'b': return '\b';
      case 'f': return '\f';
      case 'v': return '\v';
      case 'x': return String.fromCharCode(Number.parseInt(e.slice(1), 16));
      case 'u':
      case 'U': return String.fromCodePoint(Number.parseInt(e.slice(1), 16));
      default:
        if (/^[0-7]{3}$/.test(e)) return String.fromCharCode(Number.parseInt(e, 8));
        throw new Error(`unknown escape \\${e}`);
    }
  });
}

/** Splits Go source into tokens (comments dropped). */
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
    if (src.startsWith('/*', i)) {
      i = src.indexOf('*/', i) + 2;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      while (src[j] !== '"') j += src[j] === '\\' ? 2 : 1;
      out.push({ type: 'str', v: unescapeGo(src.slice(i + 1, j)), pos: i });
      i = j + 1;
      continue;
    }
    if (c === '`') {
      const j = src.indexOf('`', i + 1);
      out.push({ type: 'str', v: src.slice(i + 1, j), pos: i });
      i = j + 1;
      continue;
    }
    if (c === "'") {
      const j = src.indexOf("'", i + 1);
      out.push({ type: 'num', v: String(unescapeGo(src.slice(i + 1, j)).codePointAt(0)), pos: i });
      i = j + 1;
      continue;
    }
    const num = /^(0[xX][0-9a-fA-F_]+|\d[\d_]*(\.\d*)?([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?)/.exec(src.slice(i, i + 40));
    if (num !== null && /[\d.]/.test(c) && !(c === '.' && !/\d/.test(src[i + 1] ?? ''))) {
      out.push({ type: 'num', v: num[0], pos: i });
      i += num[0].length;
      continue;
    }
    const id = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i, i + 200));
    if (id !== null) {
      out.push({ type: 'ident', v: id[0], pos: i });
      i += id[0].length;
      continue;
    }
    const p = PUNCT.find((x) => src.startsWith(x, i));
    if (p === undefined) throw new Error(`unexpected character ${JSON.stringify(c)} at ${i}`);
    out.push({ type: 'punct', v: p, pos: i });
    i += p.length;
  }
  out.push({ type: 'eof', v: '', pos: src.length });
  return out;
}

