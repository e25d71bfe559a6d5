/**
 * Compiling YAML documents into a snapshot and asking its route table, for the route-compile
 * tests (src/routing/compile*.test.ts).
 */
import assert from 'node:assert/strict';
import { compileSnapshot, type Snapshot, type WorkloadInfo } from '../../src/routing/compile.ts';
import type { RequestHead } from '../../src/routing/request-head.ts';
import { NO_ROUTE, type RouteDecision } from '../../src/routing/route-table.ts';
import { doc, validateYaml } from './config.ts';

/** The snapshot of `docs` (YAML documents, which must validate) for workload `wl`. */
export function compile(docs: readonly string[], wl: WorkloadInfo = { service: 'productpage' }): Snapshot {
  const { resources, errors } = validateYaml(docs.join('---\n'));
  assert.deepEqual(errors, []);
  return compileSnapshot(resources, wl);
}

/** A GET request head. */
export function req(authority: string, path = '/', headers: Record<string, string> = {}): RequestHead {
  return { method: 'GET', scheme: 'http', authority, path, headers };
}

/** The route decision for `h` (fails the test when there is none). */
export function decide(s: Snapshot, h: RequestHead, draw = 0): RouteDecision {
  const d = s.routes.route(h, draw);
  if (d === undefined || d === NO_ROUTE) assert.fail(`no decision for ${h.authority}${h.path}: ${String(d)}`);
  return d;
}

/** The subset the request is sent to ('' for none, 'NO_ROUTE', or 'unknown host'). */
export function subsetOf(s: Snapshot, h: RequestHead, draw = 0): string {
  const d = s.routes.route(h, draw);
  if (d === undefined) return 'unknown host';
  if (d === NO_ROUTE) return 'NO_ROUTE';
  return d.target?.subset ?? '';
}

export const NET = 'networking.istio.io/v1';

/** A MESH_INTERNAL STATIC ServiceEntry. */
export const se = (name: string, ns: string, host: string, ports: string, endpoints: string): string =>
  doc(NET, 'ServiceEntry', name, `hosts: [${host}]\nlocation: MESH_INTERNAL\nresolution: STATIC\nports:\n${ports}\nendpoints:\n${endpoints}`, ns);

/** Bookinfo's reviews (v1, v2, v3), ratings and details (ports 9080 and 9090) as ServiceEntries. */
export const REVIEWS = se(
  'reviews',
  'default',
  'reviews.default.svc.cluster.local',
  '- {number: 9080, name: http, protocol: HTTP}',
  ['v1', 'v2', 'v3'].map((v, i) => `- {address: 10.0.0.${i + 1}, labels: {app: reviews, version: ${v}}}`).join('\n'),
);
export const RATINGS = se('ratings', 'default', 'ratings.default.svc.cluster.local', '- {number: 9080, name: http, protocol: HTTP}', '- {address: 10.0.1.1, labels: {version: v1}}');
export const DETAILS = se(
  'details',
  'default',
  'details.default.svc.cluster.local',
  '- {number: 9080, name: http, protocol: HTTP}\n- {number: 9090, name: http-admin, protocol: HTTP}',
  '- {address: 10.0.2.1, labels: {version: v1}}\n- {address: 10.0.2.2, labels: {version: v2}}',
);
/** A DestinationRule with subsets v1, v2, v3 by `version`. */
export const SUBSETS = (host: string, ns = 'default'): string =>
  doc(NET, 'DestinationRule', host, `host: ${host}\nsubsets:\n- {name: v1, labels: {version: v1}}\n- {name: v2, labels: {version: v2}}\n- {name: v3, labels: {version: v3}}`, ns);
export const vs = (name: string, spec: string, ns = 'default'): string => doc(NET, 'VirtualService', name, spec, ns);
/** A route destination: `subset` of `host`. */
export const to = (subset: string, host = 'reviews'): string => `{destination: {host: ${host}, subset: ${subset}}}`;
