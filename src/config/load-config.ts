/**
 * One call from config sources to validated, analysed resources: read files or take objects,
 * validate every resource, run the analyzers, and say whether the set may be applied.
 *
 * @module
 */
import { analyze } from './analyze/index.ts';
import { IssueList } from './issues.ts';
import { fromObjects, type ParseCache, readSources, type LoadLimits, type RawDocument } from './load.ts';
import { reportNotApplied } from './not-applied.ts';
import type { AnyResource } from './resource.ts';
import { validateDocuments } from './validate/index.ts';

/** What {@link loadConfig} reads: paths (files or directories) or resource objects. */
export type ConfigSource = string | readonly string[] | readonly object[];

/** Options for {@link loadConfig}. */
export interface LoadConfigOptions extends LoadLimits {
  /** Namespace for resources without one. @defaultValue 'default' */
  defaultNamespace?: string;
  /** Run the analyzers (IST0101, IST0130, …). @defaultValue true */
  analyze?: boolean;
  /** Reuse documents of files whose text is unchanged since the last load with this cache (watchers). */
  parseCache?: ParseCache;
}

/** The outcome of loading config. */
export interface LoadedConfig {
  /** The valid resources (all of them when `ok`). */
  readonly resources: readonly AnyResource[];
  /** Every error, warning and finding, in order. */
  readonly issues: IssueList;
  /** True when there are no errors: the set may be applied. A set with any error is rejected as a whole. */
  readonly ok: boolean;
}

function isPathList(source: ConfigSource): source is string | readonly string[] {
  return typeof source === 'string' || (Array.isArray(source) && source.every((s) => typeof s === 'string'));
}

/** Validates and analyses already-parsed documents. */
export function checkDocuments(docs: readonly RawDocument[], options: LoadConfigOptions = {}, issues = new IssueList()): LoadedConfig {
  const { resources } = validateDocuments(docs, { defaultNamespace: options.defaultNamespace }, issues);
  reportNotApplied(resources, issues);
  if (options.analyze !== false) analyze(resources, issues);
  return { resources, issues, ok: !issues.hasErrors };
}

/**
 * Reads, validates and analyses config.
 * @example
 * const { ok, resources, issues } = await loadConfig('./mesh');
 * if (!ok) for (const i of issues.all) console.error(String(i));
 */
export async function loadConfig(source: ConfigSource, options: LoadConfigOptions = {}): Promise<LoadedConfig> {
  const issues = new IssueList();
  const docs = isPathList(source)
    ? await readSources(typeof source === 'string' ? [source] : source, issues, options, options.parseCache)
    : fromObjects(source as readonly object[]);
  return checkDocuments(docs, options, issues);
}
