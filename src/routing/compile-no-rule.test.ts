/**
 * Compiling a VirtualService none of whose rules applies to a workload or port (istiod gives the
 * service its default route there), and an `https://` call without a port (the port-443 virtual
 * host).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc } from '../../test/helpers/config.ts';
import { compile, DETAILS, decide, NET, RATINGS, REVIEWS, req, SUBSETS, subsetOf, to, vs } from '../../test/helpers/route-decisions.ts';
import type { RequestHead } from './request-head.ts';





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
    // Such a host is routed on port 80 (istiod's port-80 route table, there when some HTTP service has port 80).
    const web = doc(NET, 'ServiceEntry', 'web', 'hosts: [web.default.svc.cluster.local]\nlocation: MESH_INTERNAL\nresolution: STATIC\nports: [{number: 80, name: http, protocol: HTTP}]\nendpoints: [{address: 10.0.9.1}]');
    assert.equal(compile([RATINGS, web, external], { service: 'web', labels: { app: 'web' } }).routes.route(req('api.example.com'), 0), undefined);
    assert.equal(decide(compile([RATINGS, web, external], { service: 'productpage', labels: { app: 'productpage' } }), req('api.example.com')).target?.host, 'ratings.default.svc.cluster.local');
  });
});

describe('compileSnapshot: a second VirtualService for the host routes where the first makes no route', () => {
  // istiod builds no virtual host from a VirtualService without routes for the port or workload
  // (route.go buildSidecarVirtualHostsForVirtualService returns none) and dedupes virtual hosts by
  // domain afterwards (httproute.go), so the next VirtualService for the host takes that port.
  const first = doc(NET, 'VirtualService', 'a-first', `hosts: [details]\nhttp:\n- match: [{port: 9090}]\n  route: [${to('v2', 'details')}]`);
  const second = doc(NET, 'VirtualService', 'b-second', `hosts: [details]\nhttp:\n- route: [${to('v3', 'details')}]`);
  it('port 9090 by the first, any other port by the second (not the default route)', () => {
    const s = compile([DETAILS, SUBSETS('details'), first, second]);
    assert.equal(subsetOf(s, req('details:9090')), 'v2');
    assert.equal(subsetOf(s, req('details:9080')), 'v3');
  });
});

describe('compileSnapshot: a wildcard VirtualService does not route a port an exact one leaves to the service', () => {
  // istiod ties a service to the VirtualService naming it, else to its most specific wildcard one
  // (sidecar.go computeWildcardHostVirtualServiceIndex); separateVSHostsAndServices (route.go) skips
  // the service for every other wildcard VirtualService, so those never route it.
  const exact = doc(NET, 'VirtualService', 'a-exact', `hosts: [details]\nhttp:\n- match: [{port: 9090}]\n  route: [${to('v2', 'details')}]`);
  const wild = doc(NET, 'VirtualService', 'b-wild', `hosts: ['*.default.svc.cluster.local']\nhttp:\n- route: [${to('v3', 'details')}]`);
  const wider = doc(NET, 'VirtualService', 'c-wider', `hosts: ['*.svc.cluster.local']\nhttp:\n- route: [${to('v1', 'details')}]`);
  const narrowPort = doc(NET, 'VirtualService', 'd-narrow', `hosts: ['*.default.svc.cluster.local']\nhttp:\n- match: [{port: 9090}]\n  route: [${to('v2', 'details')}]`);
  it('port 9090 by the exact VirtualService, port 9080 by the service itself (not the wildcard)', () => {
    const s = compile([DETAILS, SUBSETS('details'), exact, wild]);
    assert.equal(subsetOf(s, req('details:9090')), 'v2');
    assert.equal(decide(s, req('details:9080')).route.name, 'default');
  });
  it('only the most specific wildcard VirtualService routes the service', () => {
    const s = compile([DETAILS, SUBSETS('details'), narrowPort, wider]);
    assert.equal(subsetOf(s, req('details:9090')), 'v2');
    assert.equal(decide(s, req('details:9080')).route.name, 'default');
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
