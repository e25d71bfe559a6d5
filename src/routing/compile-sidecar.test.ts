/**
 * The snapshot of a workload a Sidecar applies to: the virtual hosts its egress listeners
 * import (per port), the VirtualServices they select, destinations outside the scope, and the
 * outboundTrafficPolicy (with egressProxy) it carries.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../test/helpers/config.ts';
import { compileSnapshot, type Snapshot, type WorkloadInfo } from './compile.ts';
import { NO_ROUTE, type RouteDecision } from './route-table.ts';

const NET = 'networking.istio.io/v1';
const REVIEWS = 'reviews.default.svc.cluster.local';
const RATINGS = 'ratings.other.svc.cluster.local';

function compile(docs: readonly string[], wl: WorkloadInfo = { service: 'productpage' }): Snapshot {
  const { resources, errors } = validateYaml(docs.join('---\n'));
  assert.deepEqual(errors, []);
  return compileSnapshot(resources, wl);
}

function decide(s: Snapshot, authority: string): RouteDecision | undefined {
  const d = s.routes.route({ method: 'GET', scheme: 'http', authority, path: '/', headers: {} }, 0);
  assert.notEqual(d, NO_ROUTE);
  return d === NO_ROUTE ? undefined : d;
}

const se = (name: string, ns: string, host: string, ports: readonly number[]) =>
  doc(NET, 'ServiceEntry', name, `hosts: [${host}]\nlocation: MESH_INTERNAL\nresolution: STATIC\nports:\n${ports.map((p) => `- {number: ${p}, name: http-${p}, protocol: HTTP}`).join('\n')}\nendpoints:\n- {address: 10.0.0.1}`, ns);
const sidecar = (spec: string, ns = 'default', name = 'scope') => doc(NET, 'Sidecar', name, spec, ns);
const SERVICES = [se('reviews', 'default', REVIEWS, [9080, 9090]), se('ratings', 'other', RATINGS, [9080])];
const vhostNames = (s: Snapshot) => s.routes.virtualHosts.map((v) => v.name).sort();

describe('compile under a Sidecar', () => {
  it('without a Sidecar: every visible service, no applied Sidecar', () => {
    const s = compile(SERVICES);
    assert.deepEqual(vhostNames(s), [`${RATINGS}:9080`, `${REVIEWS}:9080`, `${REVIEWS}:9090`]);
    assert.equal(s.sidecar, undefined);
  });

  it('`./*` imports the namespace’s own services only', () => {
    const s = compile([...SERVICES, sidecar('egress:\n- hosts: ["./*"]')]);
    assert.deepEqual(vhostNames(s), [`${REVIEWS}:9080`, `${REVIEWS}:9090`]);
    assert.equal(s.sidecar?.ref, 'Sidecar default/scope');
    assert.equal(s.sidecar?.outboundTrafficPolicy, undefined, 'no outboundTrafficPolicy: the mesh’s applies');
    assert.equal(decide(s, 'ratings.other:9080'), undefined, 'out of scope: no route (passthrough or 502)');
  });

  it('an egress listener with a port exposes that port only; another listener can import more on its own port', () => {
    const s = compile([...SERVICES, sidecar('egress:\n- port: {number: 9080, protocol: HTTP, name: http}\n  hosts: ["*/*"]')]);
    assert.deepEqual(vhostNames(s), [`${RATINGS}:9080`, `${REVIEWS}:9080`]);
    assert.equal(decide(s, 'reviews:9090'), undefined);
    const two = compile([...SERVICES, sidecar('egress:\n- port: {number: 9080, protocol: HTTP, name: http}\n  hosts: ["other/*"]\n- hosts: ["./*"]')]);
    // 9080 is served by the first listener (other/*); the catch-all serves the other ports.
    assert.deepEqual(vhostNames(two), [`${RATINGS}:9080`, `${REVIEWS}:9090`]);
  });

  it('a Unix socket listener (port 0) serves no IP port: the catch-all after it does', () => {
    // A VirtualService only the socket listener selects routes nothing on an IP port either.
    const api = doc(NET, 'VirtualService', 'api', `hosts: [api.example.com]\nhttp:\n- route: [{destination: {host: ${RATINGS}}}]`, 'other');
    const s = compile([...SERVICES, api, sidecar('egress:\n- port: {number: 0, protocol: HTTP, name: uds}\n  bind: unix:///var/run/app/egress.sock\n  hosts: ["*/*"]\n- hosts: ["./*"]')]);
    assert.deepEqual(vhostNames(s), [`${REVIEWS}:9080`, `${REVIEWS}:9090`]);
    assert.equal(decide(s, 'ratings.other:9080'), undefined);
  });

  it('a listener whose port declares a non-HTTP protocol routes nothing on that port (istiod builds a TCP proxy there), whatever the services’ ports say', () => {
    const vs = doc(NET, 'VirtualService', 'reviews', 'hosts: [reviews, api.example.com]\nhttp:\n- name: r\n  route: [{destination: {host: reviews, port: {number: 9080}}}]');
    const tcp = compile([...SERVICES, vs, sidecar('egress:\n- port: {number: 9080, protocol: TCP, name: tcp}\n  hosts: ["*/*"]\n- hosts: ["./*"]')]);
    assert.deepEqual(vhostNames(tcp), ['api.example.com:9090', `${REVIEWS}:9090`], 'port 9080 is the TCP listener’s; the catch-all serves 9090');
    assert.equal(decide(tcp, 'reviews:9080'), undefined, 'no route: passes through (or 502 under REGISTRY_ONLY), as a TCP service port');
    assert.equal(decide(tcp, 'api.example.com:9080'), undefined);
    assert.equal(decide(tcp, 'reviews:9090')?.route.name, 'reviews.r');
    const mongo = compile([...SERVICES, sidecar('egress:\n- port: {number: 9080, protocol: MONGO, name: mongo}\n  hosts: ["*/*"]')]);
    assert.deepEqual(vhostNames(mongo), []);
    const tls = compile([...SERVICES, sidecar('egress:\n- port: {number: 9080, protocol: TLS, name: tls}\n  hosts: ["*/*"]')]);
    assert.deepEqual(vhostNames(tls), [`${RATINGS}:9080`, `${REVIEWS}:9080`], 'TLS is routed as HTTPS is: an https:// call is HTTP over the app\'s TLS (istiod proxies it by SNI)');
    const grpc = compile([...SERVICES, sidecar('egress:\n- port: {number: 9080, protocol: GRPC, name: grpc}\n  hosts: ["*/*"]')]);
    assert.deepEqual(vhostNames(grpc), [`${RATINGS}:9080`, `${REVIEWS}:9080`], 'gRPC is HTTP/2: routed');
  });

  it('each listener routes with the VirtualServices its hosts select', () => {
    const vs = doc(NET, 'VirtualService', 'reviews', 'hosts: [reviews]\nhttp:\n- name: pinned\n  route: [{destination: {host: reviews, port: {number: 9090}}}]');
    const s = compile([...SERVICES, vs, sidecar('egress:\n- hosts: ["./*", "other/*"]')]);
    assert.equal(decide(s, 'reviews:9080')?.route.name, 'reviews.pinned');
    // A VirtualService of another namespace is not selected by `./*`.
    const vsOther = doc(NET, 'VirtualService', 'ratings', `hosts: [${RATINGS}]\nhttp:\n- name: other\n  route: [{destination: {host: ${RATINGS}}}]`, 'other');
    const s2 = compile([...SERVICES, vsOther, sidecar('egress:\n- hosts: ["./*", "*/ratings.other.svc.cluster.local"]')]);
    assert.equal(decide(s2, 'ratings.other:9080')?.route.name, 'ratings.other');
    const s3 = compile([...SERVICES, vsOther, sidecar('egress:\n- hosts: ["./*", "default/ratings.other.svc.cluster.local"]')]);
    assert.equal(s3.routes.virtualHost('ratings.other:9080'), undefined, 'the service is imported from nowhere, the VirtualService neither');
  });

  it('a route to a service outside the scope has a missing cluster (503 NC), saying why', () => {
    const vs = doc(NET, 'VirtualService', 'reviews', `hosts: [reviews]\nhttp:\n- route: [{destination: {host: ${RATINGS}}}]`);
    // The VirtualService is in `default`, selected by `./*`: istiod adds the services it routes to (collectImportedServices).
    const s = compile([...SERVICES, vs, sidecar('egress:\n- hosts: ["./*"]')]);
    assert.equal(decide(s, 'reviews:9080')?.target?.cluster?.name, `outbound|9080||${RATINGS}`);
    // Through a port listener, a VirtualService destination keeps only the listener's port.
    const s2 = compile([...SERVICES, doc(NET, 'VirtualService', 'reviews', `hosts: [reviews]\nhttp:\n- route: [{destination: {host: ${RATINGS}, port: {number: 9080}}}]`), sidecar('egress:\n- port: {number: 9090, protocol: HTTP, name: http}\n  hosts: ["./*"]')]);
    assert.match(decide(s2, 'reviews:9090')?.target?.missing ?? '', /outside the egress hosts of Sidecar default\/scope/);
    assert.equal(s2.routes.virtualHost('reviews:9080'), undefined);
  });

  it('a port of a service outside the listener’s port is missing, saying so', () => {
    const vs = doc(NET, 'VirtualService', 'reviews', 'hosts: [reviews]\nhttp:\n- route: [{destination: {host: reviews, port: {number: 9090}}}]');
    const s = compile([...SERVICES, vs, sidecar('egress:\n- port: {number: 9080, protocol: HTTP, name: http}\n  hosts: ["./*"]')]);
    assert.match(decide(s, 'reviews:9080')?.target?.missing ?? '', /port 9090 of reviews\.default\.svc\.cluster\.local is outside the egress of Sidecar default\/scope/);
  });

  it('a VirtualService for a service the Sidecar does not import routes it on port 80 only (selectVirtualServices drops it on other ports)', () => {
    const vs = doc(NET, 'VirtualService', 'ratings-from-here', `hosts: [${RATINGS}]\nhttp:\n- name: here\n  route: [{destination: {host: ${RATINGS}}}]`);
    const s = compile([...SERVICES, vs, sidecar('egress:\n- hosts: ["./*"]')]);
    assert.equal(decide(s, 'ratings.other:9080'), undefined, 'no service of the listener on 9080 matches its hosts: istiod’s catch-all (502 or passthrough)');
    assert.equal(decide(s, 'ratings.other'), undefined, 'no listener on port 80 either: no service of the scope has port 80');
    // With a port-80 service in the listener, port 80 has a route table: the VirtualService host gets its port-80 virtual host.
    const web = se('web', 'default', 'web.default.svc.cluster.local', [80]);
    const s80 = compile([...SERVICES, web, vs, sidecar('egress:\n- hosts: ["./*"]')]);
    assert.equal(decide(s80, 'ratings.other')?.route.name, 'ratings-from-here.here');
    assert.equal(decide(s80, 'ratings.other:80')?.route.name, 'ratings-from-here.here');
    assert.equal(decide(s80, 'ratings.other:9080'), undefined);
    // A VirtualService that also names a service the listener imports on a port is kept there, with all its hosts.
    const both = doc(NET, 'VirtualService', 'both', `hosts: [${RATINGS}, reviews]\nhttp:\n- name: here\n  route: [{destination: {host: ${REVIEWS}}}]`);
    const s2 = compile([...SERVICES, both, sidecar('egress:\n- hosts: ["./*"]')]);
    assert.equal(decide(s2, 'ratings.other:9080')?.route.name, 'both.here');
    assert.equal(decide(s2, 'ratings.other:9090')?.route.name, 'both.here');
    assert.equal(decide(s2, 'ratings.other:8080'), undefined, 'no listener serves 8080');
  });

  it('a VirtualService-only host of the port-less listener is not routed on a port a listener with a port serves', () => {
    const vs = doc(NET, 'VirtualService', 'api', `hosts: [api.example.com]\nhttp:\n- name: r\n  match: [{port: 9080}]\n  route: [{destination: {host: ${REVIEWS}, port: {number: 9080}}}]\n- name: any\n  route: [{destination: {host: ${REVIEWS}, port: {number: 9080}}}]`);
    const web = se('web', 'default', 'web.default.svc.cluster.local', [80]);
    const s = compile([...SERVICES, web, vs, sidecar('egress:\n- port: {number: 9080, protocol: HTTP, name: http}\n  hosts: ["other/*"]\n- hosts: ["./*"]')]);
    assert.equal(decide(s, 'api.example.com:9080'), undefined, 'port 9080 uses the first listener’s VirtualServices only: istiod’s catch-all');
    assert.equal(decide(s, 'api.example.com:9090'), undefined, 'not port 80 and no service of the VirtualService');
    assert.equal(decide(s, 'api.example.com')?.route.name, 'api.any', 'port 80, served by the port-less listener');
    assert.deepEqual(
      vhostNames(s).filter((n) => n.startsWith('api.')),
      ['api.example.com:80'],
    );
  });

  it('a listener with a port routes a VirtualService-only host only on port 80 or beside a service of its hosts', () => {
    const api = doc(NET, 'VirtualService', 'api', `hosts: [api.example.com]\nhttp:\n- name: r\n  route: [{destination: {host: ${REVIEWS}, port: {number: 9080}}}]`);
    assert.equal(decide(compile([...SERVICES, api, sidecar('egress:\n- port: {number: 9080, protocol: HTTP, name: http}\n  hosts: ["./*"]')]), 'api.example.com:9080'), undefined);
    const on80 = compile([...SERVICES, api, sidecar('egress:\n- port: {number: 80, protocol: HTTP, name: http}\n  hosts: ["./*"]')]);
    assert.equal(decide(on80, 'api.example.com')?.route.name, 'api.r');
    assert.equal(decide(on80, 'api.example.com:80')?.route.name, 'api.r');
    const withService = doc(NET, 'VirtualService', 'api', `hosts: [api.example.com, reviews]\nhttp:\n- name: r\n  route: [{destination: {host: ${REVIEWS}, port: {number: 9080}}}]`);
    assert.equal(decide(compile([...SERVICES, withService, sidecar('egress:\n- port: {number: 9080, protocol: HTTP, name: http}\n  hosts: ["./*"]')]), 'api.example.com:9080')?.route.name, 'api.r');
  });

  it('a wildcard VirtualService host that matches a service of the port routes that service and gets no virtual host of its own there (separateVSHostsAndServices)', () => {
    const api = se('api', 'default', 'api.example.com', [9080]);
    const vs = doc(NET, 'VirtualService', 'wild', 'hosts: ["*.example.com"]\nhttp:\n- name: r\n  route: [{destination: {host: api.example.com}}]');
    const s = compile([...SERVICES, api, vs, sidecar('egress:\n- hosts: ["*/*"]')]);
    assert.equal(decide(s, 'api.example.com:9080')?.route.name, 'wild.r');
    assert.equal(s.routes.virtualHost('other.example.com:9080'), undefined, 'istiod: the catch-all (passthrough or 502)');
  });

  it('a name a VirtualService takes from a service (`test.default`, literally) is taken only on the ports the VirtualService is routed on', () => {
    const svc = se('test', 'default', 'test.default.svc.cluster.local', [80, 9080]);
    const vs = doc(NET, 'VirtualService', 'acme', 'hosts: [test.default]\nhttp:\n- name: r\n  route: [{destination: {host: test.default.svc.cluster.local, port: {number: 80}}}]');
    const s = compile([svc, vs, sidecar('egress:\n- hosts: ["./*"]')]);
    assert.equal(decide(s, 'test.default')?.route.name, 'acme.r');
    assert.equal(decide(s, 'test.default:80')?.route.name, 'acme.r');
    assert.equal(decide(s, 'test.default:9080')?.route.name, 'default', 'on 9080 the VirtualService is dropped: the service keeps the name');
  });

  it('a VirtualService for an imported service without HTTP ports makes no virtual host (the call passes through, as without a Sidecar)', () => {
    const db = doc(NET, 'ServiceEntry', 'db', 'hosts: [db.default.svc.cluster.local]\nlocation: MESH_INTERNAL\nresolution: STATIC\nports:\n- {number: 5432, name: tcp, protocol: TCP}\nendpoints:\n- {address: 10.0.0.9}');
    const vs = doc(NET, 'VirtualService', 'db', 'hosts: [db]\ntcp:\n- route: [{destination: {host: db}}]');
    assert.equal(compile([db, vs]).routes.virtualHost('db:5432'), undefined);
    assert.equal(compile([db, vs, sidecar('egress:\n- hosts: ["./*"]')]).routes.virtualHost('db:5432'), undefined);
  });

  it('outboundTrafficPolicy: the mode (REGISTRY_ONLY when unset, as the proto) and the egressProxy route (ALLOW_ANY only)', () => {
    const gw = se('egressgateway', 'istio-system', 'istio-egressgateway.istio-system.svc.cluster.local', [80, 443]);
    const proxy = 'egressProxy: {host: istio-egressgateway.istio-system.svc.cluster.local, port: {number: 80}}';
    const allow = compile([...SERVICES, gw, sidecar(`egress:\n- hosts: ["./*", "istio-system/*"]\noutboundTrafficPolicy:\n  mode: ALLOW_ANY\n  ${proxy}`)]);
    const p = allow.sidecar?.outboundTrafficPolicy;
    assert.equal(p?.mode, 'ALLOW_ANY');
    assert.equal(p?.source, 'Sidecar default/scope');
    assert.equal(p?.egressProxy?.route.name, 'allow_any');
    assert.equal(p?.egressProxy?.route.retry.attempts, 0, 'no retries, as Istio’s allow_any route');
    assert.equal(p?.egressProxy?.target?.cluster?.name, 'outbound|80||istio-egressgateway.istio-system.svc.cluster.local');
    assert.ok(allow.clusters.has('outbound|80||istio-egressgateway.istio-system.svc.cluster.local'));
    // egressProxy without ALLOW_ANY is refused by validation (Istio's ValidateSidecar); a policy without mode is REGISTRY_ONLY.
    const unset = compile([...SERVICES, gw, sidecar('outboundTrafficPolicy: {}')]);
    assert.equal(unset.sidecar?.outboundTrafficPolicy?.mode, 'REGISTRY_ONLY');
    assert.equal(unset.sidecar?.outboundTrafficPolicy?.egressProxy, undefined);
    // An egress proxy outside the scope: its cluster is missing (Envoy: 503 NC).
    const outside = compile([...SERVICES, gw, sidecar(`egress:\n- hosts: ["./*"]\noutboundTrafficPolicy:\n  mode: ALLOW_ANY\n  ${proxy}`)]);
    assert.match(outside.sidecar?.outboundTrafficPolicy?.egressProxy?.target?.missing ?? '', /outside the egress hosts/);
  });

  it('egressProxy: the host is used as written, as istiod does — a short name names no service (503 NC)', () => {
    const gw = se('egw', 'default', 'egw.default.svc.cluster.local', [80]);
    const short = compile([...SERVICES, gw, sidecar('egress:\n- hosts: ["./*"]\noutboundTrafficPolicy:\n  mode: ALLOW_ANY\n  egressProxy: {host: egw, port: {number: 80}}')]);
    const t = short.sidecar?.outboundTrafficPolicy?.egressProxy?.target;
    assert.equal(t?.cluster, undefined);
    assert.equal(t?.missing, 'egressProxy host egw is used as written, as istiod does (cluster outbound|80||egw), and no service has that host: write its full name (egw.default.svc.cluster.local)');
    const full = compile([...SERVICES, gw, sidecar('egress:\n- hosts: ["./*"]\noutboundTrafficPolicy:\n  mode: ALLOW_ANY\n  egressProxy: {host: egw.default.svc.cluster.local, port: {number: 80}}')]);
    assert.equal(full.sidecar?.outboundTrafficPolicy?.egressProxy?.target?.cluster?.name, 'outbound|80||egw.default.svc.cluster.local');
  });

  it('a workloadSelector Sidecar applies to the workloads it selects only', () => {
    const docs = [...SERVICES, sidecar('egress:\n- hosts: ["./*"]', 'default', 'ns-wide'), sidecar('workloadSelector: {labels: {app: wide}}\negress:\n- hosts: ["*/*"]', 'default', 'wide')];
    assert.equal(compile(docs, { service: 'a', labels: { app: 'wide' } }).sidecar?.ref, 'Sidecar default/wide');
    assert.equal(compile(docs, { service: 'a', labels: { app: 'wide' } }).routes.virtualHost('ratings.other:9080')?.name, `${RATINGS}:9080`);
    assert.equal(compile(docs, { service: 'b', labels: { app: 'narrow' } }).sidecar?.ref, 'Sidecar default/ns-wide');
    assert.equal(compile(docs, { service: 'b', labels: { app: 'narrow' } }).routes.virtualHost('ratings.other:9080'), undefined);
  });

  it('rootNamespace option: a mesh-wide default Sidecar', () => {
    const { resources } = validateYaml([...SERVICES, sidecar('egress:\n- hosts: ["./*"]', 'mesh-root', 'default')].join('---\n'));
    assert.equal(compileSnapshot(resources, { service: 'a' }).sidecar, undefined);
    assert.equal(compileSnapshot(resources, { service: 'a' }, { rootNamespace: 'mesh-root' }).sidecar?.ref, 'Sidecar mesh-root/default');
  });
});
