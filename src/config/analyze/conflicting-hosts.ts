/**
 * Two mesh VirtualServices claiming one host (`MESHLET0101`). Istio's analyzer reports this
 * as `IST0109` (undefined behaviour) on every VirtualService involved; meshlet's route compiler
 * is deterministic: the oldest VirtualService wins the host, and the later one is ignored for
 * it wherever both are visible. Both are told, each naming the other and which one wins, so a
 * change to either (`meshlet apply` of the newer or of the older one) carries the warning.
 *
 * @module
 */
import { resolveHost } from '../hosts.ts';
import { byAge, type Resource } from '../resource.ts';
import { appliesToMesh, exportScope, scopeIsEmpty, scopeOverlap, type Analyzer, type ExportScope } from './context.ts';

interface Claim {
  readonly vs: Resource<'VirtualService'>;
  readonly index: number;
  readonly scope: ExportScope;
}

function where(overlap: ExportScope): string {
  if (overlap === 'all') return '';
  const names = [...overlap].sort();
  return ` in namespace${names.length === 1 ? '' : 's'} ${names.join(', ')}`;
}

/**
 * `MESHLET0101`: a VirtualService bound to the mesh claims a host (after short-name
 * resolution) that an older mesh VirtualService visible to some of the same namespaces
 * already claims. Reported on the later one, at the host entry, naming the winner; and on the
 * winner, at its host entry, naming the one it shadows.
 */
export const conflictingHostsAnalyzer: Analyzer = {
  name: 'virtualservice.conflicting-hosts',
  codes: ['MESHLET0101'],
  description: 'mesh VirtualServices that claim the same host (the oldest wins)',
  *analyze(ctx, issues) {
    const claims = new Map<string, Claim[]>();
    for (const vs of [...ctx.virtualServices].filter(appliesToMesh).sort(byAge)) {
      yield;
      const scope = exportScope(vs.spec.exportTo, vs.metadata.namespace);
      const mine = new Set<string>();
      (vs.spec.hosts ?? []).forEach((h, index) => {
        const host = resolveHost(h, vs.metadata.namespace);
        if (mine.has(host)) return;
        mine.add(host);
        const earlier = claims.get(host) ?? [];
        for (const c of earlier) {
          const overlap = scopeOverlap(c.scope, scope);
          if (scopeIsEmpty(overlap)) continue;
          const winner = c.vs.ref.replace(/^VirtualService /, '');
          const loser = vs.ref.replace(/^VirtualService /, '');
          issues.at(
            vs,
            ['spec', 'hosts', index],
            'warning',
            `host ${host} is also claimed by VirtualService ${winner} (first wins; this one is ignored for that host${where(overlap)})`,
            'MESHLET0101',
          );
          issues.at(
            c.vs,
            ['spec', 'hosts', c.index],
            'warning',
            `host ${host} is also claimed by VirtualService ${loser}, which is ignored for that host${where(overlap)} (first wins: this one)`,
            'MESHLET0101',
          );
          break;
        }
        earlier.push({ vs, index, scope });
        claims.set(host, earlier);
      });
    }
  },
};
