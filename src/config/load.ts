/**
 * Reading config sources: files and directories of multi-document YAML or JSON, Kubernetes
 * `List`s, and resource objects passed in code. Produces raw documents that keep their
 * file and line so every later message can point at the right place.
 *
 * @module
 */
import { Composer, isCollection, isScalar, isSeq, LineCounter, Parser, Scalar, visit, type Document } from 'yaml';
import type { FieldPath, IssueList, RawDocument, SourceRef } from './issues.ts';
import { jsonDocuments, looksLikeJsonObject } from './json-docs.ts';
import { MAX_NESTING, nestedTooDeep } from './nesting.ts';
import { listConfigFiles, readConfigFile } from './read-files.ts';
import { runNow, runSliced, type Steps } from './steps.ts';
import { collectionKeys, duplicateKeys } from './yaml-keys.ts';

export type { RawDocument };

/**
 * Limits that keep a bad or hostile file from exhausting the process.
 * @category Config
 */
export interface LoadLimits {
  /** Largest file read, in bytes. @defaultValue 16 MiB */
  maxFileBytes?: number | undefined;
  /** Most documents in one file. @defaultValue 10000 */
  maxDocuments?: number | undefined;
}

const DEFAULT_MAX_FILE = 16 * 1024 * 1024;

function docLocator(doc: Document, lc: LineCounter, base: FieldPath): (path: FieldPath) => number | undefined {
  return (path) => {
    // Walk up until a node exists (a missing required field points at its parent).
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn([...base, ...path.slice(0, n)], true) as { range?: [number, number, number] } | undefined;
      if (node !== undefined && node !== null && Array.isArray(node.range)) return lc.linePos(node.range[0]).line;
    }
    return undefined;
  };
}

/**
 * Reads plain scalars in flow collections as Kubernetes' YAML parser (go-yaml) does: there, a
 * ":" ends a plain scalar only before a space, so `[1.2.3.4, 2001:db8::]` is two strings. The
 * YAML 1.2 parser used here reads `2001:db8::]` as the one-pair map `{"2001:db8:": null}` (a ":"
 * before "]" or "," is a key separator). Such an implicit pair — a plain key, ":" right after it
 * and then "," "]" or "}", no value — becomes the string `key:` again.
 */
function goYamlFlowScalars(doc: Document, text: string): void {
  visit(doc, {
    Map(_key, map, path) {
      const parent = path[path.length - 1];
      if (!isSeq(parent) || parent.flow !== true || map.items.length !== 1) return undefined;
      const pair = map.items[0];
      const key = pair?.key;
      const value = pair?.value;
      if (!isScalar(key) || key.type !== 'PLAIN' || key.range === undefined || key.range === null) return undefined;
      if (map.range?.[0] !== key.range[0]) return undefined; // written with braces: a real map
      if (value !== null && value !== undefined && !(isScalar(value) && value.source === '')) return undefined;
      const end = key.range[1];
      if (text[end] !== ':' || !',]}'.includes(text[end + 1] ?? '')) return undefined;
      const scalar = new Scalar(`${String(key.source ?? key.value)}:`);
      scalar.range = [key.range[0], end + 1, end + 1];
      return scalar;
    },
  });
}

/** Reports a document nested deeper than {@link MAX_NESTING} levels; true when it is. */
function refusedAsTooDeep(d: RawDocument, issues: IssueList): boolean {
  if (!nestedTooDeep(d.value)) return false;
  issues.file(d.source.file, d.source.line, 'error', `lists and maps nested deeper than ${MAX_NESTING} levels: refused`);
  return true;
}

function isList(value: unknown): value is { kind: string; items: unknown } {
  if (typeof value !== 'object' || value === null) return false;
  const kind = (value as { kind?: unknown }).kind;
  return typeof kind === 'string' && kind.endsWith('List') && 'items' in value;
}

/**
 * Parses YAML or JSON text (several `---` documents and Kubernetes `List`s allowed).
 * Syntax errors are reported with their line; the documents that did parse are still returned,
 * but callers must treat a file with errors as rejected as a whole.
 * @category Config
 */
export function parseText(text: string, file: string, issues: IssueList, limits: LoadLimits = {}): RawDocument[] {
  return runNow(parseTextSteps(text, file, issues, limits));
}

/**
 * {@link parseText} as {@link Steps}: pauses between documents (and through a large JSON text).
 * @internal
 */
export function* parseTextSteps(text: string, file: string, issues: IssueList, limits: LoadLimits = {}): Steps<RawDocument[]> {
  // JSON (e.g. a List from `kubectl get -o json`) is read with JSON.parse, much faster than the YAML parser.
  if (looksLikeJsonObject(text)) {
    const json = yield* jsonDocuments(text, file);
    if (json !== undefined) {
      for (const e of json.errors) issues.file(file, e.line, 'error', e.message);
      return json.docs.filter((d) => !refusedAsTooDeep(d, issues));
    }
  }
  const lc = new LineCounter();
  const docs: Document.Parsed[] = [];
  try {
    // Duplicate keys are found by duplicateKeys() below, in one pass: the yaml package's own check is quadratic.
    // Merge keys (`<<: *defaults`) are read as kubectl's YAML reader (go-yaml) reads them: the
    // anchored map's keys are merged in, and the map's own keys win. YAML 1.2 alone has no `<<`.
    const composer = new Composer({ prettyErrors: false, uniqueKeys: false, merge: true });
    for (const doc of composer.compose(new Parser(lc.addNewLine).parse(text))) {
      docs.push(doc as Document.Parsed);
      yield;
    }
  } catch (err) {
    issues.file(file, undefined, 'error', `cannot parse: ${parseFailure(err)}`);
    return [];
  }
  const maxDocs = limits.maxDocuments ?? 10_000;
  if (docs.length > maxDocs) {
    issues.file(file, undefined, 'error', `has ${docs.length} documents; the limit is ${maxDocs}`);
    return [];
  }
  const out: RawDocument[] = [];
  for (const doc of docs) {
    // One syntax mistake (an unquoted `[` in a flow list) makes the parser report every token after
    // it: the first is the one to fix, the rest are counted (kubectl reports one error too).
    const syntax = doc.errors.map((e) => ({ offset: e.pos[0], line: e.linePos?.[0]?.line, message: e.message.split('\n')[0] as string })).sort((a, b) => a.offset - b.offset);
    const errors = syntax.slice(0, 1);
    if (syntax.length > 1) (errors[0] as { message: string }).message += ` (and ${syntax.length - 1} more YAML syntax error(s) after it in this document, most likely caused by it)`;
    for (const d of duplicateKeys(doc)) errors.push({ offset: d.offset, line: undefined, message: d.message });
    for (const d of collectionKeys(doc)) errors.push({ offset: d.offset, line: undefined, message: d.message });
    if (errors.length > 0) {
      errors.sort((a, b) => a.offset - b.offset);
      for (const e of errors) issues.file(file, e.line ?? lc.linePos(e.offset).line, 'error', `invalid YAML: ${tooDeepText(e.message.split('\n')[0] as string)}`);
      continue;
    }
    for (const w of doc.warnings) {
      issues.file(file, lc.linePos(w.pos[0]).line, 'warning', `YAML: ${w.message.split('\n')[0]}`);
    }
    goYamlFlowScalars(doc, text);
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      const line = doc.contents?.range ? lc.linePos(doc.contents.range[0]).line : undefined;
      issues.file(file, line, 'error', `invalid YAML: ${parseFailure(err)}`);
      continue;
    }
    if (value === null || value === undefined) continue; // empty document (e.g. a trailing ---)
    const startLine = doc.contents?.range ? lc.linePos(doc.contents.range[0]).line : undefined;
    if (isList(value)) {
      if (!Array.isArray(value.items)) {
        issues.file(file, startLine, 'error', `${value.kind}: items must be a list`);
        continue;
      }
      value.items.forEach((item, i) => {
        const locate = docLocator(doc, lc, ['items', i]);
        const one: RawDocument = { value: item, source: { file, line: locate([]), locate } };
        if (!refusedAsTooDeep(one, issues)) out.push(one);
      });
      continue;
    }
    if (!isCollection(doc.contents)) {
      issues.file(file, startLine, 'error', `each document must be a resource object, got ${typeof value}`);
      continue;
    }
    const one: RawDocument = { value, source: { file, line: startLine, locate: docLocator(doc, lc, []) } };
    if (!refusedAsTooDeep(one, issues)) out.push(one);
    yield;
  }
  return out;
}

export { listConfigFiles } from './read-files.ts';

/**
 * Parsed documents of files by path, reused while a file's text is unchanged: a watcher that
 * reloads a directory after one file changed parses only that file. Files with parse errors are
 * not kept (their errors are reported again on every load).
 */
export class ParseCache {
  readonly #files = new Map<string, { text: string; docs: RawDocument[] }>();

  /** The documents parsed from `text` earlier, if `file` had exactly this text. */
  get(file: string, text: string): RawDocument[] | undefined {
    const hit = this.#files.get(file);
    return hit !== undefined && hit.text === text ? hit.docs : undefined;
  }

  set(file: string, text: string, docs: RawDocument[]): void {
    this.#files.set(file, { text, docs });
  }

  /** Forgets files not in `keep` (deleted since). */
  retain(keep: ReadonlySet<string>): void {
    for (const f of this.#files.keys()) if (!keep.has(f)) this.#files.delete(f);
  }
}

/** Reads and parses config files and directories. */
export async function readSources(paths: readonly string[], issues: IssueList, limits: LoadLimits = {}, cache?: ParseCache): Promise<RawDocument[]> {
  const maxBytes = limits.maxFileBytes ?? DEFAULT_MAX_FILE;
  const out: RawDocument[] = [];
  const files = await listConfigFiles(paths, issues);
  for (const file of files) {
    const read = await readConfigFile(file, maxBytes);
    if (read.error !== undefined) {
      issues.file(file, undefined, 'error', read.error);
      continue;
    }
    const text = read.text;
    const cached = cache?.get(file, text);
    if (cached !== undefined) {
      out.push(...cached);
      continue;
    }
    const before = issues.all.length;
    const docs = await runSliced(parseTextSteps(text, file, issues, limits));
    if (cache !== undefined && !issues.all.slice(before).some((i) => i.level === 'error')) cache.set(file, text, docs);
    out.push(...docs);
  }
  cache?.retain(new Set(files));
  return out;
}

/**
 * A resource {@link loadConfig} already returned (it carries `ref`, `order` and `source`):
 * unwrapped to its document and original source, so loaded resources can be passed back in
 * (e.g. files' resources plus generated ones) and keep their file and line in messages.
 */
function unwrapLoaded(value: unknown, fallback: SourceRef): RawDocument {
  if (value !== null && typeof value === 'object') {
    const v = value as Record<string, unknown>;
    const src = v.source as SourceRef | undefined;
    if (typeof v.ref === 'string' && typeof v.order === 'number' && src !== null && typeof src === 'object' && typeof src.file === 'string') {
      const { ref: _ref, order: _order, source: _source, ...doc } = v;
      return { value: doc, source: src };
    }
  }
  return { value, source: fallback };
}

/**
 * Wraps resource objects given in code as raw documents (`List`s are expanded).
 * @category Config
 */
export function fromObjects(objects: readonly unknown[], label = '<inline>'): RawDocument[] {
  const out: RawDocument[] = [];
  objects.forEach((value, i) => {
    if (isList(value) && Array.isArray(value.items)) {
      value.items.forEach((item, j) => {
        out.push(unwrapLoaded(item, { file: `${label}[${i}].items[${j}]` }));
      });
    } else {
      out.push(unwrapLoaded(value, { file: `${label}[${i}]` }));
    }
  });
  return out;
}

/** What a parse failure says; the yaml package recurses per level, so ~900–1,000 nested levels overflow the stack before the nesting limit is checked. */
function parseFailure(err: unknown): string {
  return tooDeepText(err instanceof Error ? err.message : String(err));
}

/** The yaml package reports its own stack overflow as a document error. */
function tooDeepText(message: string): string {
  return /^Maximum call stack size exceeded/.test(message) ? `nested too deep to parse (lists and maps may nest ${MAX_NESTING} levels)` : message;
}
