/**
 * MeshConfig's `defaultHttpRetryPolicy` (compileSnapshot's `defaultHttpRetryPolicy`): the retry
 * policy of every route without `retries`, as istiod builds routes (route.go: `in.Retries`, else
 * `mesh.defaultHttpRetryPolicy`, through retry.ConvertPolicy; BuildDefaultHTTPOutboundRoute for
 * a service without a VirtualService) — VirtualService rules, Gateway API HTTPRoute and GRPCRoute
 * rules (istiod converts them to VirtualService rules without `retries` unless `retry` is given).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../test/helpers/config.ts';
import { decide, req } from '../../test/helpers/route-decisions.ts';
import type { HTTPRetry } from '../config/types/networking.ts';
import { compileSnapshot, type Snapshot } from './compile.ts';
import { describeRoute } from './route-table.ts';
import { retryToString } from './route-policy.ts';
import { virtualHostView } from './views.ts';

const NET = 'networking.istio.io/v1';
const GW = 'gateway.networking.k8s.io/v1';
const REVIEWS = doc(NET, 'ServiceEntry', 'reviews', 'hosts: [reviews.default.svc.cluster.local]\nlocation: MESH_INTERNAL\nresolution: STATIC\nports:\n- {number: 9080, name: http, protocol: HTTP}\nendpoints:\n- {address: 10.0.0.1}');
const RATINGS = doc(NET, 'ServiceEntry', 'ratings', 'hosts: [ratings.default.svc.cluster.local]\nlocation: MESH_INTERNAL\nresolution: STATIC\nports:\n- {number: 9080, name: http, protocol: HTTP}\nendpoints:\n- {address: 10.0.1.1}');
const ECHO = doc('v1', 'Service', 'echo', 'selector: {app: echo}\nports: [{name: grpc, port: 9090}]');
const DETAILS = doc('v1', 'Service', 'details', 'selector: {app: details}\nports: [{name: http, port: 9080}]');
const oneRule = (rule: string) => doc(NET, 'VirtualService', 'reviews', `hosts: [reviews]\nhttp:\n- ${rule}`);

const MESH_DEFAULT: HTTPRetry = { attempts: 4, retryOn: '5xx,reset', perTryTimeout: '2s' };

/** Compiled with `defaultHttpRetryPolicy` (null: none). */
function compile(docs: readonly string[], defaultHttpRetryPolicy: HTTPRetry | null = MESH_DEFAULT): Snapshot {
  const { resources, errors } = validateYaml(docs.join('---\n'));
  assert.deepEqual(errors, []);
  return compileSnapshot(resources, { service: 'productpage' }, { defaultHttpRetryPolicy: defaultHttpRetryPolicy ?? undefined });
}

describe('compileSnapshot({ defaultHttpRetryPolicy })', () => {
  it('a VirtualService rule without retries gets it; a rule with retries keeps its own, wholly (unset fields are Istio defaults, not the mesh default\'s)', () => {
    const vs = doc(NET, 'VirtualService', 'reviews', 'hosts: [reviews]\nhttp:\n- match: [{uri: {prefix: /own}}]\n  route: [{destination: {host: reviews}}]\n  retries: {attempts: 1}\n- route: [{destination: {host: reviews}}]');
    const snap = compile([REVIEWS, vs]);
    const [own, none] = snap.routes.virtualHost('reviews')?.routes ?? [];
    assert.ok(own && none);
    assert.equal(none.retry.attempts, 4);
    assert.deepEqual([...none.retry.retryOn].sort(), ['5xx', 'reset']);
    assert.equal(none.retry.perTryTimeoutMs, 2000);
    assert.equal(none.retry.isDefault, true);
    assert.equal(none.retry.meshDefault, true);
    assert.equal(own.retry.attempts, 1);
    assert.deepEqual([...own.retry.retryOn].sort(), ['cancelled', 'connect-failure', 'refused-stream', 'retriable-status-codes', 'unavailable'], "the route's retries leave retryOn unset: Istio's default conditions, not the mesh default's 5xx,reset");
    assert.equal(own.retry.perTryTimeoutMs, undefined);
    assert.equal(own.retry.isDefault, false);
    assert.equal(own.retry.meshDefault, undefined);
  });

  it('the default route of a service without a VirtualService gets it (istiod BuildDefaultHTTPOutboundRoute)', () => {
    const r = compile([REVIEWS, RATINGS]).routes.virtualHost('ratings:9080')?.routes[0];
    assert.equal(r?.name, 'default');
    assert.equal(r?.retry.attempts, 4);
    assert.equal(r?.retry.meshDefault, true);
  });

  it('attempts 0, or attempts unset, turns the default retries off (retry.ConvertPolicy: attempts <= 0 is no policy)', () => {
    for (const off of [{ attempts: 0 }, {}] as HTTPRetry[]) {
      const snap = compile([REVIEWS, RATINGS, oneRule('route: [{destination: {host: reviews}}]')], off);
      for (const host of ['reviews', 'ratings:9080']) {
        const r = snap.routes.virtualHost(host)?.routes[0];
        assert.equal(r?.retry.attempts, 0, `${host} with ${JSON.stringify(off)}`);
        assert.equal(r?.retry.perTryTimeoutMs, undefined);
        assert.equal(retryToString(r.retry), 'retries off (mesh defaultHttpRetryPolicy)');
      }
    }
  });

  it('fields not given keep Istio\'s defaults: retryOn, backoff, previous-host avoidance', () => {
    const snap = compile([REVIEWS, RATINGS, oneRule('route: [{destination: {host: reviews}}]')], { attempts: 3 });
    // A VirtualService rule's policy leaves the previous-hosts predicate out under consistent hashing (retry.ConvertPolicy);
    // the default route's keeps it (BuildDefaultHTTPOutboundRoute converts it without the hash policy).
    assert.equal(snap.routes.virtualHost('ratings:9080')?.routes[0]?.retry.retryIgnorePreviousHostsSet, true);
    const r = snap.routes.virtualHost('reviews')?.routes[0];
    assert.equal(r?.retry.attempts, 3);
    assert.deepEqual([...(r?.retry.retryOn ?? [])].sort(), ['cancelled', 'connect-failure', 'refused-stream', 'retriable-status-codes', 'unavailable']);
    assert.equal(r?.retry.retriableStatusCodes.size, 0);
    assert.equal(r?.retry.backoffBaseMs, 25);
    assert.equal(r?.retry.retryIgnorePreviousHosts, true);
    assert.equal(r?.retry.retryIgnorePreviousHostsSet, false);
  });

  it('without it, Istio\'s default policy as before', () => {
    const r = compile([REVIEWS, RATINGS], null).routes.virtualHost('ratings:9080')?.routes[0];
    assert.equal(r?.retry.attempts, 2);
    assert.equal(r?.retry.isDefault, true);
    assert.equal(r?.retry.meshDefault, undefined);
    assert.match(retryToString(r.retry), /\(Istio default\)$/);
  });

  it('an HTTPRoute rule without retry gets it; one with retry keeps its own (istiod conversion.go)', () => {
    const route = doc(GW, 'HTTPRoute', 'details', 'parentRefs: [{group: "", kind: Service, name: details}]\nrules:\n- matches: [{path: {type: PathPrefix, value: /own}}]\n  retry: {attempts: 1, codes: [502]}\n  backendRefs: [{name: details, port: 9080}]\n- backendRefs: [{name: details, port: 9080}]');
    const snap = compile([DETAILS, route]);
    assert.equal(decide(snap, req('details:9080', '/own')).route.retry.attempts, 1);
    assert.deepEqual([...decide(snap, req('details:9080', '/own')).route.retry.retriableStatusCodes], [502]);
    const other = decide(snap, req('details:9080', '/other')).route.retry;
    assert.equal(other.attempts, 4);
    assert.equal(other.meshDefault, true);
  });

  it('a GRPCRoute rule (it has no retry field) gets it', () => {
    const route = doc(GW, 'GRPCRoute', 'echo', 'parentRefs: [{group: "", kind: Service, name: echo, port: 9090}]\nrules:\n- backendRefs: [{name: echo, port: 9090}]');
    const r = decide(compile([ECHO, route]), req('echo:9090', '/meshlet.test.Echo/Unary')).route.retry;
    assert.equal(r.attempts, 4);
    assert.equal(r.meshDefault, true);
  });

  it('the egress proxy route (allow_any) stays without retries, as istiod builds it', () => {
    const gw = doc(NET, 'ServiceEntry', 'egw', 'hosts: [egw.istio-system.svc.cluster.local]\nlocation: MESH_INTERNAL\nresolution: STATIC\nports:\n- {number: 80, name: http, protocol: HTTP}\nendpoints:\n- {address: 10.0.9.9}');
    const sidecar = doc(NET, 'Sidecar', 'default', 'egress:\n- hosts: ["./*", "default/egw.istio-system.svc.cluster.local"]\noutboundTrafficPolicy:\n  mode: ALLOW_ANY\n  egressProxy: {host: egw.istio-system.svc.cluster.local, port: {number: 80}}');
    const p = compile([REVIEWS, gw, sidecar]).sidecar?.outboundTrafficPolicy;
    assert.equal(p?.egressProxy?.route.retry.attempts, 0);
  });

  it('the route table and its view say where the policy comes from', () => {
    const snap = compile([REVIEWS, RATINGS]);
    const r = snap.routes.virtualHost('ratings:9080')?.routes[0];
    assert.ok(r);
    assert.equal(retryToString(r.retry), 'retries 4× on 5xx,reset, perTry 2000ms (mesh defaultHttpRetryPolicy)');
    assert.match(describeRoute(r), /retries 4× on 5xx,reset, perTry 2000ms \(mesh defaultHttpRetryPolicy\)/);
    const vh = snap.routes.virtualHost('ratings:9080');
    assert.ok(vh);
    const view = virtualHostView(vh).routes[0]?.retries;
    assert.equal(view?.istioDefault, false);
    assert.equal(view?.meshDefault, true);
    assert.equal(view?.attempts, 4);
  });

  it('one compiled policy object for the same mesh default (routes compiled again share it)', () => {
    const a = compile([REVIEWS, RATINGS]).routes.virtualHost('ratings:9080')?.routes[0]?.retry;
    const b = compile([REVIEWS, RATINGS]).routes.virtualHost('reviews:9080')?.routes[0]?.retry;
    assert.equal(a, b);
  });
});
