/**
 * Compiling a VirtualService none of whose rules applies to a workload or port (istiod gives the
 * service its default route there), and an `https://` call without a port (the port-443 virtual
 * host).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, } from '../../test/helpers/config.ts';
import { compile, decide, req } from '../../test/helpers/route-decisions.ts';
import type { Snapshot, } from './compile.ts';
import type { RequestHead } from './request-head.ts';
import { NO_ROUTE, } from './route-table.ts';

const NET = 'networking.istio.io/v1';


/** The subset the request is sent to ('' for none, 'NO_ROUTE', or 'unknown host'). */
function subsetOf(s: Snapshot, h: RequestHead, draw = 0): string {
  const d = s.routes.route(h, draw);
  if (d === undefined) return 'unknown host';
  if (d === NO_ROUTE) return 'NO_ROUTE';
  return d.target?.subset ?? '';
}

const se = (name: string, ns: string, host: string, ports: string, endpoints: string) =>
  doc(NET, 'ServiceEntry', name, `hosts: [${host}]\nlocation: MESH_INTERNAL\nresolution: STATIC\nports:\n${ports}\nendpoints:\n${endpoints}`, ns);
const REVIEWS = se(
  'reviews',
  'default',
  'reviews.default.svc.cluster.local',
  '- {number: 9080, name: http, protocol: HTTP}',
  ['v1', 'v2', 'v3'].map((v, i) => `- {address: 10.0.0.${i + 1}, labels: {app: reviews, version: ${v}}}`).join('\n'),
);
const RATINGS = se('ratings', 'default', 'ratings.default.svc.cluster.local', '- {number: 9080, name: http, protocol: HTTP}', '- {address: 10.0.1.1, labels: {version: v1}}');
const DETAILS = se(
  'details',
  'default',
  'details.default.svc.cluster.local',
  '- {number: 9080, name: http, protocol: HTTP}\n- {number: 9090, name: http-admin, protocol: HTTP}',
  '- {address: 10.0.2.1, labels: {version: v1}}\n- {address: 10.0.2.2, labels: {version: v2}}',
);
const SUBSETS = (host: string, ns = 'default') =>
  doc(NET, 'DestinationRule', host, `host: ${host}\nsubsets:\n- {name: v1, labels: {version: v1}}\n- {name: v2, labels: {version: v2}}\n- {name: v3, labels: {version: v3}}`, ns);
const vs = (name: string, spec: string, ns = 'default') => doc(NET, 'VirtualService', name, spec, ns);
const to = (subset: string, host = 'reviews') => `{destination: {host: ${host}, subset: ${subset}}}`;

describe('compileSnapshot: a VirtualService with no rule for this workload or port (istiod: the default route)', () => {
  // istiod's BuildHTTPRoutesForVirtualService makes no routes when every match block names
  // another port, other sourceLabels or another sourceNamespace; BuildSidecarVirtualHostWrapper
  // then builds the service's default virtual host for that port, as without a VirtualService.
  const onlyPort = vs('details', `hosts: [details]\nhttp:\n- match: [{port: 9090}]\n  route: [${to('v2', 'details')}]`);
  const onlyLabels = vs('reviews', `hosts: [reviews]\nhttp:\n- match: [{sourceLabels: {app: productpage}}]\n  fault: {abort: {httpStatus: 500, percentage: {value: 100}}}\n  route: [${to('v2')}]`);
  const onlyShop = vs('reviews', `hosts: [reviews]\nhttp:\n- match: [{sourceNamespace: shop}]\n  route: [${to('v3')}]`);

  it('a port none of its rules names gets the default route, not 404 NR', () => {
    const s = compile([DETAILS, SUBSETS('details'), onlyPort]);
    assert.equal(subsetOf(s, req('details:9090')), 'v2');
    const d = decide(s, req('details:9080'));
    assert.equal(d.route.name, 'default');
    assert.equal(d.target?.cluster?.name, 'outbound|9080||details.default.svc.cluster.local');
    assert.equal(s.routes.virtualHost('details:9080')?.virtualService, undefined, 'not routed by the VirtualService on that port');
  });

  it('a workload its sourceLabels or sourceNamespace do not select gets the default route', () => {
    const other = compile([REVIEWS, SUBSETS('reviews'), onlyLabels], { service: 'ratings', labels: { app: 'ratings' } });
    assert.equal(decide(other, req('reviews')).route.name, 'default');
    assert.equal(decide(other, req('reviews')).route.fault, undefined);
    const selected = compile([REVIEWS, SUBSETS('reviews'), onlyLabels], { service: 'productpage', labels: { app: 'productpage' } });
    assert.equal(subsetOf(selected, req('reviews')), 'v2');
    assert.equal(decide(compile([REVIEWS, SUBSETS('reviews'), onlyShop]), req('reviews')).route.name, 'default');
    assert.equal(subsetOf(compile([REVIEWS, SUBSETS('reviews'), onlyShop], { service: 'web', namespace: 'shop' }), req('reviews.default')), 'v3');
  });

  it('a VirtualService host without a service and without a rule for this workload is outside the mesh (no virtual host)', () => {
    const external = vs('ext', `hosts: [api.example.com]\nhttp:\n- match: [{sourceLabels: {app: productpage}}]\n  route: [{destination: {host: ratings}}]`);
    assert.equal(compile([RATINGS, external], { service: 'web', labels: { app: 'web' } }).routes.route(req('api.example.com'), 0), undefined);
    assert.equal(decide(compile([RATINGS, external], { service: 'productpage', labels: { app: 'productpage' } }), req('api.example.com')).target?.host, 'ratings.default.svc.cluster.local');
  });
});

describe('compileSnapshot: an https:// call without a port (Istio egress: a ServiceEntry with ports 80 and 443)', () => {
  const cnn = doc(NET, 'ServiceEntry', 'cnn', 'hosts: [edition.cnn.com]\nresolution: DNS\nports:\n- {number: 80, name: http-port, protocol: HTTP}\n- {number: 443, name: https, protocol: HTTPS}');
  const https = (authority: string): RequestHead => ({ ...req(authority), scheme: 'https' });
  it('connects to 443, so it takes the port-443 virtual host, not the port-80 one', () => {
    const s = compile([cnn]);
    assert.equal(decide(s, https('edition.cnn.com')).target?.cluster?.name, 'outbound|443||edition.cnn.com');
    assert.equal(decide(s, https('EDITION.cnn.com')).target?.cluster?.name, 'outbound|443||edition.cnn.com');
    assert.equal(decide(s, req('edition.cnn.com')).target?.cluster?.name, 'outbound|80||edition.cnn.com');
    assert.equal(decide(s, https('edition.cnn.com:80')).target?.cluster?.name, 'outbound|80||edition.cnn.com');
  });
  it('a service without port 443 is still reached by its portless name', () => {
    assert.equal(decide(compile([RATINGS]), https('ratings')).target?.cluster?.name, 'outbound|9080||ratings.default.svc.cluster.local');
  });
});
