/**
 * `JSON.parse` of a large text in {@link Steps}. A control plane's config event with 20,000
 * resources is about 7 MB of JSON, and one `JSON.parse` of it blocks the event loop for 40–90 ms.
 * Here the top-level object's members are found by a scan (strings skipped with native
 * `indexOf`), and a large array member is cut into its elements, each parsed with `JSON.parse`,
 * with pauses in between. The value is the one `JSON.parse(text)` gives; anything the scan does
 * not expect (another top-level shape, invalid JSON) is left to `JSON.parse(text)` itself, errors
 * included.
 *
 * @module
 */
import type { Steps } from './steps.ts';

/** Texts shorter than this are parsed at once. */
const SPLIT_ABOVE = 256 * 1024;
/** About how many characters are scanned or parsed between pauses. */
const CHUNK = 64 * 1024;

/** The text is not an object the scan understands (JSON.parse then handles it whole). */
class Unexpected extends Error {}

/** The index just after the string that starts (with `"`) at `i`; throws on an unterminated string. */
export function stringEnd(text: string, i: number): number {
  let j = i + 1;
  for (;;) {
    const q = text.indexOf('"', j);
    if (q < 0) throw new Unexpected();
    let backslashes = 0;
    for (let k = q - 1; text.charCodeAt(k) === 92 /* \ */; k--) backslashes++;
    if (backslashes % 2 === 0) return q + 1;
    j = q + 1;
  }
}

export function skipSpace(text: string, i: number): number {
  let j = i;
  for (;;) {
    const c = text.charCodeAt(j);
    if (c === 32 || c === 10 || c === 13 || c === 9) j++;
    else return j;
  }
}

/**
 * The end of the value starting at `i` (at depth 0: up to the `,` or closing bracket after it),
 * and the starts and ends of its elements when it is an array. Pauses every {@link CHUNK} characters.
 */
function* scanValue(text: string, i: number, elements: [number, number][] | undefined): Steps<number> {
  let depth = 0;
  let j = i;
  let elementStart = -1;
  let sinceYield = 0;
  for (;;) {
    if (j >= text.length) throw new Unexpected();
    const c = text.charCodeAt(j);
    if (c === 34 /* " */) {
      if (depth === 1 && elementStart < 0) elementStart = j;
      const end = stringEnd(text, j);
      sinceYield += end - j;
      j = end;
    } else {
      if (c === 123 /* { */ || c === 91 /* [ */) {
        if (depth === 1 && elementStart < 0) elementStart = j;
        depth++;
      } else if (c === 125 /* } */ || c === 93 /* ] */) {
        if (depth === 0) return j; // the enclosing object ends after a string value
        if (depth === 1 && elementStart >= 0) elements?.push([elementStart, j]);
        depth--;
        if (depth === 0) return j + 1;
        if (depth < 0) throw new Unexpected();
      } else if (c === 44 /* , */) {
        if (depth === 0) return j;
        if (depth === 1 && elementStart >= 0) {
          elements?.push([elementStart, j]);
          elementStart = -1;
        }
      } else if (depth === 0 && c !== 32 && c !== 10 && c !== 13 && c !== 9) {
        // A scalar at the top: runs to the next `,` or `}`.
        const comma = text.indexOf(',', j);
        const brace = text.indexOf('}', j);
        const end = comma < 0 ? brace : brace < 0 ? comma : Math.min(comma, brace);
        if (end < 0) throw new Unexpected();
        return end;
      } else if (depth === 1 && elementStart < 0 && c !== 32 && c !== 10 && c !== 13 && c !== 9) {
        elementStart = j; // a scalar element
      }
      j++;
      sinceYield++;
    }
    if (sinceYield >= CHUNK) {
      sinceYield = 0;
      yield;
    }
  }
}

function* parseObject(text: string): Steps<unknown> {
  let i = skipSpace(text, 0);
  if (text.charCodeAt(i) !== 123 /* { */) throw new Unexpected();
  const out: Record<string, unknown> = {};
  i = skipSpace(text, i + 1);
  if (text.charCodeAt(i) === 125 /* } */) return skipSpace(text, i + 1) === text.length ? out : JSON.parse(text);
  for (;;) {
    if (text.charCodeAt(i) !== 34) throw new Unexpected();
    const keyEnd = stringEnd(text, i);
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = skipSpace(text, keyEnd);
    if (text.charCodeAt(i) !== 58 /* : */) throw new Unexpected();
    i = skipSpace(text, i + 1);
    const isArray = text.charCodeAt(i) === 91;
    const elements: [number, number][] | undefined = isArray ? [] : undefined;
    const end = yield* scanValue(text, i, elements);
    let value: unknown;
    if (isArray && end - i > CHUNK) {
      const list: unknown[] = [];
      let parsed = 0;
      for (const [a, b] of elements as [number, number][]) {
        list.push(JSON.parse(text.slice(a, b)));
        parsed += b - a;
        if (parsed >= CHUNK) {
          parsed = 0;
          yield;
        }
      }
      value = list;
    } else {
      value = JSON.parse(text.slice(i, end));
    }
    // As JSON.parse does: an own property even for `__proto__`; a repeated key keeps the last value.
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
    i = skipSpace(text, end);
    const c = text.charCodeAt(i);
    if (c === 44 /* , */) {
      i = skipSpace(text, i + 1);
      continue;
    }
    if (c === 125 /* } */ && skipSpace(text, i + 1) === text.length) return out;
    throw new Unexpected();
  }
}

/** `JSON.parse(text)` in steps (see the module comment). Throws what `JSON.parse` throws. */
export function* parseJsonSteps(text: string): Steps<unknown> {
  if (text.length < SPLIT_ABOVE) return JSON.parse(text);
  try {
    return yield* parseObject(text);
  } catch {
    // Not the shape scanned for, or not JSON: JSON.parse decides (and throws its own error).
    return JSON.parse(text);
  }
}
