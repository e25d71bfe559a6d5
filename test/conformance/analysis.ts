/**
 * The analysis category: Istio's `istioctl analyze` tests against meshlet's analyzers.
 *
 * - The rows of Istio's analyzer test grid (cases/analysis-grid.ts) whose analyzer meshlet
 *   compares (analysis-scope.ts): the row's testdata files (copied verbatim into
 *   istio/analyzers/testdata/) and the default resources Istio's test adds to every row
 *   (istio/analyzers/defaults.yaml) are loaded together as one config, through meshlet's real
 *   loader, validation and analysis (`checkDocuments`, what `loadConfig` runs, default analysis).
 *   Each resource of the kinds the analyzer reports on is a case: Istio's expected messages for
 *   it (code and level) against meshlet's findings on it that answer the same question.
 * - The unit tests of the helpers those analyzers share (host names, export scopes), against
 *   meshlet's helpers (analysis-helpers.ts).
 *
 * Rows and resources that cannot be compared are counted with the reason.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ConfigIssue } from '../../src/config/issues.ts';
import { IssueList } from '../../src/config/issues.ts';
import { checkDocuments } from '../../src/config/load-config.ts';
import { resolveHost } from '../../src/config/hosts.ts';
import { parseText, type RawDocument } from '../../src/config/load.ts';
import { runAnalysisHelpers } from './analysis-helpers.ts';
import { type ComparedAnalyzer, scopeOf } from './analysis-scope.ts';
import { GRID_SOURCE, grid } from './cases/analysis-grid.ts';
import type { CaseResult, CategoryRun, UncomparedCase } from './suite.ts';
import type { AnalysisGridRow } from './types.ts';

/** Why Istio refuses a Sidecar with nothing in its spec (the ambient rows' Sidecars). */
const EMPTY_SIDECAR = 'no egress, ingress, outboundTrafficPolicy or inboundConnectionPool: "sidecar: empty configuration provided" (ValidateSidecar)';

/**
 * Resources of the compared rows' testdata that meshlet refuses, each because Kubernetes or
 * Istio's own validation refuses it too (a cluster would never hold it; Istio's analyzer test
 * runs one analyzer over the files and validates nothing). meshlet analyses valid resources only,
 * so these resources, and the VirtualServices whose destinations they declare, are counted as
 * not compared, with this reason. The list must be exact: a refusal missing here is compared (and
 * disagrees), and an entry meshlet does not refuse fails the run.
 */
export const REFUSED_INPUTS: Readonly<Record<string, { readonly by: 'Kubernetes' | 'Istio'; readonly why: string }>> = {
  'testdata/virtualservice_destinationhosts.yaml: Service default/reviews-2port': {
    by: 'Kubernetes',
    why: 'spec.ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP" (the protocol of a Service port is L4; Istio reads HTTP from the port name)',
  },
  'testdata/virtualservice_destinationhosts.yaml: VirtualService default/reviews-bogushost': {
    by: 'Istio',
    why: 'its route has an empty entry `{}`: "destination is required" (validateHTTPRouteDestinations)',
  },
  'testdata/virtualservice_destinationhosts.yaml: ServiceEntry default-ignore/service-entry-ignore': {
    by: 'Istio',
    why: 'host "*": "invalid host *" (ValidateServiceEntry: a full wildcard is not allowed in a ServiceEntry)',
  },
  'testdata/virtualservice_route_rule_no_effects_ingress.yaml: Service default/ratings': {
    by: 'Kubernetes',
    why: 'spec.ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"',
  },
  'testdata/sidecar-default-selector.yaml: Sidecar ns-ambient/namespace-scoped': { by: 'Istio', why: EMPTY_SIDECAR },
  'testdata/sidecar-default-selector.yaml: Sidecar ns-ambient/pod-scoped': { by: 'Istio', why: EMPTY_SIDECAR },
  'testdata/sidecar-default-selector.yaml: Sidecar ns-not-ambient/namespace-not-ambient': { by: 'Istio', why: EMPTY_SIDECAR },
  'testdata/sidecar-default-selector.yaml: Sidecar ns-not-ambient-rev/namespace-not-ambient': { by: 'Istio', why: EMPTY_SIDECAR },
  'testdata/service-no-port-name.yaml: Service my-namespace1/my-service1': {
    by: 'Kubernetes',
    why: 'spec.ports[0].name: Required value (a Service with more than one port must name each)',
  },
  'testdata/service-no-port-name-system-namespace.yaml: Service kube-system/my-service1': {
    by: 'Kubernetes',
    why: 'spec.ports[0].name: Required value (a Service with more than one port must name each)',
  },
};

const here = dirname(fileURLToPath(import.meta.url));
const DIR = join(here, 'istio', 'analyzers');
const DEFAULTS = join(DIR, 'defaults.yaml');

/** `Kind ns/name` of a document, with meshlet's default namespace. */
function refOf(doc: RawDocument): string | undefined {
  const v = doc.value as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } } | null;
  if (typeof v?.kind !== 'string' || typeof v.metadata?.name !== 'string') return undefined;
  const ns = typeof v.metadata.namespace === 'string' && v.metadata.namespace !== '' ? v.metadata.namespace : 'default';
  return `${v.kind} ${ns}/${v.metadata.name}`;
}

/** Istio's origin (`Kind name` when the YAML has no namespace, else `Kind ns/name`) as meshlet names the resource. */
function originRef(origin: string): string {
  const [kind, name] = origin.split(' ', 2) as [string, string];
  return `${kind} ${name.includes('/') ? name : `default/${name}`}`;
}

/** A multiset of `CODE level` entries, sorted, printed; `none` when empty. */
function show(entries: readonly string[]): string {
  return entries.length === 0 ? 'none' : [...entries].sort().join(', ');
}

function readDocs(path: string, label: string, issues: IssueList): RawDocument[] {
  return parseText(readFileSync(path, 'utf8'), label, issues);
}

/** Unique row names: Istio's grid repeats some (`#2` is appended, in order). */
function rowNames(rows: readonly AnalysisGridRow[]): string[] {
  const seen = new Map<string, number>();
  return rows.map((r) => {
    const n = (seen.get(r.name) ?? 0) + 1;
    seen.set(r.name, n);
    return n === 1 ? r.name : `${r.name} #${n}`;
  });
}

/** The hosts a refused Service or ServiceEntry declares (short names resolved). */
function declaredHosts(doc: RawDocument, ref: string): string[] {
  const v = doc.value as { kind?: string; metadata?: { name?: string }; spec?: { hosts?: unknown } };
  const ns = ref.slice(ref.indexOf(' ') + 1, ref.indexOf('/'));
  if (v.kind === 'Service') return [resolveHost(String(v.metadata?.name), ns)];
  if (v.kind === 'ServiceEntry' && Array.isArray(v.spec?.hosts)) return v.spec.hosts.map((h) => resolveHost(String(h), ns));
  return [];
}

/** The destination hosts of a VirtualService document (routes and mirrors of every section), resolved in `namespace`. */
function destinationHosts(doc: RawDocument, namespace: string): string[] {
  const spec = (doc.value as { spec?: Record<string, unknown> }).spec ?? {};
  const out: string[] = [];
  const add = (d: unknown) => {
    const host = (d as { host?: unknown } | undefined)?.host;
    if (typeof host === 'string') out.push(resolveHost(host, namespace));
  };
  for (const section of ['http', 'tcp', 'tls']) {
    for (const rule of (spec[section] as Record<string, unknown>[] | undefined) ?? []) {
      for (const r of (rule.route as { destination?: unknown }[] | undefined) ?? []) add(r?.destination);
      add(rule.mirror);
      for (const m of (rule.mirrors as { destination?: unknown }[] | undefined) ?? []) add(m?.destination);
    }
  }
  return out;
}

function runRow(row: AnalysisGridRow, name: string, scope: ComparedAnalyzer, results: CaseResult[], uncompared: UncomparedCase[]): void {
  const source = `${GRID_SOURCE}:${row.line}`;
  const rowReason = scope.rowsNotCompared?.[row.name];
  if (row.meshConfigFile !== undefined || row.meshNetworksFile !== undefined) {
    uncompared.push({ id: `analysis/${name}`, category: 'analysis', reason: 'the row sets MeshConfig or MeshNetworks, which meshlet does not read' });
    return;
  }
  const issues = new IssueList();
  const own: RawDocument[] = [];
  for (const f of row.inputFiles) own.push(...readDocs(join(DIR, f), f, issues));
  const docs = [...own, ...readDocs(DEFAULTS, 'defaults.yaml', issues)];
  const loaded = checkDocuments(docs, {}, issues);
  const isRefused = (ref: string) => issues.all.some((i) => i.resource === ref && i.level === 'error' && !loaded.findings.includes(i));
  // Inputs refused by validation: each must be a listed refusal (and each listed one refused).
  const refusedHosts = new Map<string, string>();
  for (const doc of own) {
    const ref = refOf(doc);
    if (ref === undefined) continue;
    const key = `${doc.source.file.replace(/:\d+$/, '')}: ${ref}`;
    const listed = REFUSED_INPUTS[key];
    if (listed !== undefined && !isRefused(ref)) throw new Error(`${key} is listed in REFUSED_INPUTS but meshlet accepts it`);
    if (listed === undefined || !isRefused(ref)) continue;
    for (const h of declaredHosts(doc, ref)) refusedHosts.set(h, `${ref} (${listed.by} refuses it: ${listed.why})`);
  }
  const cases = own.map(refOf).filter((ref): ref is string => ref !== undefined && scope.kinds.includes(ref.split(' ')[0] as string));
  const known = new Set(cases);
  for (const e of row.expected) {
    if (!known.has(originRef(e.origin))) throw new Error(`${name}: expected message on ${e.origin}, which is not a case of the row`);
  }
  for (const ref of new Set(cases)) {
    const id = `analysis/${name}/${ref}`;
    const expected = row.expected.filter((e) => originRef(e.origin) === ref);
    if (rowReason !== undefined) {
      uncompared.push({ id, category: 'analysis', reason: `${row.analyzer}: ${rowReason}` });
      continue;
    }
    const skippedCode = expected.find((e) => scope.notCompared?.[e.code] !== undefined);
    if (skippedCode !== undefined) {
      uncompared.push({ id, category: 'analysis', reason: `${skippedCode.code}: ${scope.notCompared?.[skippedCode.code]}` });
      continue;
    }
    const doc = own.find((d) => refOf(d) === ref) as RawDocument;
    const listed = REFUSED_INPUTS[`${doc.source.file.replace(/:\d+$/, '')}: ${ref}`];
    if (listed !== undefined) {
      uncompared.push({ id, category: 'analysis', reason: `input refused: ${listed.by} refuses it too (meshlet analyses valid config only): ${listed.why}` });
      continue;
    }
    const dependency = ref.startsWith('VirtualService ') ? destinationHosts(doc, ref.slice(15, ref.indexOf('/'))).map((h) => refusedHosts.get(h)).find((d) => d !== undefined) : undefined;
    if (dependency !== undefined) {
      uncompared.push({ id, category: 'analysis', reason: `input refused: its destination is declared by ${dependency}` });
      continue;
    }
    const refused = issues.all.filter((i) => i.resource === ref && i.level === 'error' && !loaded.findings.includes(i));
    const mine = loaded.findings.filter((f: ConfigIssue) => f.resource === ref && scope.picks(f));
    const want = show(expected.map((e) => `${e.code} ${e.level}`));
    const got = refused.length > 0 ? `refused by validation` : show(mine.map((f) => `${f.code} ${f.level}`));
    const detail = (refused.length > 0 ? refused : mine).map((i) => `${i.level} ${i.code} ${i.path}: ${i.message}`).join('; ');
    results.push({ id, category: 'analysis', group: row.analyzer, expected: want, got, agree: want === got, source, detail });
  }
}

/** Runs the whole analysis category. */
export function runAnalysis(): CategoryRun {
  const results: CaseResult[] = [];
  const uncompared: UncomparedCase[] = [];
  const names = rowNames(grid);
  grid.forEach((row, i) => {
    const name = names[i] as string;
    const scope = scopeOf(row.analyzer);
    if (!scope.compared) {
      uncompared.push({ id: `analysis/${name}`, category: 'analysis', reason: `${row.analyzer}: ${scope.reason}` });
      return;
    }
    runRow(row, name, scope, results, uncompared);
  });
  runAnalysisHelpers(results, uncompared);
  return { category: 'analysis', results, uncompared };
}
