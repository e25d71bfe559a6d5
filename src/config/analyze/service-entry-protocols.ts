/**
 * ServiceEntries that declare one host and port with different protocols (`IST0177`), as
 * Istio's `ConflictingServiceEntryProtocolAnalyzer` reports them: only one declaration can be
 * used for the host, so traffic on that port is treated as one protocol or the other.
 *
 * @module
 */
import { resolveHost } from '../hosts.ts';
import { byAge, ofKind, type Resource } from '../resource.ts';
import { exportScope, scopeIsEmpty, scopeOverlap, type Analyzer, type ExportScope } from './context.ts';

interface Declaration {
  readonly se: Resource<'ServiceEntry'>;
  readonly host: string;
  readonly port: number;
  /** As written, upper-cased; '' when unset. */
  readonly protocol: string;
  readonly scope: ExportScope;
}

/**
 * `IST0177` ConflictingServiceEntryProtocol (warning): ServiceEntries visible in a common
 * namespace declare the same host and port number with different protocols. Reported once on
 * each ServiceEntry involved, naming the others and the one meshlet uses (the oldest).
 */
export const serviceEntryProtocolAnalyzer: Analyzer = {
  name: 'serviceentry.conflicting-protocols',
  codes: ['IST0177'],
  description: 'ServiceEntries that declare one host and port agree on its protocol',
  *analyze(ctx, issues) {
    const byKey = new Map<string, Declaration[]>();
    for (const se of ofKind(ctx.resources, 'ServiceEntry').sort(byAge)) {
      yield;
      const scope = exportScope(se.spec.exportTo, se.metadata.namespace);
      for (const h of se.spec.hosts) {
        const host = resolveHost(h, se.metadata.namespace);
        for (const p of se.spec.ports ?? []) {
          const key = `${host}:${p.number}`;
          const list = byKey.get(key) ?? [];
          list.push({ se, host, port: p.number, protocol: (p.protocol ?? '').toUpperCase(), scope });
          byKey.set(key, list);
        }
      }
    }
    const reported = new Set<Resource<'ServiceEntry'>>();
    for (const list of byKey.values()) {
      for (const d of list) {
        if (reported.has(d.se)) continue;
        const others = list.filter((o) => o.se !== d.se && o.protocol !== d.protocol && !scopeIsEmpty(scopeOverlap(o.scope, d.scope)));
        if (others.length === 0) continue;
        reported.add(d.se);
        const group = [d, ...others].sort((a, b) => byAge(a.se, b.se));
        const protocols = [...new Set(group.map((g) => g.protocol || '(none)'))].sort().join(', ');
        const names = [...new Set(group.map((g) => g.se.ref.replace(/^ServiceEntry /, '')))].join(', ');
        const used = (group[0] as Declaration).se.ref.replace(/^ServiceEntry /, '');
        issues.at(
          d.se,
          ['metadata', 'name'],
          'warning',
          `ServiceEntries ${names} declare host ${d.host} port ${d.port} with different protocols (${protocols}); one declaration is used for the host (meshlet: the oldest, ${used})`,
          'IST0177',
        );
      }
    }
  },
};
