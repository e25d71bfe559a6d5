/**
 * Config files that are JSON (`kubectl get … -o json` gives one `List` of thousands of
 * resources), read with `JSON.parse` in steps instead of the YAML parser: the YAML parser takes
 * about a microsecond a byte and composes a document in one piece, so a 7 MB `List` used to stop
 * the process for seconds. The documents are the ones the YAML path gives — JSON is YAML — with
 * the same file, line and field-path locations (found on demand by walking the text from the
 * resource's start) and the same error for a repeated key. Text that is not valid JSON goes to
 * the YAML parser, which reports its errors as before.
 *
 * @module
 */
import type { FieldPath, RawDocument } from './issues.ts';
import { parseJsonSteps, skipSpace, stringEnd } from './json-steps.ts';
import type { Steps } from './steps.ts';
import { DUPLICATE_KEY_MESSAGE } from './yaml-keys.ts';

/** About how many characters are scanned between pauses. */
const CHUNK = 64 * 1024;

/** True if the text looks like a JSON object (its first non-space character is `{`). */
export function looksLikeJsonObject(text: string): boolean {
  return text.charCodeAt(skipSpace(text, 0)) === 123;
}

/** Line numbers (1-based) of offsets in `text`, from an index of its line starts built once. */
function lineIndex(text: string): (offset: number) => number {
  const starts = [0];
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  return (offset) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((starts[mid] as number) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };
}

/** The decoded value of the JSON string at `start..end` (quotes included). */
function stringValue(text: string, start: number, end: number): string {
  const raw = text.slice(start + 1, end - 1);
  return raw.includes('\\') ? (JSON.parse(text.slice(start, end)) as string) : raw;
}

/** The index after the JSON value starting at `i` (valid JSON assumed: it was parsed already). */
function skipValue(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c === 34) return stringEnd(text, i);
  if (c !== 123 && c !== 91) {
    let j = i;
    for (;;) {
      const d = text.charCodeAt(j);
      if (d === 44 || d === 125 || d === 93 || d === 32 || d === 10 || d === 13 || d === 9 || Number.isNaN(d)) return j;
      j++;
    }
  }
  let depth = 0;
  let j = i;
  for (;;) {
    const d = text.charCodeAt(j);
    if (d === 34) {
      j = stringEnd(text, j);
      continue;
    }
    if (d === 123 || d === 91) depth++;
    else if (d === 125 || d === 93) {
      depth--;
      if (depth === 0) return j + 1;
    }
    j++;
  }
}

/** The offset of the member `key` of the object at `i`, or -1. */
function memberAt(text: string, i: number, key: string): number {
  let j = skipSpace(text, i + 1);
  if (text.charCodeAt(j) === 125) return -1;
  for (;;) {
    const keyEnd = stringEnd(text, j);
    const k = stringValue(text, j, keyEnd);
    j = skipSpace(text, skipSpace(text, keyEnd) + 1); // past ':'
    if (k === key) return j;
    j = skipSpace(text, skipValue(text, j));
    if (text.charCodeAt(j) !== 44) return -1;
    j = skipSpace(text, j + 1);
  }
}

/** The offset of element `index` of the array at `i`, or -1. */
function elementAt(text: string, i: number, index: number): number {
  let j = skipSpace(text, i + 1);
  if (text.charCodeAt(j) === 93) return -1;
  for (let n = 0; ; n++) {
    if (n === index) return j;
    j = skipSpace(text, skipValue(text, j));
    if (text.charCodeAt(j) !== 44) return -1;
    j = skipSpace(text, j + 1);
  }
}

/** The offset of the deepest node on `path` below the value at `start` (a missing field points at its parent, as the YAML locator does). */
function locateIn(text: string, start: number, path: FieldPath): number {
  let at = start;
  for (const seg of path) {
    const c = text.charCodeAt(at);
    const next = typeof seg === 'number' ? (c === 91 ? elementAt(text, at, seg) : -1) : c === 123 ? memberAt(text, at, seg) : -1;
    if (next < 0) return at;
    at = next;
  }
  return at;
}

/** Offsets of every key that repeats an earlier key of its object. Pauses every {@link CHUNK} characters. */
function* duplicateKeyOffsets(text: string): Steps<number[]> {
  const out: number[] = [];
  // One frame per open container: the keys seen (objects) and whether a key comes next.
  const stack: { keys: Set<string> | undefined; expectKey: boolean }[] = [];
  let since = 0;
  for (let j = 0; j < text.length; ) {
    const c = text.charCodeAt(j);
    if (c === 34) {
      const end = stringEnd(text, j);
      const top = stack[stack.length - 1];
      if (top?.keys !== undefined && top.expectKey) {
        const key = stringValue(text, j, end);
        if (top.keys.has(key)) out.push(j);
        else top.keys.add(key);
        top.expectKey = false;
      }
      since += end - j;
      j = end;
    } else {
      if (c === 123) stack.push({ keys: new Set(), expectKey: true });
      else if (c === 91) stack.push({ keys: undefined, expectKey: false });
      else if (c === 125 || c === 93) stack.pop();
      else if (c === 44) {
        const top = stack[stack.length - 1];
        if (top?.keys !== undefined) top.expectKey = true;
      }
      j++;
      since++;
    }
    if (since >= CHUNK) {
      since = 0;
      yield;
    }
  }
  return out;
}

/** Start offsets of the elements of the array at `i`. Pauses every few hundred elements. */
function* elementOffsets(text: string, i: number): Steps<number[]> {
  const out: number[] = [];
  let j = skipSpace(text, i + 1);
  if (text.charCodeAt(j) === 93) return out;
  for (;;) {
    out.push(j);
    if (out.length % 256 === 0) yield;
    j = skipSpace(text, skipValue(text, j));
    if (text.charCodeAt(j) !== 44) return out;
    j = skipSpace(text, j + 1);
  }
}

function isList(value: unknown): value is { kind: string; items: unknown } {
  if (typeof value !== 'object' || value === null) return false;
  const kind = (value as { kind?: unknown }).kind;
  return typeof kind === 'string' && kind.endsWith('List') && 'items' in value;
}

/**
 * The documents of a config file whose text is a JSON object (a resource or a `List`), or
 * undefined when it is not valid JSON (the caller parses it as YAML).
 */
export function* jsonDocuments(text: string, file: string): Steps<{ docs: RawDocument[]; errors: { line: number; message: string }[] } | undefined> {
  let value: unknown;
  try {
    value = yield* parseJsonSteps(text);
  } catch {
    return undefined;
  }
  const lineOf = lineIndex(text);
  const dups = yield* duplicateKeyOffsets(text);
  if (dups.length > 0) return { docs: [], errors: dups.map((o) => ({ line: lineOf(o), message: `invalid YAML: ${DUPLICATE_KEY_MESSAGE}` })) };
  const root = skipSpace(text, 0);
  const doc = (v: unknown, start: number): RawDocument => {
    const locate = (path: FieldPath): number => lineOf(locateIn(text, start, path));
    return { value: v, source: { file, line: lineOf(start), locate } };
  };
  if (!isList(value)) return { docs: [doc(value, root)], errors: [] };
  const itemsAt = memberAt(text, root, 'items');
  if (!Array.isArray(value.items) || itemsAt < 0 || text.charCodeAt(itemsAt) !== 91) return { docs: [], errors: [{ line: lineOf(root), message: `${value.kind}: items must be a list` }] };
  const starts = yield* elementOffsets(text, itemsAt);
  const items = value.items as unknown[];
  return { docs: items.map((item, i) => doc(item, starts[i] as number)), errors: [] };
}
