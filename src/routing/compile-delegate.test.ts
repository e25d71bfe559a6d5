import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../test/helpers/config.ts';
import { compileSnapshot, type Snapshot, type WorkloadInfo } from './compile.ts';
import { NO_ROUTE } from './route-table.ts';

const NET = 'networking.istio.io/v1';

function compile(docs: readonly string[], wl: WorkloadInfo = { service: 'productpage' }): Snapshot {
  const { resources, errors } = validateYaml(docs.join('---\n'));
  assert.deepEqual(errors, []);
  return compileSnapshot(resources, wl);
}

/** Where a request goes: `host|subset` of the target, the route name, or NO_ROUTE. */
function where(s: Snapshot, path: string, headers: Record<string, string> = {}, authority = 'reviews'): string {
  const d = s.routes.route({ method: 'GET', scheme: 'http', authority, path, headers }, 0);
  if (d === undefined) return 'unknown host';
  if (d === NO_ROUTE) return 'NO_ROUTE';
  return `${d.route.name} → ${d.target?.host ?? d.route.action}${d.target?.subset ? `|${d.target.subset}` : ''}`;
}

const se = (name: string, ns: string) =>
  doc(NET, 'ServiceEntry', name, `hosts: [${name}.${ns}.svc.cluster.local]\nlocation: MESH_INTERNAL\nresolution: STATIC\nports: [{number: 9080, name: http, protocol: HTTP}]\nendpoints:\n- {address: 10.0.0.1, labels: {version: v1}}\n- {address: 10.0.0.2, labels: {version: v2}}`, ns);
const SUBSETS = doc(NET, 'DestinationRule', 'reviews', 'host: reviews\nsubsets:\n- {name: v1, labels: {version: v1}}\n- {name: v2, labels: {version: v2}}');
const ROOT = doc(
  NET,
  'VirtualService',
  'reviews',
  `hosts: [reviews]
http:
- name: api
  match: [{uri: {prefix: /api}}]
  timeout: 3s
  retries: {attempts: 5, retryOn: 5xx}
  delegate: {name: reviews-api, namespace: team}
- name: rest
  route: [{destination: {host: reviews, subset: v1}}]`,
);
const CHILD = doc(
  NET,
  'VirtualService',
  'reviews-api',
  `http:
- name: v2
  match: [{uri: {prefix: /api/v2}}, {headers: {end-user: {exact: jason}}}]
  route: [{destination: {host: reviews.default.svc.cluster.local, subset: v2}}]
- name: tools
  match: [{uri: {prefix: /api/tools}}]
  timeout: 1s
  route: [{destination: {host: tools}}]
- name: other
  route: [{destination: {host: reviews.default.svc.cluster.local, subset: v1}}]`,
  'team',
);
const BASE = [se('reviews', 'default'), se('tools', 'team'), SUBSETS];

describe('compileSnapshot: delegate VirtualServices (Istio mergeVirtualServices)', () => {
  const snap = compile([...BASE, ROOT, CHILD]);
  const rows: { name: string; path: string; headers?: Record<string, string>; want: string }[] = [
    { name: 'a child rule inside the root prefix', path: '/api/v2/x', want: 'reviews.api-v2 → reviews.default.svc.cluster.local|v2' },
    { name: 'a child header match, bounded by the root prefix', path: '/api/x', headers: { 'end-user': 'jason' }, want: 'reviews.api-v2 → reviews.default.svc.cluster.local|v2' },
    { name: 'the child header match does not escape the root prefix', path: '/web', headers: { 'end-user': 'jason' }, want: 'reviews.rest → reviews.default.svc.cluster.local|v1' },
    { name: 'a short host of the delegate resolves in the delegate\'s namespace', path: '/api/tools/1', want: 'reviews.api-tools → tools.team.svc.cluster.local' },
    { name: 'the child catch-all takes the root\'s match', path: '/api/other', want: 'reviews.api-other → reviews.default.svc.cluster.local|v1' },
    { name: 'outside the root match, the root\'s next rule', path: '/', want: 'reviews.rest → reviews.default.svc.cluster.local|v1' },
  ];
  for (const r of rows) it(`${r.name}: ${r.path}`, () => assert.equal(where(snap, r.path, r.headers), r.want));

  it('a child rule inherits the root\'s timeout and retries unless it sets its own', () => {
    const routes = snap.routes.virtualHost('reviews')?.routes ?? [];
    const byName = new Map(routes.map((r) => [r.name, r]));
    assert.equal(byName.get('reviews.api-v2')?.timeoutMs, 3000);
    assert.equal(byName.get('reviews.api-v2')?.retry.attempts, 5);
    assert.equal(byName.get('reviews.api-tools')?.timeoutMs, 1000);
  });

  it('a missing delegate drops only its rule', () => {
    const s = compile([...BASE, ROOT]);
    assert.equal(where(s, '/api/v2/x'), 'reviews.rest → reviews.default.svc.cluster.local|v1');
  });

  it('a delegate not exported to the root\'s namespace drops its rule', () => {
    const hidden = CHILD.replace('  http:\n', '  exportTo: ["."]\n  http:\n');
    const s = compile([...BASE, ROOT, hidden]);
    assert.equal(where(s, '/api/v2/x'), 'reviews.rest → reviews.default.svc.cluster.local|v1');
  });

  it('a delegate on its own routes nothing (it has no hosts)', () => {
    const s = compile([...BASE, CHILD]);
    assert.equal(where(s, '/api/v2/x'), 'default → reviews.default.svc.cluster.local');
  });

  it('a child rule whose match falls outside the root\'s is dropped', () => {
    const outside = doc(NET, 'VirtualService', 'reviews-api', 'http:\n- match: [{uri: {prefix: /web}}]\n  route: [{destination: {host: reviews.default.svc.cluster.local, subset: v2}}]', 'team');
    const s = compile([...BASE, ROOT, outside]);
    assert.equal(where(s, '/web/x'), 'reviews.rest → reviews.default.svc.cluster.local|v1');
    assert.equal(where(s, '/api/x'), 'reviews.rest → reviews.default.svc.cluster.local|v1');
  });
});
