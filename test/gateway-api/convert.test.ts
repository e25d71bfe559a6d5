/**
 * One HTTPRoute rule as the Istio route istiod makes of it (conversion.go `convertHTTPRoute` and
 * its filters), row by row: timeouts (backendRequest is the per-try timeout under a retry, the
 * route timeout otherwise), retry (2 attempts by default, connection errors always retried, the
 * codes added), mirrors with percent and fraction, redirects (the request's port kept unless a
 * scheme is set), header modifiers (the first of equal names wins), weights (weight-0 backends
 * dropped, a single backend unweighted), rule names, and a parent port on every match.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gatewayRouteVirtualServices, routeVirtualServices } from '../../src/config/gateway-api/mesh-routes.ts';
import { IssueList } from '../../src/config/issues.ts';
import { meshVirtualServices } from '../../src/routing/virtual-services.ts';
import { validateDocuments } from '../../src/config/validate/index.ts';

const SERVICES = ['reviews', 'reviews-v1', 'reviews-v2', 'mirror'].map((name) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { selector: { app: name }, ports: [{ name: 'http', port: 9080 }] } }));

function http(rule: object, parent: object = {}): unknown[] {
  const route = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'r', namespace: 'default' },
    spec: { parentRefs: [{ group: '', kind: 'Service', name: 'reviews', ...parent }], rules: [rule] },
  };
  const { resources, issues } = validateDocuments([...SERVICES, route].map((value) => ({ value, source: { file: 'test' } })));
  assert.deepEqual(issues.ofLevel('error').map(String), []);
  const vs = gatewayRouteVirtualServices(resources)[0];
  assert.ok(vs !== undefined, 'a VirtualService is made');
  return JSON.parse(JSON.stringify(vs.spec.http));
}

const to = (name: string, weight?: number) => ({ destination: { host: `${name}.default.svc.cluster.local`, port: { number: 9080 } }, ...(weight === undefined ? {} : { weight }) });
const backend = (name: string, weight?: number) => ({ name, port: 9080, ...(weight === undefined ? {} : { weight }) });

describe('HTTPRoute rule → Istio route (conversion.go)', () => {
  const rows: { name: string; rule: object; parent?: object; want: object[] }[] = [
    { name: 'timeouts.request', rule: { timeouts: { request: '2s' }, backendRefs: [backend('reviews-v1')] }, want: [{ name: 'default.r.0', timeout: '2000ms', route: [to('reviews-v1')] }] },
    { name: 'timeouts.request 0s is no timeout', rule: { timeouts: { request: '0s' }, backendRefs: [backend('reviews-v1')] }, want: [{ name: 'default.r.0', route: [to('reviews-v1')] }] },
    { name: 'backendRequest without retry is the route timeout', rule: { timeouts: { request: '5s', backendRequest: '1s' }, backendRefs: [backend('reviews-v1')] }, want: [{ name: 'default.r.0', timeout: '1000ms', route: [to('reviews-v1')] }] },
    {
      name: 'backendRequest with retry is the per-try timeout; retry defaults',
      rule: { timeouts: { request: '5s', backendRequest: '1s' }, retry: { codes: [503, 429], backoff: '100ms' }, backendRefs: [backend('reviews-v1')] },
      want: [{ name: 'default.r.0', timeout: '5000ms', retries: { attempts: 2, retryOn: 'connect-failure,refused-stream,unavailable,cancelled,503,429', backoff: '100ms', perTryTimeout: '1000ms' }, route: [to('reviews-v1')] }],
    },
    { name: 'retry attempts 0', rule: { retry: { attempts: 0 }, backendRefs: [backend('reviews-v1')] }, want: [{ name: 'default.r.0', retries: { attempts: 0 }, route: [to('reviews-v1')] }] },
    {
      name: 'mirror percent and fraction',
      rule: {
        filters: [
          { type: 'RequestMirror', requestMirror: { backendRef: backend('mirror'), percent: 25 } },
          { type: 'RequestMirror', requestMirror: { backendRef: backend('mirror'), fraction: { numerator: 1, denominator: 3 } } },
        ],
        backendRefs: [backend('reviews-v1')],
      },
      want: [{ name: 'default.r.0', mirrors: [{ destination: to('mirror').destination, percentage: { value: 25 } }, { destination: to('mirror').destination, percentage: { value: 100 / 3 } }], route: [to('reviews-v1')] }],
    },
    { name: 'a mirror to a missing Service is dropped', rule: { filters: [{ type: 'RequestMirror', requestMirror: { backendRef: backend('nope') } }], backendRefs: [backend('reviews-v1')] }, want: [{ name: 'default.r.0', route: [to('reviews-v1')] }] },
    {
      name: 'redirect: request port kept without a scheme; protocol default with one',
      rule: { matches: [{ path: { value: '/a' } }, { path: { value: '/b' } }], filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https', hostname: 'example.com', statusCode: 301 } }] },
      want: [
        { name: 'default.r.0', match: [{ uri: { prefix: '/a' } }], redirect: { redirectCode: 301, authority: 'example.com', scheme: 'https', derivePort: 'FROM_PROTOCOL_DEFAULT' } },
        { name: 'default.r.0', match: [{ uri: { prefix: '/b' } }], redirect: { redirectCode: 301, authority: 'example.com', scheme: 'https', derivePort: 'FROM_PROTOCOL_DEFAULT' } },
      ],
    },
    { name: 'redirect without scheme or port', rule: { filters: [{ type: 'RequestRedirect', requestRedirect: { path: { type: 'ReplaceFullPath', replaceFullPath: '/x' } } }] }, want: [{ name: 'default.r.0', redirect: { redirectCode: 302, derivePort: 'FROM_REQUEST_PORT', uri: '/x' } }] },
    {
      name: 'header modifiers: names lower-cased, the first of equal names wins',
      rule: { name: 'named', filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'X-A', value: '1' }, { name: 'x-a', value: '2' }], remove: ['x-b'] } }], backendRefs: [backend('reviews-v1')] },
      want: [{ name: 'named', headers: { request: { remove: ['x-b'], set: { 'x-a': '1' } } }, route: [to('reviews-v1')] }],
    },
    { name: 'weights: a weight-0 backend is dropped, a single one unweighted', rule: { backendRefs: [backend('reviews-v1', 0), backend('reviews-v2', 5)] }, want: [{ name: 'default.r.0', route: [to('reviews-v2')] }] },
    { name: 'weights kept for two', rule: { backendRefs: [backend('reviews-v1', 90), backend('reviews-v2', 10)] }, want: [{ name: 'default.r.0', route: [to('reviews-v1', 90), to('reviews-v2', 10)] }] },
    { name: 'no backends: 500', rule: {}, want: [{ name: 'default.r.0', directResponse: { status: 500 } }] },
    {
      name: 'a parent port on every match, or a match of its own',
      rule: { matches: [{ path: { type: 'Exact', value: '/x' }, method: 'GET', queryParams: [{ name: 'q', value: '1' }] }], backendRefs: [backend('reviews-v1')] },
      parent: { port: 9080 },
      want: [{ name: 'default.r.0', match: [{ uri: { exact: '/x' }, method: { exact: 'GET' }, queryParams: { q: { exact: '1' } }, port: 9080 }], route: [to('reviews-v1')] }],
    },
    { name: 'PathPrefix trailing slash dropped', rule: { matches: [{ path: { value: '/api/' } }], backendRefs: [backend('reviews-v1')] }, parent: { port: 9080 }, want: [{ name: 'default.r.0', match: [{ uri: { prefix: '/api' }, port: 9080 }], route: [to('reviews-v1')] }] },
    {
      name: 'URLRewrite: ReplacePrefixMatch trailing slash dropped, hostname is the authority',
      rule: { matches: [{ path: { value: '/api' } }], filters: [{ type: 'URLRewrite', urlRewrite: { hostname: 'other', path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/v2/' } } }], backendRefs: [backend('reviews-v1')] },
      want: [{ name: 'default.r.0', match: [{ uri: { prefix: '/api' } }], rewrite: { uri: '/v2', authority: 'other' }, route: [to('reviews-v1')] }],
    },
  ];
  for (const r of rows) {
    it(r.name, () => {
      // A rule without matches has the CRD's default one, PathPrefix `/` (the API server fills it in).
      const want = 'matches' in r.rule ? r.want : r.want.map((w) => ({ ...w, match: [{ uri: { prefix: '/' }, ...(w as { match?: object[] }).match?.[0] }] }));
      assert.deepEqual(http(r.rule, r.parent), want);
    });
  }
});

describe('HTTPRoute: the CRD schema defaults the API server fills in (gateway-api-crd.yaml v1)', () => {
  function vss(spec: object): unknown[] {
    const route = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'r', namespace: 'default' }, spec: { parentRefs: [{ group: '', kind: 'Service', name: 'reviews' }], ...spec } };
    const { resources, issues } = validateDocuments([...SERVICES, route].map((value) => ({ value, source: { file: 'test' } })));
    assert.deepEqual(issues.ofLevel('error').map(String), []);
    return gatewayRouteVirtualServices(resources).map((v) => JSON.parse(JSON.stringify(v.spec.http)));
  }
  it('a rule without matches is a PathPrefix / match, so it sorts before a regex match', () => {
    const [http] = vss({ rules: [{ backendRefs: [backend('reviews-v1')] }, { matches: [{ path: { type: 'RegularExpression', value: '/api/.*' } }], backendRefs: [backend('reviews-v2')] }] });
    assert.deepEqual((http as { match: unknown }[]).map((r) => r.match), [[{ uri: { prefix: '/' } }], [{ uri: { regex: '/api/.*' } }]]);
  });
  it('a RequestRedirect without statusCode redirects with 302', () => {
    const [http] = vss({ rules: [{ filters: [{ type: 'RequestRedirect', requestRedirect: { hostname: 'x.example' } }] }] });
    assert.equal((http as { redirect: { redirectCode?: number } }[])[0]?.redirect.redirectCode, 302);
  });
  it('an HTTPRoute without rules has one rule with no backends: a direct 500', () => {
    assert.deepEqual(vss({}), [[{ name: 'default.r.0', match: [{ uri: { prefix: '/' } }], directResponse: { status: 500 } }]]);
  });
});

describe('HTTPRoutes created the same second: ordered as istiod orders their generated names', () => {
  it('reviews-canary~0~mesh before reviews~0~mesh (sortRoutesByCreationTime; "-" sorts before "~")', () => {
    const ts = '2026-01-01T00:00:00Z';
    const route = (name: string, to: string) => ({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name, namespace: 'default', creationTimestamp: ts },
      spec: { parentRefs: [{ group: '', kind: 'Service', name: 'reviews' }], rules: [{ backendRefs: [backend(to)] }] },
    });
    const { resources } = validateDocuments([...SERVICES, route('reviews', 'reviews-v1'), route('reviews-canary', 'reviews-v2')].map((value) => ({ value, source: { file: 'test' } })));
    const [vs] = gatewayRouteVirtualServices(resources);
    assert.deepEqual(vs?.spec.http?.map((r) => r.name), ['default.reviews-canary.0', 'default.reviews.0']);
  });
});

describe('HTTPRoute with a ServiceEntry parent of wildcard hosts', () => {
  it('routes no wildcard host (istiod: route.go separateVSHostsAndServices gives it no service), with a warning; exact hosts apply', () => {
    const se = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'ServiceEntry',
      metadata: { name: 'wiki', namespace: 'default' },
      spec: { hosts: ['*.wiki.org', 'wiki.org'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'NONE', location: 'MESH_EXTERNAL' },
    };
    const route = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'r', namespace: 'default' }, spec: { parentRefs: [{ group: 'networking.istio.io', kind: 'ServiceEntry', name: 'wiki' }], rules: [{ backendRefs: [backend('reviews')] }] } };
    const { resources } = validateDocuments([...SERVICES, se, route].map((value) => ({ value, source: { file: 'test' } })));
    const issues = new IssueList();
    assert.equal(routeVirtualServices(resources, issues).length, 2, 'istiod makes both VirtualServices (serviceentry.yaml.golden)');
    assert.deepEqual(meshVirtualServices(resources, 'default').map((v) => v.hosts), [['wiki.org']]);
    assert.match(issues.ofLevel('warning').map(String).join('\n'), /host \*\.wiki\.org .*istiod does not apply/);
  });
});
