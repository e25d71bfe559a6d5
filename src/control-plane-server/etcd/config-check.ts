/**
 * How the etcd config store judges what is stored under its prefix, the same way on every
 * replica: each value must be JSON of the resource its key names and valid on its own, else it is
 * skipped (as istiod skips an invalid object and serves the others); the values that are valid
 * alone are then checked as a set (schema and analysis), which only fails as a whole for
 * set-level errors (error-level findings under `--analysis blocking`).
 *
 * @module
 */
import { IssueList } from '../../config/issues.ts';
import { type AnalysisMode, checkDocumentsAsync } from '../../config/load-config.ts';
import type { RawDocument } from '../../config/load.ts';
import { RegistryCache } from '../../config/registry.ts';
import { type AnyResource, KIND_VERSIONS } from '../../config/resource.ts';
import { ValidationCache } from '../../config/validate/index.ts';
import type { SkippedValue } from '../../control-plane/protocol.ts';
import { eachStep, runSliced } from '../../config/steps.ts';
import { contentVersionSteps } from '../../config/version.ts';
import type { ConfigState } from '../store.ts';

/** The outcome of {@link checkStoredSet}. */
export interface CheckedSet {
  /** Whether the valid values make a valid set (false only for set-level errors, e.g. blocking analysis). */
  readonly ok: boolean;
  /** The state of the valid values. */
  readonly state: ConfigState;
  /** Issues of the valid values as a set. */
  readonly issues: IssueList;
  /** Values that are invalid on their own, by key: skipped. */
  readonly skipped: ReadonlyMap<string, SkippedValue>;
}

/** Where the set lives and how it is validated. */
export interface CheckOptions {
  /** The key prefix of config values, ending in `/` (`<prefix>/config/`). */
  readonly root: string;
  readonly analysis: AnalysisMode;
  readonly defaultNamespace: string;
}

/**
 * What one sequence of checks reuses from the last (the stored values change a few at a time):
 * each value's parsed document while its text is the same — the same object, so the validation
 * and registry caches recognise it and only changed values are validated again. One sequence at a
 * time: the validation and registry caches follow one set to the next.
 */
export class StoredSetCache {
  /** key → the value's text and what it parsed to (a document, or why it is skipped). */
  readonly #docs = new Map<string, { text: string; doc: RawDocument | string }>();
  readonly validation = new ValidationCache();
  readonly registry = new RegistryCache();

  /** The document of `key`'s value `text` (a skip reason when it is not one), parsed once per text. */
  doc(key: string, text: string, o: CheckOptions): RawDocument | string {
    const known = this.#docs.get(key);
    if (known !== undefined && known.text === text) return known.doc;
    const doc = documentOf(key, text, o);
    this.#docs.set(key, { text, doc });
    return doc;
  }

  /** Forgets the values of keys `set` no longer has. */
  prune(set: ReadonlyMap<string, string>): void {
    for (const key of this.#docs.keys()) if (!set.has(key)) this.#docs.delete(key);
  }
}

/** `key`'s value as a document to validate, or why it is skipped. */
function documentOf(key: string, text: string, o: CheckOptions): RawDocument | string {
  const value = parse(text);
  if (value === undefined || typeof value !== 'object' || value === null || Array.isArray(value)) return value === undefined ? 'the value is not JSON' : 'the value is not a resource object';
  const expected = key.slice(o.root.length);
  const meta = (value as { metadata?: { namespace?: unknown; name?: unknown } }).metadata;
  const actual = `${String((value as { kind?: unknown }).kind)}/${String(meta?.namespace ?? o.defaultNamespace)}/${String(meta?.name)}`;
  if (actual !== expected) return `the key names ${expected} but the value is ${actual}`;
  return { value, source: { file: `etcd:${key}` } };
}

/** `JSON.parse`, or undefined for text that is not JSON. */
export function parse(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The `Kind namespace/name` a key under the prefix names, when it names one of the kinds meshlet serves. */
function resourceOf(key: string, root: string): string | undefined {
  const parts = key.slice(root.length).split('/');
  if (parts.length !== 3 || !(parts[0]! in KIND_VERSIONS) || parts[1] === '' || parts[2] === '') return undefined;
  return `${parts[0]} ${parts[1]}/${parts[2]}`;
}

/**
 * Validates a key → value set (documents in key order): values that are invalid on their own are
 * set aside (skipped, with why), the others are checked as a set. In slices that give the event
 * loop a turn every few milliseconds (a replica keeps serving while a large set is checked), with
 * what `cache` kept from the check before.
 */
export async function checkStoredSet(set: ReadonlyMap<string, string>, o: CheckOptions, cache = new StoredSetCache()): Promise<CheckedSet> {
  const skipped = new Map<string, SkippedValue>();
  const skip = (key: string, reasons: string[]) => {
    const resource = resourceOf(key, o.root);
    skipped.set(key, resource === undefined ? { key, reasons } : { key, resource, reasons });
  };
  const docs: RawDocument[] = [];
  // Parsed in steps too: a replica's first check parses every stored value.
  await runSliced(
    eachStep([...set.keys()].sort(), (key) => {
      const doc = cache.doc(key, set.get(key)!, o);
      if (typeof doc === 'string') skip(key, [doc]);
      else docs.push(doc);
    }),
  );
  const options = { analysis: o.analysis, defaultNamespace: o.defaultNamespace, validationCache: cache.validation, registryCache: cache.registry };
  let issues = new IssueList();
  let loaded = await checkDocumentsAsync(docs, options, issues);
  if (!loaded.ok) {
    // Documents that produced no resource and have errors of their own are invalid alone: skipped.
    const produced = new Set(loaded.resources.map((r: AnyResource) => r.source.file));
    const bad = new Map<string, string[]>();
    for (const i of issues.ofLevel('error')) {
      if (i.file === undefined || !i.file.startsWith('etcd:') || produced.has(i.file)) continue;
      const list = bad.get(i.file) ?? [];
      list.push(String(i).slice(i.file.length + 2));
      bad.set(i.file, list);
    }
    if (bad.size > 0) {
      for (const [file, reasons] of bad) skip(file.slice('etcd:'.length), reasons);
      issues = new IssueList();
      loaded = await checkDocumentsAsync(
        docs.filter((d) => !bad.has(d.source.file)),
        options,
        issues,
      );
    }
  }
  const version = await runSliced(contentVersionSteps(loaded.resources));
  return { ok: loaded.ok, issues, skipped, state: { version, resources: loaded.resources, findings: loaded.findings } };
}

/** The commands that repair a stored value skipped as invalid (`meshlet delete <kind> <name> -n <ns>`, as docs/cli.md has it). */
export function repairHint(v: SkippedValue): string {
  const m = v.resource === undefined ? null : /^(\S+) ([^/]+)\/(.+)$/.exec(v.resource);
  if (m === null) return `remove it with etcdctl del ${v.key}`;
  const [, kind, namespace, name] = m;
  return `repair it: meshlet delete ${kind} ${name} -n ${namespace}, or meshlet apply -f <a file with a valid ${kind} ${namespace}/${name}>`;
}
