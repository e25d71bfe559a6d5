/**
 * DestinationRules against the registry: the host must match some service (`IST0174`), and
 * each subset must select at least one endpoint of it (`IST0173`), or requests routed to the
 * subset get 503 `no healthy upstream` (§6.4).
 *
 * @module
 */
import { hostMatches, resolveHost } from '../hosts.ts';
import { labelsMatch, type Service } from '../registry.ts';
import type { Analyzer } from './context.ts';

/** True if the service's endpoints are known from config, so a subset can be checked against them. */
function hasKnownEndpoints(s: Service): boolean {
  return s.resolution !== 'NONE' && s.resolution !== 'DYNAMIC_DNS' && s.workloads.length > 0;
}

/** `version: v1, v2` for each selector key, from the labels the endpoints do have. */
function labelHint(selector: Readonly<Record<string, string>>, services: readonly Service[]): string {
  const parts: string[] = [];
  for (const key of Object.keys(selector)) {
    const values = new Set<string>();
    for (const s of services) for (const w of s.workloads) if (w.labels[key] !== undefined) values.add(w.labels[key]);
    parts.push(values.size === 0 ? `no endpoint has label ${key}` : `endpoints have ${key}=${[...values].sort().join('|')}`);
  }
  return parts.join('; ');
}

/**
 * `IST0174` (DestinationRule host matches no ServiceEntry host, wildcards considered both ways)
 * and `IST0173` (a subset whose labels select none of the endpoints of the services the rule
 * applies to). Services with resolution NONE or DYNAMIC_DNS, and services without endpoints in
 * config (endpoints may register at run time), are not checked for subsets.
 */
export const destinationRuleAnalyzer: Analyzer = {
  name: 'destinationrule.hosts-and-subsets',
  codes: ['IST0173', 'IST0174'],
  description: 'DestinationRule hosts match a service and subsets select endpoints',
  *analyze(ctx, issues) {
    for (const dr of ctx.destinationRules) {
      yield;
      const written = dr.spec.host;
      const host = resolveHost(written, dr.metadata.namespace);
      const matching = ctx.servicesOverlapping(host);
      if (matching.length === 0) {
        const shown = written.toLowerCase() === host ? `"${written}"` : `"${written}" (${host})`;
        issues.at(dr, ['spec', 'host'], 'warning', `host ${shown} matches no service: no ServiceEntry declares a matching host`, 'IST0174');
        continue;
      }
      // The rule's subsets apply to the services its host pattern covers.
      const checkable = matching.filter((s) => hostMatches(host, s.hostname) && hasKnownEndpoints(s));
      if (checkable.length === 0) continue;
      const names = [...new Set(checkable.map((s) => s.hostname))].join(', ');
      (dr.spec.subsets ?? []).forEach((subset, i) => {
        // A subset without labels selects every endpoint, so only labelled subsets can fail.
        const selector = subset.labels ?? {};
        if (checkable.some((s) => s.workloads.some((w) => labelsMatch(selector, w.labels)))) return;
        const wanted = Object.entries(selector).map(([k, v]) => `${k}=${v}`).join(', ');
        issues.at(
          dr,
          ['spec', 'subsets', i, 'labels'],
          'error',
          `subset "${subset.name}" selects no endpoints of ${names}: none has labels ${wanted} (${labelHint(selector, checkable)}); requests routed to it get 503 no healthy upstream`,
          'IST0173',
        );
      });
    }
  },
};
