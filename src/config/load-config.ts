/**
 * One call from config sources to validated, analysed resources: read files or take objects,
 * validate every resource, run the analyzers, and say whether the set may be applied.
 *
 * @module
 */
import { analyzeSteps } from './analyze/index.ts';
import { type ConfigIssue, IssueList } from './issues.ts';
import { fromObjects, type ParseCache, readSources, type LoadLimits, type RawDocument } from './load.ts';
import { reportNotApplied } from './not-applied.ts';
import type { AnyResource } from './resource.ts';
import type { RegistryCache } from './registry.ts';
import { runNow, runSliced, type Steps } from './steps.ts';
import { type ValidationCache, validateSteps } from './validate/index.ts';

/**
 * What {@link loadConfig} reads: paths (files or directories), resource objects, or one object —
 * a resource or a Kubernetes `List` (`JSON.parse` of `kubectl get … -o json`).
 * @category Config
 */
export type ConfigSource = string | readonly string[] | readonly object[] | Readonly<Record<string, unknown>>;

/**
 * What analysis (`istioctl analyze`'s checks: IST0101 missing host or subset, …) does to config:
 * - `advisory` (the default, as in Istio): findings are reported, never refuse config — a route
 *   to a missing subset answers 503 NC at run time, as a sidecar would;
 * - `blocking`: error-level findings refuse the config as schema errors do (for teams that want
 *   `istioctl analyze` as a gate in front of every change);
 * - `off`: the analyzers do not run.
 * @category Config
 */
export type AnalysisMode = 'advisory' | 'blocking' | 'off';

/**
 * The analysis modes, for validating options.
 * @category Config
 */
export const ANALYSIS_MODES: readonly AnalysisMode[] = Object.freeze(['advisory', 'blocking', 'off']);

/**
 * Options for {@link loadConfig}.
 * @category Config
 */
export interface LoadConfigOptions extends LoadLimits {
  /** Namespace for resources without one. @defaultValue 'default' */
  defaultNamespace?: string | undefined;
  /** What analysis does (see {@link AnalysisMode}). @defaultValue 'advisory' */
  analysis?: AnalysisMode | undefined;
  /** @internal Reuse documents of files whose text is unchanged since the last load with this cache (watchers). */
  parseCache?: ParseCache | undefined;
  /** @internal Reuse the validation of documents seen before (the same objects, e.g. from `parseCache`). */
  validationCache?: ValidationCache | undefined;
  /** @internal Reuse the registry's services of unchanged resources in analysis (e.g. a compile cache's). */
  registryCache?: RegistryCache | undefined;
  /**
   * @internal The `creationTimestamp` of a resource read from `file` without one (the control
   * plane's own files: their last write), so they take their place in Istio's conflict order
   * among resources that have one; undefined leaves it unset.
   */
  creationTimestampOf?: ((file: string) => Promise<string | undefined>) | undefined;
}

/**
 * The outcome of loading config.
 * @category Config
 */
export interface LoadedConfig {
  /** The valid resources (all of them when `ok`). */
  readonly resources: readonly AnyResource[];
  /** Every error, warning and finding, in order. */
  readonly issues: IssueList;
  /** The analysis findings among `issues` (IST0101, …; any level). */
  readonly findings: readonly ConfigIssue[];
  /**
   * True when the set may be applied: no schema error (a set with any is rejected as a whole)
   * and, with `analysis: 'blocking'`, no error-level finding.
   */
  readonly ok: boolean;
}

function isPathList(source: ConfigSource): source is string | readonly string[] {
  return typeof source === 'string' || (Array.isArray(source) && source.every((s) => typeof s === 'string'));
}

/**
 * Validates and analyses already-parsed documents.
 * @category Config
 */
export function checkDocuments(docs: readonly RawDocument[], options: LoadConfigOptions = {}, issues = new IssueList()): LoadedConfig {
  return runNow(checkSteps(docs, options, issues));
}

/**
 * {@link checkDocuments} in slices that give the event loop a turn every few milliseconds
 * (what meshes and the control plane use: they serve requests while large configs are checked).
 * @internal
 */
export function checkDocumentsAsync(docs: readonly RawDocument[], options: LoadConfigOptions = {}, issues = new IssueList()): Promise<LoadedConfig> {
  return runSliced(checkSteps(docs, options, issues));
}

function* checkSteps(docs: readonly RawDocument[], options: LoadConfigOptions, issues: IssueList): Steps<LoadedConfig> {
  const { resources } = yield* validateSteps(docs, { defaultNamespace: options.defaultNamespace }, issues, options.validationCache);
  // Which kinds are validated but not applied yet is said once per kind, not as a finding.
  reportNotApplied(resources, issues);
  const valid = !issues.hasErrors;
  const mode = options.analysis ?? 'advisory';
  if (mode === 'off') return { resources, issues, findings: [], ok: valid };
  const before = issues.all.length;
  yield* analyzeSteps(resources, issues, options.registryCache);
  const findings = issues.all.slice(before);
  const blocked = mode === 'blocking' && findings.some((i) => i.level === 'error');
  return { resources, issues, findings, ok: valid && !blocked };
}

/**
 * Reads, validates and analyses config.
 * @example
 * const { ok, resources, issues } = await loadConfig('./mesh');
 * if (!ok) for (const i of issues.all) console.error(String(i));
 * @category Config
 */
export async function loadConfig(source: ConfigSource, options: LoadConfigOptions = {}): Promise<LoadedConfig> {
  const issues = new IssueList();
  const docs = isPathList(source)
    ? await readSources(typeof source === 'string' ? [source] : source, issues, options, options.parseCache)
    : fromObjects(Array.isArray(source) ? (source as readonly object[]) : [source]);
  if (options.creationTimestampOf !== undefined) await stampCreation(docs, options.creationTimestampOf);
  return checkDocumentsAsync(docs, options, issues);
}

/** Sets `metadata.creationTimestamp` of each document without one to what `of` says for its file (a parsed document kept by a parse cache keeps it). */
async function stampCreation(docs: readonly RawDocument[], of: (file: string) => Promise<string | undefined>): Promise<void> {
  const byFile = new Map<string, Promise<string | undefined>>();
  for (const d of docs) {
    const metadata = (d.value as { metadata?: unknown } | null)?.metadata;
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata) || (metadata as { creationTimestamp?: unknown }).creationTimestamp !== undefined) continue;
    const file = d.source.file;
    let ts = byFile.get(file);
    if (ts === undefined) {
      ts = of(file);
      byFile.set(file, ts);
    }
    const t = await ts;
    if (t !== undefined) (metadata as { creationTimestamp?: string }).creationTimestamp = t;
  }
}
