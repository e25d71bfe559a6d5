/**
 * The routing category: how a sidecar routes, against Istio's own routing tests and samples.
 *
 * - Host names (pkg/config/host/name_test.go): a TestNameSubsetOf row whose first host is a
 *   concrete name and whose second can be a mesh VirtualService's host is a request — a mesh VirtualService for the second host, a request for the
 *   first, routed through meshlet's compiled route table — and must be routed by that
 *   VirtualService exactly when Istio says the first host is a subset of the second. The other
 *   rows (two patterns, or an empty host) compare meshlet's host matching (`hostMatches`,
 *   `hostsOverlap`, which the route compiler and analyzers use) with Istio's answer.
 * - Delegation (pilot/pkg/model/virtualservice_test.go): a root VirtualService rule delegating
 *   to a delegate VirtualService with the row's rules, merged by meshlet (`mergeDelegates`, what
 *   the route compiler runs), compared field by field with Istio's expected merged rules (or
 *   with the rule being dropped, for a match conflict).
 * - Hand-written request cases (routing-cases.ts): TestBuildHTTPRoutes' fixtures,
 *   TestGenerateVirtualHostDomains' domains, TestSidecarOutboundHTTPRouteConfigWithDuplicateHosts'
 *   overlapping names and Bookinfo's tasks, through `compileSnapshot`.
 */
import { mergeDelegates } from '../../src/config/delegation.ts';
import { hostMatches, hostsOverlap } from '../../src/config/hosts.ts';
import type { AnyResource } from '../../src/config/resource.ts';
import { routingTables } from './cases/routing-tables.ts';
import { ROUTE_TEST_NOT_COMPARED, ROUTING_CASES } from './routing-cases.ts';
import { DOMAINS_NOT_COMPARED, DUPLICATES_NOT_COMPARED } from './routing-hosts.ts';
import { routeCase, type RoutingCase } from './routing-model.ts';
import type { CaseResult, CategoryRun, UncomparedCase } from './suite.ts';
import type { RoutingTable } from './types.ts';

type Row = RoutingTable['rows'][number];

/** A stable JSON form (sorted keys, no undefined), so field order does not matter. */
function canonical(value: unknown): string {
  if (value === undefined || value === null) return 'null';
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** A concrete host a request can carry (no wildcard, not empty). */
function concrete(h: string): boolean {
  return h !== '' && !h.includes('*');
}

function hostRow(t: RoutingTable, row: Row): { got: string; detail: string; how: string } {
  const a = String(row.a);
  const b = String(row.b);
  // A mesh VirtualService cannot have the host "*" (Istio's validation refuses it), so that row is compared through the helper.
  if (t.test === 'TestNameSubsetOf' && concrete(a) && b !== '' && b !== '*') {
    const c: RoutingCase = {
      test: t.test,
      name: String(row.name),
      source: '',
      config: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: upstream, namespace: default}
spec:
  hosts: [upstream.internal]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: hosts-under-test, namespace: default}
spec:
  hosts: ["${b}"]
  http:
  - route:
    - destination: {host: upstream.internal}
`,
      request: { authority: a },
      expect: { rule: '0' },
    };
    const { got, detail } = routeCase(c);
    return { got: String(got === JSON.stringify({ rule: '0' })), detail: `${a} to a VirtualService for ${b}: ${detail}`, how: 'request' };
  }
  const got = t.test === 'TestNameSubsetOf' ? hostMatches(b, a) : hostsOverlap(a, b);
  return { got: String(got), detail: `${t.test === 'TestNameSubsetOf' ? `hostMatches(${JSON.stringify(b)}, ${JSON.stringify(a)})` : `hostsOverlap(${JSON.stringify(a)}, ${JSON.stringify(b)})`} = ${got}`, how: 'helper' };
}

/** A VirtualService resource object for mergeDelegates (the fields it reads). */
function vs(name: string, spec: Record<string, unknown>, order: number): AnyResource {
  return { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name, namespace: 'default' }, spec, ref: `VirtualService default/${name}`, order, source: { file: 'merge' } } as unknown as AnyResource;
}

/** The root's rules after meshlet merges `delegate` rules into `root` (a root rule delegating to `delegate`). */
function merged(root: Record<string, unknown>, delegate: readonly unknown[]): unknown[] {
  const rootRule = { ...root, delegate: { name: 'delegate', namespace: 'default' } };
  const { virtualServices } = mergeDelegates([vs('root', { hosts: ['productpage.org'], http: [rootRule] }, 0), vs('delegate', { http: delegate }, 1)]);
  const rootVs = virtualServices[0];
  if (rootVs === undefined) throw new Error('mergeDelegates left the root VirtualService out');
  return ((rootVs.spec as { http?: unknown[] }).http ?? []) as unknown[];
}

const ROUTE = [{ destination: { host: 'productpage.org' } }];

function mergeRow(t: RoutingTable, row: Row): { expected: string; got: string } {
  switch (t.test) {
    case 'TestMergeHttpRoutes':
      return { expected: canonical(row.expected), got: canonical(merged(row.root as Record<string, unknown>, row.delegate as unknown[])) };
    case 'TestMergeHTTPMatchRequests': {
      const out = merged({ match: row.root ?? undefined, route: ROUTE }, [{ match: row.delegate ?? undefined, route: ROUTE }]);
      // Istio's test ignores the conflict flag: a conflict and an empty result are both nil.
      const match = out.length === 0 ? null : ((out[0] as { match?: unknown }).match ?? null);
      return { expected: canonical(row.expected), got: canonical(match) };
    }
    case 'TestHasConflict': {
      const out = merged({ match: [row.root], route: ROUTE }, [{ match: [row.leaf], route: ROUTE }]);
      return { expected: String(row.expected), got: String(out.length === 0) };
    }
    default:
      throw new Error(`unknown table ${t.test}`);
  }
}

/** Runs the whole routing category. */
export function runRouting(): CategoryRun {
  const results: CaseResult[] = [];
  const uncompared: UncomparedCase[] = [];
  for (const t of routingTables) {
    // Istio repeats some row names in a table; the second is `name #2`, and so on.
    const seen = new Map<string, number>();
    for (const row of t.rows) {
      const n = (seen.get(String(row.name)) ?? 0) + 1;
      seen.set(String(row.name), n);
      const id = `routing/${t.test}/${String(row.name)}${n === 1 ? '' : ` #${n}`}`;
      const source = `${t.source}:${row.line}`;
      if (t.test.startsWith('TestName')) {
        const { got, detail, how } = hostRow(t, row);
        const expected = String(row.out);
        results.push({ id, category: 'routing', group: `${t.test} (${how})`, expected, got, agree: got === expected, source, detail });
      } else {
        const { expected, got } = mergeRow(t, row);
        results.push({ id, category: 'routing', group: t.test, expected, got, agree: got === expected, source, detail: got });
      }
    }
  }
  for (const c of ROUTING_CASES) {
    const { got, detail } = routeCase(c);
    const expected = JSON.stringify(c.expect);
    results.push({ id: `routing/${c.test}/${c.name}`, category: 'routing', group: c.test, expected, got, agree: got === expected, source: c.source, detail });
  }
  for (const d of DOMAINS_NOT_COMPARED) {
    for (let i = 1; i <= d.domains; i++) uncompared.push({ id: `routing/TestGenerateVirtualHostDomains/${d.row} #${i}`, category: 'routing', reason: `TestGenerateVirtualHostDomains: ${d.why}` });
  }
  for (const d of DUPLICATES_NOT_COMPARED) {
    for (let i = 1; i <= d.domains; i++) uncompared.push({ id: `routing/TestSidecarOutboundHTTPRouteConfigWithDuplicateHosts/${d.row} #${i}`, category: 'routing', reason: `TestSidecarOutboundHTTPRouteConfigWithDuplicateHosts: ${d.why}` });
  }
  for (const s of ROUTE_TEST_NOT_COMPARED) uncompared.push({ id: `routing/TestBuildHTTPRoutes/${s.name}`, category: 'routing', reason: `TestBuildHTTPRoutes "${s.name}": ${s.why}` });
  return { category: 'routing', results, uncompared };
}
