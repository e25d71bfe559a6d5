/**
 * What the control-plane client does with what it receives, without any I/O: validate a
 * `config` event's resources (schema and, unless turned off, analysis — the same checks an
 * embedded mesh runs on files), validate an `endpoints` event's workloads as WorkloadEntries,
 * and compile the last good pair into a {@link Snapshot} for this workload.
 *
 * @module
 */
import { type ConfigIssue, IssueList } from '../config/issues.ts';
import { parseJsonSteps } from '../config/json-steps.ts';
import { type AnalysisMode, checkDocuments, checkDocumentsAsync } from '../config/load-config.ts';
import { runSliced } from '../config/steps.ts';
import type { RawDocument } from '../config/load.ts';
import type { AnyResource, Resource } from '../config/resource.ts';
import { type CompileOptions, compileSnapshot, compileSnapshotAsync, type Snapshot, type WorkloadInfo } from '../routing/compile.ts';
import { compileWithGatewayNames, type GatewayNames } from '../outbound/gateway-names.ts';
import { eventId, type WireResource } from './protocol.ts';

/** A validated, applicable state: resources and registered workloads with their versions. */
export interface GoodState {
  readonly configVersion: string;
  readonly endpointsVersion: string;
  readonly resources: readonly AnyResource[];
  readonly workloads: readonly Resource<'WorkloadEntry'>[];
  /** As received (what the cache stores). */
  readonly wireResources: readonly WireResource[];
  readonly wireWorkloads: readonly WireResource[];
  /** Analysis findings of the config (advisory unless `analysis: 'blocking'`). */
  readonly findings: readonly ConfigIssue[];
}

/** The state before anything was received: no config, no workloads. */
export const EMPTY_STATE: GoodState = Object.freeze({
  configVersion: '',
  endpointsVersion: '',
  resources: [],
  workloads: [],
  wireResources: [],
  wireWorkloads: [],
  findings: [],
});

/** The outcome of validating one event. */
export interface Checked<T> {
  readonly ok: boolean;
  readonly value: readonly T[];
  readonly issues: IssueList;
  /** Analysis findings among `issues` (reported; they refuse config only with `analysis: 'blocking'`). */
  readonly findings: readonly ConfigIssue[];
}

/** Validation settings. */
export interface CheckOptions {
  /** Namespace for resources without one (the workload's). */
  readonly defaultNamespace: string;
  /** What analysis does to config. @defaultValue 'advisory' */
  readonly analysis?: AnalysisMode;
}

function docs(items: readonly WireResource[], label: string): RawDocument[] | undefined {
  if (!Array.isArray(items)) return undefined;
  return items.map((value, i) => ({ value, source: { file: `${label}[${i}]` } }));
}

/**
 * A few recent results by event text. Meshes of one process that receive the same event (tests,
 * benchmarks, a process with several meshes) share one parse and one validation: both are pure
 * functions of the text (and the options), and their results are treated as immutable everywhere.
 *
 * Looked up by comparing texts, not through a `Map`: each mesh reads its own copy of the text
 * from its own socket, and hashing a fresh copy of a config event (tens of KB) costs more than
 * comparing it with the few kept here (a length check, then a memory compare).
 */
class RecentByText<T> {
  readonly #entries: { text: string; key: string; value: T }[] = [];
  /** The value made for `text` under `key` (a short string naming the options), made once. */
  get(text: string, key: string, make: () => T): T {
    const entries = this.#entries;
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i] as { text: string; key: string; value: T };
      if (e.key === key && e.text === text) return e.value;
    }
    const value = make();
    entries.push({ text, key, value });
    if (entries.length > RECENT_MAX) entries.shift();
    return value;
  }
}

const RECENT_MAX = 4;
const parsed = new RecentByText<unknown>();

/**
 * `JSON.parse` of an event's data, shared by the meshes of one process that receive the same
 * text (the result is treated as immutable everywhere). Throws what `JSON.parse` throws.
 */
export function parseEvent(text: string): unknown {
  return parsed.get(text, '', () => JSON.parse(text) as unknown);
}

const parsedAsync = new RecentByText<Promise<unknown>>();

/**
 * {@link parseEvent} in slices (a large config event's resources are parsed a few at a time, so
 * the event loop keeps running); identical texts share one parse. Rejects with what `JSON.parse` throws.
 */
export function parseEventAsync(text: string): Promise<unknown> {
  return parsedAsync.get(text, '', () => runSliced(parseJsonSteps(text)));
}

const recent = new RecentByText<Checked<AnyResource>>();

/**
 * Validates the resources of a `config` event as a whole set. `label` names them in issues.
 * `text` (the event's data as received), when given, lets identical events share one validation.
 */
export function checkConfig(resources: readonly WireResource[], label: string, o: CheckOptions, text?: string): Checked<AnyResource> {
  if (text === undefined) return checkConfigNow(resources, label, o);
  return recent.get(text, `${o.defaultNamespace}\0${o.analysis ?? 'advisory'}\0${label}`, () => checkConfigNow(resources, label, o));
}

function checkConfigNow(resources: readonly WireResource[], label: string, o: CheckOptions): Checked<AnyResource> {
  const d = docs(resources, label);
  if (d === undefined) return notAList(label);
  const loaded = checkDocuments(d, { defaultNamespace: o.defaultNamespace, analysis: o.analysis });
  return { ok: loaded.ok, value: loaded.resources, issues: loaded.issues, findings: loaded.findings };
}

function notAList(label: string): Checked<AnyResource> {
  const issues = new IssueList();
  issues.file(label, undefined, 'error', '`resources` is not a list');
  return { ok: false, value: [], issues, findings: [] };
}

const recentAsync = new RecentByText<Promise<Checked<AnyResource>>>();

/**
 * {@link checkConfig} in slices that give the event loop a turn every few milliseconds: a mesh
 * keeps serving requests while it checks a large config. Identical events (`text`) share one check.
 */
export function checkConfigAsync(resources: readonly WireResource[], label: string, o: CheckOptions, text?: string): Promise<Checked<AnyResource>> {
  const run = async (): Promise<Checked<AnyResource>> => {
    const d = docs(resources, label);
    if (d === undefined) return notAList(label);
    const loaded = await checkDocumentsAsync(d, { defaultNamespace: o.defaultNamespace, analysis: o.analysis });
    return { ok: loaded.ok, value: loaded.resources, issues: loaded.issues, findings: loaded.findings };
  };
  if (text === undefined) return run();
  return recentAsync.get(text, `${o.defaultNamespace}\0${o.analysis ?? 'advisory'}\0${label}`, run);
}

/** Validates the workloads of an `endpoints` event: each must be a valid WorkloadEntry. */
export function checkWorkloads(workloads: readonly WireResource[], label: string, o: CheckOptions): Checked<Resource<'WorkloadEntry'>> {
  const d = docs(workloads, label);
  const issues = new IssueList();
  if (d === undefined) {
    issues.file(label, undefined, 'error', '`workloads` is not a list');
    return { ok: false, value: [], issues, findings: [] };
  }
  d.forEach((doc, i) => {
    const kind = (doc.value as { kind?: unknown } | null)?.kind;
    if (kind !== 'WorkloadEntry') issues.file(`${label}[${i}]`, undefined, 'error', `expected a WorkloadEntry, got kind ${JSON.stringify(kind)}`);
  });
  const loaded = checkDocuments(d, { defaultNamespace: o.defaultNamespace, analysis: 'off' }, issues);
  const value = loaded.resources.filter((r): r is Resource<'WorkloadEntry'> => r.kind === 'WorkloadEntry');
  return { ok: loaded.ok, value, issues: loaded.issues, findings: [] };
}

/**
 * The errors of a check, printed (what a NACK carries); an analysis finding leads with its code
 * (`IST0101 …`), as `meshlet analyze` and the status's findings print it, so the reason a
 * workload refused a version names Istio's check.
 */
export function reasons(issues: IssueList): string[] {
  return issues.ofLevel('error').map((i) => (i.code.startsWith('IST') ? `${i.code} ${String(i)}` : String(i)));
}

/** The mesh's settings a compile of the control plane's state reads (createMesh's options). */
export type StateCompileOptions = Pick<CompileOptions, 'rootNamespace' | 'networks' | 'defaultHttpRetryPolicy' | 'meshSettings'>;

/** Compiles a good state for this workload; the snapshot version is `<config>/<endpoints>`. */
export function compileState(state: GoodState, workload: WorkloadInfo, mesh: StateCompileOptions = {}): Snapshot {
  return compileSnapshot(state.resources, workload, {
    rootNamespace: mesh.rootNamespace,
    networks: mesh.networks,
    defaultHttpRetryPolicy: mesh.defaultHttpRetryPolicy,
    meshSettings: mesh.meshSettings,
    version: eventId(state.configVersion, state.endpointsVersion),
    extraWorkloads: state.workloads,
  });
}

/**
 * {@link compileState} in slices that give the event loop a turn every few milliseconds; with
 * `names`, gateway host names it uses that have no answer yet are awaited (bounded) and it compiles again.
 */
export function compileStateAsync(state: GoodState, workload: WorkloadInfo, mesh: StateCompileOptions = {}, names?: GatewayNames): Promise<Snapshot> {
  const compile = () =>
    compileSnapshotAsync(state.resources, workload, {
      rootNamespace: mesh.rootNamespace,
      networks: mesh.networks,
      defaultHttpRetryPolicy: mesh.defaultHttpRetryPolicy,
      meshSettings: mesh.meshSettings,
      version: eventId(state.configVersion, state.endpointsVersion),
      extraWorkloads: state.workloads,
    });
  return compileWithGatewayNames(compile, names);
}
