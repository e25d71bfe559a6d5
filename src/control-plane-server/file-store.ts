/**
 * A {@link ConfigStore} over a directory of Istio YAML: loaded with `loadConfig`, watched
 * (recursively, debounced), and written by the config API into `<dir>/applied/`.
 * A change that does not validate as a whole is refused and recorded; the last good state
 * keeps being served. Resources defined in the user's own files cannot be changed through the API.
 *
 * @module
 */
import { writeFileAtomic } from '../core/write-file-atomic.ts';
import { ParseCache } from '../config/load.ts';
import { type ConfigWatcher, watchConfigPaths } from '../config/watch.ts';
import { type ReloadAttempt, Reloader } from '../config/reloader.ts';
import { mkdir, stat, unlink } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { stringify } from 'yaml';
import type { ConfigIssue, IssueList } from '../config/issues.ts';
import { reportFindings, reportWarnings, validationWarnings } from '../config/findings.ts';
import { applyWarnings } from './apply-warnings.ts';
import { type AnalysisMode, checkDocumentsAsync, loadConfig } from '../config/load-config.ts';
import { fromObjects, type RawDocument } from '../config/load.ts';
import { type AnyResource, KIND_VERSIONS } from '../config/resource.ts';
import type { ApplyResponse, Rejection, WireResource } from '../control-plane/protocol.ts';
import { ConfigError } from '../core/errors.ts';
import { runSliced } from '../config/steps.ts';
import { RegistryCache } from '../config/registry.ts';
import { ValidationCache } from '../config/validate/index.ts';
import { contentVersionSteps } from '../config/version.ts';
import { keptStatus } from '../config/workloads.ts';
import { canonicalJson } from './canonical-json.ts';
import { ControlPlaneError } from './errors.ts';
import type { ServerLogger } from './logger.ts';
import type { ConfigState, ConfigStore, SourceHealth } from './store.ts';

/** Options of {@link FileConfigStore}. */
export interface FileConfigStoreOptions {
  /** The directory of Istio YAML (read recursively; `applied/` inside it belongs to the API). */
  readonly dir: string;
  /** What analysis does to a change (see {@link AnalysisMode}). @defaultValue 'advisory' */
  readonly analysis?: AnalysisMode;
  /** Namespace of resources without one. @defaultValue 'default' */
  readonly defaultNamespace?: string;
  /**
   * Quiet time after a file event before reloading (editors write in several steps). Istio's
   * `PILOT_DEBOUNCE_AFTER` is 100 ms; a change here should reach meshes well within that.
   * @defaultValue 20
   */
  readonly debounceMs?: number;
  /** Longest a reload waits while file events keep coming (Istio's `PILOT_DEBOUNCE_MAX`). @defaultValue 1000 */
  readonly maxDebounceMs?: number;
  /**
   * How long a file written in place (not renamed into place) must be quiet before it is read:
   * a half-written file is never pushed (see `Reloader`). @defaultValue 1000
   */
  readonly settleMs?: number;
  /** How often the directory's identity is checked (a replaced or deleted directory is noticed). @defaultValue 1000 */
  readonly watchCheckIntervalMs?: number;
  /** Most rejections kept. @defaultValue 20 */
  readonly maxRejections?: number;
  /** Watch the directory. @defaultValue true */
  readonly watch?: boolean;
  /** Where refusals are logged. */
  readonly logger?: ServerLogger;
}

/** The sub-directory written by `apply`. */
export const APPLIED_DIR = 'applied';

const APPLY_LABEL = '<apply>';
const keyOf = (kind: string, namespace: string, name: string): string => `${kind}/${namespace}/${name}`;
/** Same content whatever the order of the keys (a manifest's order is not the one `apply` writes). */
const sameContent = (a: unknown, b: unknown): boolean => canonicalJson(a) === canonicalJson(b);

function contentOf(r: { apiVersion?: unknown; kind?: unknown; metadata?: { labels?: unknown; annotations?: unknown }; spec?: unknown; status?: unknown }): unknown {
  // A WorkloadEntry's status conditions are content too (its Healthy condition makes it an endpoint or not).
  const status = keptStatus(r.kind, r.status);
  return [r.apiVersion, r.metadata?.labels ?? null, r.metadata?.annotations ?? null, r.spec ?? null, ...(status === undefined ? [] : [status])];
}

function errorsOf(issues: IssueList): string[] {
  return issues.ofLevel('error').map(String);
}

/** The file name `apply` writes a resource to: `<Kind>.<namespace>.<name>.yaml`. */
export function appliedFileName(kind: string, namespace: string, name: string): string {
  return `${kind}.${namespace}.${name}.yaml`;
}

/** Config from a watched directory. */
export class FileConfigStore implements ConfigStore {
  readonly #dir: string;
  readonly #appliedDir: string;
  readonly #analysis: AnalysisMode;
  readonly #defaultNamespace: string;
  readonly #maxRejections: number;
  readonly #watch: boolean;
  readonly #logger: ServerLogger | undefined;
  readonly #listeners: ((s: ConfigState) => void)[] = [];
  readonly #rejections: Rejection[] = [];
  #state: ConfigState = { version: '', resources: [], findings: [] };
  /** The validation warnings of the directory as last read (logged once each). */
  #warnings: readonly ConfigIssue[] = [];
  #health: SourceHealth;
  #queue: Promise<unknown> = Promise.resolve();
  #watcher: ConfigWatcher | undefined;
  /** Only changed files are parsed (and their resources validated) again on a reload. */
  readonly #parseCache = new ParseCache();
  readonly #validationCache = new ValidationCache();
  readonly #registryCache = new RegistryCache();
  readonly #reloader: Reloader;
  readonly #watchCheckIntervalMs: number | undefined;
  #closed = false;

  constructor(options: FileConfigStoreOptions) {
    this.#dir = resolve(options.dir);
    this.#appliedDir = join(this.#dir, APPLIED_DIR);
    this.#analysis = options.analysis ?? 'advisory';
    this.#defaultNamespace = options.defaultNamespace ?? 'default';
    this.#reloader = new Reloader({
      debounceMs: options.debounceMs ?? 20,
      maxDebounceMs: options.maxDebounceMs ?? 1000,
      settleMs: options.settleMs,
      reload: (attempt) => this.#serial(() => this.#reload(this.#origin(attempt.files), attempt)),
      onUnsettled: (files, ms) => this.#logger?.warn(`${files.map((f) => relative(this.#dir, f)).join(', ')} in ${this.#dir}: written for ${Math.round(ms / 1000)} s without a pause; reloaded once quiet`),
      onError: (err) => this.#logger?.warn(`reloading ${this.#dir}: ${err instanceof Error ? err.message : String(err)}`),
    });
    this.#watchCheckIntervalMs = options.watchCheckIntervalMs;
    this.#maxRejections = options.maxRejections ?? 20;
    this.#watch = options.watch ?? true;
    this.#logger = options.logger;
    this.#health = { kind: 'file', location: this.#dir, healthy: false, error: 'not started' };
  }

  get health(): SourceHealth {
    return this.#health;
  }

  async start(): Promise<void> {
    const loaded = await loadConfig(this.#dir, { analysis: this.#analysis, defaultNamespace: this.#defaultNamespace, parseCache: this.#parseCache, validationCache: this.#validationCache, registryCache: this.#registryCache, creationTimestampOf: this.#createdAt });
    if (!loaded.ok) {
      this.#health = { kind: 'file', location: this.#dir, healthy: false, error: 'the first load failed' };
      throw new ConfigError(loaded.issues.all);
    }
    this.#state = { version: await runSliced(contentVersionSteps(loaded.resources)), resources: loaded.resources, findings: loaded.findings };
    this.#warnings = validationWarnings(loaded.issues.all, loaded.findings);
    reportWarnings(this.#logger, `config version ${this.#state.version}`, [], this.#warnings);
    reportFindings(this.#logger, `config version ${this.#state.version}`, [], loaded.findings);
    this.#health = { kind: 'file', location: this.#dir, healthy: true };
    if (this.#watch) {
      this.#watcher = watchConfigPaths([this.#dir], {
        onEvent: (e) => this.#reloader.event(e),
        onError: (err) => this.#logger?.warn(`watching ${this.#dir}: ${err.message}`),
        onLost: (_root, reason) => {
          const error = `lost the watch on ${this.#dir}: ${reason}; serving config version ${this.#state.version}`;
          this.#health = { kind: 'file', location: this.#dir, healthy: false, error };
          this.#logger?.warn(error);
        },
        onRestored: (_root, how) => {
          this.#health = { kind: 'file', location: this.#dir, healthy: false, error: `${how}; reloading` };
          this.#logger?.info?.(`config directory ${how}`);
        },
        checkIntervalMs: this.#watchCheckIntervalMs,
      });
    }
  }

  current(): ConfigState {
    return this.#state;
  }

  onChange(listener: (state: ConfigState) => void): void {
    this.#listeners.push(listener);
  }

  rejections(): readonly Rejection[] {
    return [...this.#rejections];
  }

  /** Reloads the directory now (what the watcher does after its debounce). */
  reload(origin = `file change in ${this.#dir}`): Promise<void> {
    return this.#serial(() => this.#reload(origin));
  }

  apply(resources: readonly WireResource[], origin: string): Promise<ApplyResponse> {
    return this.#serial(() => this.#apply(resources, origin));
  }

  delete(kind: string, namespace: string, name: string, origin: string): Promise<{ deleted: boolean; version: string; warnings: readonly string[] }> {
    return this.#serial(() => this.#delete(kind, namespace, name, origin));
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#watcher?.close();
    await this.#reloader.close();
    await this.#queue.catch(() => {});
  }

  /** Runs changes one at a time, so a reload never interleaves with an apply. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }

  #origin(files: readonly string[]): string {
    const names = files.map((f) => relative(this.#dir, f) || '.');
    return `file change${names.length > 0 ? ` (${names.join(', ')})` : ''} in ${this.#dir}`;
  }

  #reject(origin: string, reasons: readonly string[]): void {
    this.#rejections.unshift({ at: new Date().toISOString(), origin, reasons: [...reasons] });
    if (this.#rejections.length > this.#maxRejections) this.#rejections.length = this.#maxRejections;
    this.#logger?.warn(`rejected ${origin}, keeping config version ${this.#state.version}:\n  ${reasons.join('\n  ')}`);
  }

  async #setState(resources: readonly AnyResource[], findings: readonly ConfigIssue[]): Promise<string> {
    const version = await runSliced(contentVersionSteps(resources));
    const changed = version !== this.#state.version;
    if (changed) reportFindings(this.#logger, `config version ${version}`, this.#state.findings, findings);
    this.#state = { version, resources, findings };
    if (changed) for (const l of this.#listeners) l(this.#state);
    return version;
  }

  /** Reloads the directory; a watcher's `attempt` that went out of date while reading is dropped (another follows). */
  async #reload(origin: string, attempt?: ReloadAttempt): Promise<void> {
    if (this.#closed) return;
    if (attempt !== undefined && (this.#watcher?.lost.length ?? 0) > 0) return; // health says the watch is lost; the last good config serves
    const loaded = await loadConfig(this.#dir, { analysis: this.#analysis, defaultNamespace: this.#defaultNamespace, parseCache: this.#parseCache, validationCache: this.#validationCache, registryCache: this.#registryCache, creationTimestampOf: this.#createdAt });
    if (attempt !== undefined && !(await attempt.current())) return;
    if (!loaded.ok) {
      const reasons = errorsOf(loaded.issues);
      this.#health = { kind: 'file', location: this.#dir, healthy: false, error: `last change rejected (${reasons.length} error(s)); serving version ${this.#state.version}` };
      this.#reject(origin, reasons);
      return;
    }
    this.#health = { kind: 'file', location: this.#dir, healthy: true };
    // The same content (e.g. the files `apply` just wrote) keeps its version: no push.
    const version = await this.#setState(loaded.resources, loaded.findings);
    const warnings = validationWarnings(loaded.issues.all, loaded.findings);
    reportWarnings(this.#logger, `config version ${version}`, this.#warnings, warnings);
    this.#warnings = warnings;
  }

  /**
   * When a resource of the user's own files without a `creationTimestamp` counts as created: its
   * file's last write (in seconds, as Kubernetes keeps it), so Istio's conflict order (the older
   * wins) holds between them and what `apply` added later — as with etcd, where a file's
   * resources are stamped when first written. The applied files carry their own.
   */
  readonly #createdAt = async (file: string): Promise<string | undefined> => {
    if (resolve(file).startsWith(this.#appliedDir + sep)) return undefined;
    try {
      const { mtimeMs } = await stat(file);
      return new Date(Math.floor(mtimeMs / 1000) * 1000).toISOString().replace('.000Z', 'Z');
    } catch {
      return undefined;
    }
  };

  #isApplied(r: AnyResource): boolean {
    return r.source.file.startsWith(this.#appliedDir + sep);
  }

  #userFile(r: AnyResource): string {
    const rel = relative(process.cwd(), r.source.file);
    return rel === '' || rel.startsWith('..') ? r.source.file : rel;
  }

  #index(): Map<string, AnyResource> {
    return new Map(this.#state.resources.map((r) => [keyOf(r.kind, r.metadata.namespace, r.metadata.name), r]));
  }

  /** The documents of resources in use: the ones they were read from when known (not validated again), else made from them. */
  #docsOf(resources: readonly AnyResource[]): RawDocument[] {
    return resources.map((r) => this.#validationCache.docOf(r) ?? (fromObjects([r])[0] as RawDocument));
  }

  async #check(docs: RawDocument[]): Promise<{ resources: readonly AnyResource[]; issues: readonly ConfigIssue[]; findings: readonly ConfigIssue[] } | { failed: IssueList }> {
    const result = await checkDocumentsAsync(docs, { analysis: this.#analysis, defaultNamespace: this.#defaultNamespace, validationCache: this.#validationCache, registryCache: this.#registryCache });
    if (!result.ok) return { failed: result.issues };
    return { resources: result.resources, issues: result.issues.all, findings: result.findings };
  }

  async #apply(input: readonly WireResource[], origin: string): Promise<ApplyResponse> {
    if (input.length === 0) throw new ControlPlaneError('INVALID', 'nothing to apply: the request has no resources');
    const index = this.#index();
    const now = new Date().toISOString();
    const incoming: { key: string; ref: string; doc: Record<string, unknown>; existing: AnyResource | undefined; ns: string }[] = [];
    const seen = new Set<string>();
    /** Every resource's ref, in the order given (what the answer lists). */
    const given: string[] = [];
    for (const [i, w] of input.entries()) {
      const kind = typeof w?.kind === 'string' ? w.kind : '';
      if (!Object.hasOwn(KIND_VERSIONS, kind)) throw new ControlPlaneError('INVALID', `${APPLY_LABEL}[${i}]: kind "${kind}" is not one meshlet serves (${Object.keys(KIND_VERSIONS).join(', ')})`);
      const name = w.metadata?.name;
      if (typeof name !== 'string' || name === '') throw new ControlPlaneError('INVALID', `${APPLY_LABEL}[${i}]: ${kind} has no metadata.name`);
      const ns = w.metadata.namespace ?? this.#defaultNamespace;
      const key = keyOf(kind, ns, name);
      const ref = `${kind} ${ns}/${name}`;
      if (seen.has(key)) throw new ControlPlaneError('INVALID', `${ref} appears twice in one apply`);
      seen.add(key);
      given.push(ref);
      const existing = index.get(key);
      if (existing !== undefined && !this.#isApplied(existing)) {
        // Applied again as its file has it (a backup of `meshlet get` restored): nothing to do, 'unchanged'.
        if (sameContent(contentOf(existing), contentOf(w))) continue;
        throw new ControlPlaneError('CONFLICT', `${ref} is defined in ${this.#userFile(existing)}; change it there, not through the API`);
      }
      const creationTimestamp = w.metadata.creationTimestamp ?? existing?.metadata.creationTimestamp ?? now;
      const metadata = { ...w.metadata, namespace: ns, creationTimestamp };
      const status = keptStatus(kind, w.status);
      incoming.push({ key, ref, existing, ns, doc: { apiVersion: w.apiVersion, kind, metadata, spec: w.spec, ...(status === undefined ? {} : { status }) } });
    }
    const replaced = new Set(incoming.map((x) => x.key));
    const kept = this.#state.resources.filter((r) => !replaced.has(keyOf(r.kind, r.metadata.namespace, r.metadata.name)));
    const docs = [...this.#docsOf(kept), ...incoming.map((x, i) => ({ value: x.doc, source: { file: `${APPLY_LABEL}[${i}]` } }))];
    const checked = await this.#check(docs);
    if ('failed' in checked) {
      this.#reject(origin, errorsOf(checked.failed));
      throw new ConfigError(checked.failed.all);
    }
    const refs = new Set(incoming.map((x) => x.ref));
    // Warnings and (advisory) findings about what was applied, or new with it, go back to the caller.
    const touches = (i: ConfigIssue) => (i.resource !== undefined && refs.has(i.resource)) || i.file?.startsWith(APPLY_LABEL) === true;
    const warnings = applyWarnings({ issues: checked.issues, findings: checked.findings, before: this.#state.findings, touches });
    const actions = incoming.map((x) => ({
      ref: x.ref,
      action: x.existing === undefined ? ('created' as const) : sameContent(contentOf(x.existing), contentOf(x.doc as never)) ? ('unchanged' as const) : ('configured' as const),
    }));
    const changes = incoming.filter((_, i) => actions[i]!.action !== 'unchanged');
    // In the order they were given; the user files' own resources, applied as they are, unchanged.
    const byRef = new Map(actions.map((a) => [a.ref, a]));
    const applied = given.map((ref) => byRef.get(ref) ?? { ref, action: 'unchanged' as const });
    if (changes.length === 0) return { version: this.#state.version, applied, warnings };
    await mkdir(this.#appliedDir, { recursive: true });
    const fileOf = new Map<string, string>();
    for (const x of changes) {
      const meta = x.doc.metadata as { name: string };
      const file = join(this.#appliedDir, appliedFileName(x.doc.kind as string, x.ns, meta.name));
      await writeFileAtomic(file, stringify(x.doc));
      if (x.existing !== undefined && x.existing.source.file !== file) await unlinkQuiet(x.existing.source.file);
      fileOf.set(x.ref, file);
    }
    // Resources now live in their applied files (unchanged ones keep their old source).
    const resources = checked.resources.map((r) => {
      const file = fileOf.get(r.ref) ?? (r.source.file.startsWith(APPLY_LABEL) ? index.get(keyOf(r.kind, r.metadata.namespace, r.metadata.name))?.source.file : undefined);
      return file === undefined ? r : ({ ...r, source: { file } } as AnyResource);
    });
    const version = await this.#setState(resources, checked.findings);
    this.#logger?.info?.(`${origin}: ${applied.map((a) => `${a.ref} ${a.action}`).join(', ')}; config version ${version}`);
    return { version, applied, warnings };
  }

  async #delete(kind: string, namespace: string, name: string, origin: string): Promise<{ deleted: boolean; version: string; warnings: readonly string[] }> {
    const existing = this.#index().get(keyOf(kind, namespace, name));
    if (existing === undefined) return { deleted: false, version: this.#state.version, warnings: [] };
    if (!this.#isApplied(existing)) {
      throw new ControlPlaneError('CONFLICT', `${existing.ref} is defined in ${this.#userFile(existing)}; delete it there, not through the API`);
    }
    const kept = this.#state.resources.filter((r) => r !== existing);
    const checked = await this.#check(this.#docsOf(kept));
    if ('failed' in checked) {
      this.#reject(origin, errorsOf(checked.failed));
      throw new ConfigError(checked.failed.all);
    }
    await unlinkQuiet(existing.source.file);
    // The findings the deletion brings (a DestinationRule whose subsets a VirtualService routes to: IST0101 on it).
    const warnings = applyWarnings({ issues: checked.issues, findings: checked.findings, before: this.#state.findings, touches: () => false });
    const version = await this.#setState(checked.resources, checked.findings);
    this.#logger?.info?.(`${origin}: ${existing.ref} deleted; config version ${version}`);
    return { deleted: true, version, warnings };
  }
}

async function unlinkQuiet(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
