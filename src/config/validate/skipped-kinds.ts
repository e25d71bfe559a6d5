/**
 * The notices for documents meshlet skips (Deployments, Gateways, …): one per kind and API
 * group per load, naming the kind, how many there were, their names, and why meshlet skips
 * them — not one per document, so a manifest of a hundred Deployments stays readable.
 *
 * @module
 */
import type { IssueList, SourceRef } from '../issues.ts';
import type { AnyResource } from '../resource.ts';
import { CLUSTER_SCOPED_KINDS, type KindDecision } from './api-kinds.ts';
import { isMeshConfigMap, meshConfigNotice } from './mesh-config-notice.ts';

/** The code of a skipped-kind notice. */
export const SKIPPED_KIND_CODE = 'MESHLET0003';

/** At most this many names are listed in one notice. */
const MAX_NAMES = 10;

interface Group {
  readonly kind: string;
  readonly apiVersion: string;
  readonly level: 'info' | 'warning';
  readonly reason: string;
  readonly first: SourceRef;
  readonly names: string[];
  readonly files: Set<string>;
}

/** Collects skipped documents during one validation and reports them at the end. */
export class SkippedKinds {
  readonly #groups = new Map<string, Group>();
  /** Notices of their own (Istio's MeshConfig ConfigMap: which settings need an option). */
  readonly #notices: { readonly source: SourceRef; readonly level: 'info' | 'warning'; readonly message: string }[] = [];
  /** Hand-made Endpoints and EndpointSlices by the `namespace/name` of the Service they serve. */
  readonly #endpoints = new Map<string, { readonly ref: string; readonly source: SourceRef }>();

  /** Records one skipped document. */
  add(raw: Record<string, unknown>, apiVersion: string, kind: string, decision: Extract<KindDecision, { action: 'skip' }>, source: SourceRef, defaultNamespace: string): void {
    const key = `${decision.group}\0${kind}`;
    let g = this.#groups.get(key);
    if (g === undefined) {
      g = { kind, apiVersion, level: decision.level, reason: decision.reason, first: source, names: [], files: new Set() };
      this.#groups.set(key, g);
    }
    const meta = raw.metadata as { name?: unknown; namespace?: unknown } | undefined;
    const name = typeof meta?.name === 'string' ? meta.name : '(unnamed)';
    const ns = typeof meta?.namespace === 'string' ? meta.namespace : defaultNamespace;
    g.names.push(CLUSTER_SCOPED_KINDS.has(kind) ? name : `${ns}/${name}`);
    g.files.add(source.file);
    if (isMeshConfigMap(raw, kind, apiVersion)) this.#notices.push({ source, ...meshConfigNotice(raw, `${kind} ${ns}/${name}`) });
    const service = kind === 'Endpoints' && apiVersion === 'v1' ? name : kind === 'EndpointSlice' ? serviceOfSlice(raw) : undefined;
    if (service !== undefined && !this.#endpoints.has(`${ns}/${service}`)) this.#endpoints.set(`${ns}/${service}`, { ref: `${kind} ${ns}/${name}`, source });
  }

  /**
   * Warns about each Service without a selector whose endpoints Kubernetes takes from the
   * Endpoints or EndpointSlices skipped here (a Service for a database outside the cluster):
   * meshlet does not read them, so the Service has no endpoint and every call gets 503 UH.
   */
  reportEndpointsOf(resources: readonly AnyResource[], issues: IssueList): void {
    if (this.#endpoints.size === 0) return;
    for (const r of resources) {
      if (r.kind !== 'Service' || r.spec.type === 'ExternalName' || Object.keys(r.spec.selector ?? {}).length > 0) continue;
      const ep = this.#endpoints.get(`${r.metadata.namespace}/${r.metadata.name}`);
      if (ep === undefined) continue;
      const at = `${ep.source.file}${ep.source.line !== undefined ? ` line ${ep.source.line}` : ''}`;
      issues.file(
        r.source.file,
        r.source.line,
        'warning',
        `${r.ref} has no selector: Kubernetes gives it the endpoints of ${ep.ref} (${at}), which meshlet does not read, so calls to it find no endpoint (503 UH); declare the addresses as WorkloadEntries and give the Service a selector that picks them, or use a ServiceEntry with endpoints`,
        SKIPPED_KIND_CODE,
      );
    }
  }

  /** Adds one notice per skipped kind, in the order the kinds were first seen. */
  report(issues: IssueList): void {
    for (const g of this.#groups.values()) {
      const n = g.names.length;
      const shown = g.names.slice(0, MAX_NAMES).join(', ') + (n > MAX_NAMES ? `, and ${n - MAX_NAMES} more` : '');
      const files = g.files.size > 1 ? ` (in ${g.files.size} files)` : '';
      issues.file(g.first.file, g.first.line, g.level, `skipped ${n} ${g.kind} (${g.apiVersion})${files}: ${shown}; ${g.reason}`, SKIPPED_KIND_CODE);
    }
    for (const n of this.#notices) issues.file(n.source.file, n.source.line, n.level, n.message, SKIPPED_KIND_CODE);
  }
}

/** The Service an EndpointSlice belongs to (its `kubernetes.io/service-name` label). */
function serviceOfSlice(raw: Record<string, unknown>): string | undefined {
  const labels = (raw.metadata as { labels?: unknown } | undefined)?.labels;
  const name = typeof labels === 'object' && labels !== null ? (labels as Record<string, unknown>)['kubernetes.io/service-name'] : undefined;
  return typeof name === 'string' ? name : undefined;
}
