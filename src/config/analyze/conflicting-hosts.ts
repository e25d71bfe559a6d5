/**
 * Mesh VirtualServices that claim the same host (`IST0109`
 * ConflictingMeshGatewayVirtualServiceHosts, as Istio's `ConflictingMeshGatewayHostsAnalyzer`
 * reports it). Istio calls the behaviour undefined; meshlet's route compiler is deterministic —
 * for one host the first VirtualService in istiod's order wins and the later one is ignored for
 * it (in a namespace: one exported to its own namespace only, then one exported to it by name,
 * then a public one; the oldest within each), and between a wildcard and a narrower host the
 * more specific one is used — and says so in the finding.
 *
 * @module
 */
import { hostsOverlap, resolveHost } from '../hosts.ts';
import type { FieldPath } from '../issues.ts';
import { byAge, type Resource } from '../resource.ts';
import { appliesToMesh, exportScope, scopeIsEmpty, scopeOverlap, type Analyzer, type ExportScope } from './context.ts';

interface Claim {
  readonly vs: Resource<'VirtualService'>;
  /** Index of the host in `spec.hosts`. */
  readonly index: number;
  /** The host, resolved against the VirtualService's namespace. */
  readonly host: string;
  readonly scope: ExportScope;
}

/** One conflict of a VirtualService: its host entry, the other VirtualService and what meshlet does. */
interface Conflict {
  readonly index: number;
  readonly text: string;
}

function where(overlap: ExportScope): string {
  if (overlap === 'all') return '';
  const names = [...overlap].sort();
  return ` in namespace${names.length === 1 ? '' : 's'} ${names.join(', ')}`;
}

function name(vs: Resource<'VirtualService'>): string {
  return `${vs.metadata.namespace}/${vs.metadata.name}`;
}

/**
 * Whether two claims conflict, as Istio's analyzer decides: the same host where both are
 * visible, or — between a VirtualService exported to some namespaces and one exported to every
 * namespace — hosts that overlap (`*.productpage.d` and `*.d`). Two VirtualServices exported
 * everywhere with a wildcard and a narrower host (`*.example.com` and `api.example.com`, the
 * common override) are not a conflict for Istio, nor for meshlet: the more specific host wins.
 */
function conflicts(a: Claim, b: Claim): ExportScope | undefined {
  const overlap = scopeOverlap(a.scope, b.scope);
  if (scopeIsEmpty(overlap)) return undefined;
  if (a.host === b.host) return overlap;
  if ((a.scope === 'all') !== (b.scope === 'all') && hostsOverlap(a.host, b.host)) return overlap;
  return undefined;
}

/** Where istiod lists a claim's VirtualService for a workload of `namespace` (where it is visible): 0 exported to its own namespace only, 1 to that namespace by name, 2 public. */
function rank(c: Claim, namespace: string): number {
  if (c.scope === 'all') return 2;
  return c.vs.metadata.namespace === namespace ? 0 : 1;
}

/** The namespaces of `overlap` where the older claim `a` wins over `b`, and where `b` wins (its narrower exportTo lists it first). */
function winners(a: Claim, b: Claim, overlap: ExportScope): { older: ExportScope; newer: ExportScope } {
  if (overlap === 'all') return { older: 'all', newer: new Set() };
  const older = new Set<string>();
  const newer = new Set<string>();
  for (const ns of overlap) (rank(b, ns) < rank(a, ns) ? newer : older).add(ns);
  return { older, newer };
}

/** What meshlet does with two conflicting claims, told from `self`'s side (`selfOlder`: self is the older one). */
function describe(self: Claim, other: Claim, overlap: ExportScope, selfOlder: boolean): string {
  const them = `VirtualService ${name(other.vs)}`;
  if (self.host === other.host) {
    const { older, newer } = winners(selfOlder ? self : other, selfOlder ? other : self, overlap);
    const outcomes: string[] = [];
    // Where the older one wins, age decided; where the newer one does, its narrower exportTo.
    if (!scopeIsEmpty(older)) outcomes.push(selfOlder ? `newer: it is ignored for that host${where(older)}` : `older: this one is ignored for that host${where(older)}`);
    if (!scopeIsEmpty(newer)) outcomes.push(selfOlder ? `exported more narrowly: this one is ignored for that host${where(newer)}` : `exported more widely: it is ignored for that host${where(newer)}`);
    return `host ${self.host} is also claimed by ${them} (${outcomes.join('; ')})`;
  }
  return `host ${self.host} overlaps host ${other.host} of ${them}: for hosts both match, the more specific one is used${where(overlap)}`;
}

/**
 * `IST0109`: a VirtualService bound to the mesh claims a host another mesh VirtualService claims
 * where both are visible (short names resolved, `exportTo` scopes intersected). Reported once on
 * every VirtualService involved, at its first conflicting host entry, naming every VirtualService
 * it conflicts with and which one meshlet uses.
 */
export const conflictingHostsAnalyzer: Analyzer = {
  name: 'virtualservice.conflicting-hosts',
  codes: ['IST0109'],
  description: 'mesh VirtualServices that claim the same host (meshlet: the most narrowly exported, then the oldest, wins)',
  *analyze(ctx, issues) {
    const claims: Claim[] = [];
    for (const vs of [...ctx.virtualServices].filter(appliesToMesh).sort(byAge)) {
      yield;
      const scope = exportScope(vs.spec.exportTo, vs.metadata.namespace);
      const seen = new Set<string>();
      (vs.spec.hosts ?? []).forEach((h, index) => {
        const host = resolveHost(h, vs.metadata.namespace);
        if (seen.has(host)) return;
        seen.add(host);
        claims.push({ vs, index, host, scope });
      });
    }
    // Candidate pairs, found through an index so that analysis stays near-linear: claims of the
    // same host, and a wildcard claim with any claim its host overlaps (wildcards are few).
    const pairs: [number, number][] = [];
    const byHost = new Map<string, number[]>();
    claims.forEach((c, i) => {
      const list = byHost.get(c.host) ?? [];
      for (const j of list) pairs.push([j, i]);
      list.push(i);
      byHost.set(c.host, list);
    });
    const wildcards = claims.map((c, i) => ({ c, i })).filter(({ c }) => c.host.startsWith('*'));
    for (const { c: w, i } of wildcards) {
      claims.forEach((c, j) => {
        if (c.host === w.host || !hostsOverlap(w.host, c.host)) return;
        // Two wildcards overlapping each other are found from both sides: keep one.
        if (c.host.startsWith('*') && j < i) return;
        pairs.push(i < j ? [i, j] : [j, i]);
      });
    }
    pairs.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    const found = new Map<Resource<'VirtualService'>, Conflict[]>();
    const add = (c: Claim, text: string) => {
      const list = found.get(c.vs) ?? [];
      list.push({ index: c.index, text });
      found.set(c.vs, list);
    };
    // Claims are sorted oldest first, so in a pair (i < j) the i-th VirtualService is the older one.
    for (const [i, j] of pairs) {
      const a = claims[i] as Claim;
      const b = claims[j] as Claim;
      if (a.vs === b.vs) continue;
      const overlap = conflicts(a, b);
      if (overlap === undefined) continue;
      add(a, describe(a, b, overlap, true));
      add(b, describe(b, a, overlap, false));
    }
    for (const [vs, list] of found) {
      const first = Math.min(...list.map((c) => c.index));
      const path: FieldPath = ['spec', 'hosts', first];
      issues.at(vs, path, 'error', `${list.map((c) => c.text).join('; ')}. Istio calls this undefined behaviour; merge them into one VirtualService`, 'IST0109');
    }
  },
};
