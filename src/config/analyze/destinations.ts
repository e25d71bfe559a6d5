/**
 * VirtualService destinations: the host must be a known service, the port one of its ports,
 * and the subset defined by a DestinationRule (`IST0101`); a multi-port service needs a port
 * (`IST0112`). These are the mistakes that turn into 503 NC at run time (§6.4).
 *
 * @module
 */
import { resolveHost } from '../hosts.ts';
import type { IssueList } from '../issues.ts';
import type { Service } from '../registry.ts';
import type { Resource } from '../resource.ts';
import { appliesToMesh, destinationsOf, findService, type AnalysisContext, type Analyzer, type DestinationRef } from './context.ts';

/** The namespace a `*.ns.svc.<domain>` host belongs to, if it is one. */
function namespaceOfHost(host: string): string | undefined {
  const m = /^[^.]+\.([^.]+)\.svc\./.exec(host);
  return m?.[1];
}

function checkHost(vs: Resource<'VirtualService'>, ref: DestinationRef, host: string, ctx: AnalysisContext, issues: IssueList): Service | undefined {
  const ns = vs.metadata.namespace;
  const { service, hidden } = findService(ctx, host, ns, vs.spec.exportTo);
  if (service !== undefined) return service;
  const what = ref.role === 'mirror' ? 'mirror host' : 'host';
  const written = ref.destination.host;
  const shown = written.toLowerCase() === host ? `"${written}"` : `"${written}" (${host})`;
  const where = [...new Set((vs.spec.exportTo ?? []).map((e) => (e === '.' ? ns : e)))];
  const usedIn = where.length === 0 ? `namespace ${ns}` : where.includes('*') ? 'every namespace' : `${where.length === 1 ? 'namespace' : 'namespaces'} ${where.join(', ')} (this VirtualService's exportTo)`;
  const why = hidden !== undefined
    ? `${hidden.origin} declares it but is not exported to ${usedIn}`
    : 'no ServiceEntry or Service declares it';
  issues.at(vs, [...ref.path, 'host'], 'error', `referenced ${what} ${shown} not found: ${why}`, 'IST0101');
  return undefined;
}

function checkPort(vs: Resource<'VirtualService'>, ref: DestinationRef, service: Service, issues: IssueList): void {
  const ports = service.ports.map((p) => p.number);
  const wanted = ref.destination.port?.number;
  if (wanted === undefined) {
    if (ports.length > 1) {
      issues.at(
        vs,
        [...ref.path, 'port'],
        'error',
        `destination ${service.hostname} exposes several ports (${ports.join(', ')}) but names none; set destination.port (otherwise the port the request was sent to is used, which the destination may not have)`,
        'IST0112',
      );
    }
    return;
  }
  if (ports.length > 0 && !ports.includes(wanted)) {
    issues.at(
      vs,
      [...ref.path, 'port', 'number'],
      'error',
      `referenced port ${wanted} of host ${service.hostname} not found: ${service.origin} declares ${ports.length === 1 ? 'port' : 'ports'} ${ports.join(', ')}`,
      'IST0101',
    );
  }
}

function checkSubset(vs: Resource<'VirtualService'>, ref: DestinationRef, host: string, service: Service | undefined, ctx: AnalysisContext, issues: IssueList): void {
  const subset = ref.destination.subset;
  if (subset === undefined) return;
  const ns = vs.metadata.namespace;
  const path = [...ref.path, 'subset'];
  const defining = ctx.rulesMatching(host).filter((dr) => (dr.spec.subsets ?? []).some((s) => s.name === subset));
  if (defining.length === 0) {
    issues.at(vs, path, 'error', `referenced subset "${subset}" of host ${host} is not defined by any DestinationRule`, 'IST0101');
    return;
  }
  // A rule with a workloadSelector may define it for the workloads it selects; don't guess.
  if (defining.some((dr) => dr.spec.workloadSelector !== undefined)) return;
  // Rules do not merge across namespaces: the one that applies to workloads in the VirtualService's
  // namespace must itself define the subset, or their requests get 503 NC.
  const serviceNs = service?.namespace ?? namespaceOfHost(host) ?? ns;
  const applied = ctx.ruleIndexFor(ns).find(host, serviceNs, ns);
  if (applied?.subsets.has(subset) === true) return;
  const definedBy = defining.map((dr) => dr.ref).join(', ');
  // istiod looks no further than the namespace's rules for the host, even when their workloadSelector leaves a workload out.
  const selectors = applied === undefined ? ctx.rulesMatching(host).filter((dr) => dr.metadata.namespace === ns && dr.spec.workloadSelector !== undefined && !defining.includes(dr)) : [];
  const why =
    applied !== undefined
      ? `is defined by ${definedBy}, but workloads in namespace ${ns} use ${applied.rules.map((r) => r.ref).join(', ')}, which does not define it`
      : selectors.length > 0
        ? `is defined by ${definedBy}, but ${selectors.map((dr) => dr.ref).join(', ')} (with a workloadSelector) in namespace ${ns} is where istiod stops looking for that host: the workloads it selects use it, which does not define the subset, and the others get no DestinationRule`
        : `is defined by ${definedBy}, which is not exported to namespace ${ns}`;
  issues.at(vs, path, 'error', `referenced subset "${subset}" of host ${host} ${why}`, 'IST0101');
}

/**
 * `IST0101` ReferencedResourceNotFound (host, mirror host, host:port, subset) and `IST0112`
 * (destination without a port on a multi-port service), for every route and mirror destination.
 */
export const destinationAnalyzer: Analyzer = {
  name: 'virtualservice.destinations',
  codes: ['IST0101', 'IST0112'],
  description: 'VirtualService destinations name known hosts, ports and DestinationRule subsets',
  *analyze(ctx, issues) {
    for (const vs of ctx.virtualServices) {
      yield;
      // A VirtualService bound only to gateways is ignored by meshlet (validation says so); its
      // destinations live behind a gateway meshlet does not see, and must not refuse the config.
      if (!appliesToMesh(vs)) continue;
      for (const ref of destinationsOf(vs)) {
        const host = resolveHost(ref.destination.host, vs.metadata.namespace);
        const service = checkHost(vs, ref, host, ctx, issues);
        if (service !== undefined) checkPort(vs, ref, service, issues);
        checkSubset(vs, ref, host, service, ctx, issues);
      }
    }
  },
};
