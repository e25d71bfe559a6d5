import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../test/helpers/config.ts';
import { compile, decide, req } from '../../test/helpers/route-decisions.ts';
import { compileSnapshot, contentVersion, type Snapshot } from './compile.ts';
import { toDraw, type CompiledRoute, type RouteDecision } from './route-table.ts';

const NET = 'networking.istio.io/v1';
const REVIEWS_FQDN = 'reviews.default.svc.cluster.local';
const DEFAULT_RETRY_ON = ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'];


function firstRoute(s: Snapshot, authority = 'reviews'): CompiledRoute {
  const r = s.routes.virtualHost(authority)?.routes[0];
  assert.ok(r, `no route for ${authority}`);
  return r;
}

const REVIEWS = doc(
  NET,
  'ServiceEntry',
  'reviews',
  `hosts: [${REVIEWS_FQDN}]
location: MESH_INTERNAL
resolution: STATIC
ports:
- {number: 9080, name: http, protocol: HTTP}
endpoints:
- {address: 10.0.0.1, labels: {version: v1}}
- {address: 10.0.0.2, labels: {version: v2}}`,
);
const RATINGS = doc(
  NET,
  'ServiceEntry',
  'ratings',
  'hosts: [ratings.default.svc.cluster.local]\nlocation: MESH_INTERNAL\nresolution: STATIC\nports:\n- {number: 9080, name: http, protocol: HTTP}\nendpoints:\n- {address: 10.0.1.1}',
);
const SUBSETS = doc(NET, 'DestinationRule', 'reviews', 'host: reviews\nsubsets:\n- {name: v1, labels: {version: v1}}\n- {name: v2, labels: {version: v2}}');
/** A VirtualService for reviews with one rule; `rule` is the YAML of the rule's fields (indented two spaces). */
const oneRule = (rule: string) => doc(NET, 'VirtualService', 'reviews', `hosts: [reviews]\nhttp:\n- ${rule}`);

describe('compileSnapshot: default route of a service without a VirtualService (§2.3)', () => {
  const snap = compile([REVIEWS, RATINGS]);

  it('forwards to the whole service with Istio’s default retry policy', () => {
    const vh = snap.routes.virtualHost('ratings:9080');
    assert.ok(vh);
    assert.equal(vh.virtualService, undefined);
    assert.equal(vh.routes.length, 1);
    const r = vh.routes[0] as CompiledRoute;
    assert.equal(r.name, 'default');
    assert.equal(r.action, 'forward');
    assert.deepEqual(r.matchers, []);
    assert.equal(r.retry.attempts, 2);
    assert.deepEqual([...r.retry.retryOn].sort(), [...DEFAULT_RETRY_ON].sort());
    assert.equal(r.retry.retriableStatusCodes.size, 0, 'no retriable codes since Istio 1.24');
    assert.equal(r.retry.isDefault, true);
    assert.equal(r.retry.retryIgnorePreviousHosts, true);
    assert.equal(r.retry.backoffBaseMs, 25);
    assert.equal(r.timeoutMs, undefined, '§6.5: no route timeout by default');
    assert.equal(r.fault, undefined);
    assert.deepEqual(r.mirrors, []);
    const d = decide(snap, req('ratings', '/any/path?x=1'));
    assert.equal(d.target?.cluster?.name, 'outbound|9080||ratings.default.svc.cluster.local');
    assert.deepEqual(d.target?.cluster?.endpoints.map((e) => e.key), ['10.0.1.1:9080']);
  });
});

describe('compileSnapshot: retries (§1.1 HTTPRetry, §6.15)', () => {
  const cases: { name: string; retries: string | undefined; attempts: number; retryOn: string[]; codes: number[]; isDefault: boolean; perTry?: number }[] = [
    { name: 'unset → Istio default', retries: undefined, attempts: 2, retryOn: DEFAULT_RETRY_ON, codes: [], isDefault: true },
    { name: 'attempts: 0 turns retries off', retries: '{attempts: 0}', attempts: 0, retryOn: DEFAULT_RETRY_ON, codes: [], isDefault: false },
    { name: 'attempts only keeps the default retryOn', retries: '{attempts: 5}', attempts: 5, retryOn: DEFAULT_RETRY_ON, codes: [], isDefault: false },
    { name: 'numeric codes move to retriable status codes', retries: '{attempts: 3, retryOn: "5xx,503", perTryTimeout: 2s}', attempts: 3, retryOn: ['5xx', 'retriable-status-codes'], codes: [503], isDefault: false, perTry: 2000 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const retries = c.retries === undefined ? '' : `\n  retries: ${c.retries}`;
      const r = firstRoute(compile([REVIEWS, oneRule(`route: [{destination: {host: reviews}}]${retries}`)]));
      assert.equal(r.retry.attempts, c.attempts);
      assert.deepEqual([...r.retry.retryOn].sort(), [...c.retryOn].sort());
      assert.deepEqual([...r.retry.retriableStatusCodes], c.codes);
      assert.equal(r.retry.isDefault, c.isDefault);
      assert.equal(r.retry.perTryTimeoutMs, c.perTry);
    });
  }
});

describe('compileSnapshot: fault percentages (§1.1 HTTPFaultInjection, §6.7)', () => {
  const cases: { name: string; fault: string; delayMs?: number; delay: number; abortStatus?: number; abort: number }[] = [
    { name: 'abort without percentage → 0%', fault: '{abort: {httpStatus: 500}}', abortStatus: 500, abort: 0, delay: 0 },
    { name: 'delay without percentage → 0%', fault: '{delay: {fixedDelay: 7s}}', delayMs: 7000, delay: 0, abort: 0 },
    { name: 'abort 100%', fault: '{abort: {httpStatus: 503, percentage: {value: 100}}}', abortStatus: 503, abort: 1, delay: 0 },
    { name: 'delay 50% and abort 10% are independent', fault: '{delay: {fixedDelay: 1s, percentage: {value: 50}}, abort: {httpStatus: 500, percentage: {value: 10}}}', delayMs: 1000, delay: 0.5, abortStatus: 500, abort: 0.1 },
    { name: 'a tiny percentage', fault: '{abort: {httpStatus: 500, percentage: {value: 0.0001}}}', abortStatus: 500, abort: 0.000001, delay: 0 },
    { name: 'an empty percentage {} is 0% (protobuf)', fault: '{abort: {httpStatus: 500, percentage: {}}}', abortStatus: 500, abort: 0, delay: 0 },
    { name: 'an abort without a status never aborts', fault: '{abort: {percentage: {value: 100}}}', abort: 1, delay: 0 },
    // istiod: FractionalPercent{uint32(value * 10000), MILLION}; 0.57 * 10000 is 5699.999999999999 in float64, 12.3456789 is 123456 millionths.
    { name: 'a percentage is a whole number of millionths, truncated as istiod does (0.57 → 5699)', fault: '{abort: {httpStatus: 500, percentage: {value: 0.57}}}', abortStatus: 500, abort: 0.005699, delay: 0 },
    { name: 'the deprecated delay percent is a whole number of hundredths', fault: '{delay: {fixedDelay: 1s, percent: 29}}', delayMs: 1000, delay: 0.29, abort: 0 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = firstRoute(compile([REVIEWS, oneRule(`route: [{destination: {host: reviews}}]\n  fault: ${c.fault}`)]));
      assert.ok(r.fault);
      assert.equal(r.fault.delayMs, c.delayMs);
      assert.equal(r.fault.delayFraction, c.delay);
      assert.equal(r.fault.abortHttpStatus, c.abortStatus);
      assert.equal(r.fault.abortFraction, c.abort);
    });
  }
});

describe('compileSnapshot: mirror percentage (§1.1, §6.8)', () => {
  const cases: { name: string; yaml: string; fractions: number[] }[] = [
    { name: 'mirror without mirrorPercentage → 100%', yaml: 'mirror: {host: ratings}', fractions: [1] },
    { name: 'mirrorPercentage 0 → off', yaml: 'mirror: {host: ratings}\n  mirrorPercentage: {value: 0}', fractions: [0] },
    { name: 'mirrorPercentage 25', yaml: 'mirror: {host: ratings}\n  mirrorPercentage: {value: 25}', fractions: [0.25] },
    { name: 'mirrors[] without percentage → 100% each', yaml: 'mirrors:\n  - {destination: {host: ratings}}\n  - {destination: {host: reviews, subset: v2}, percentage: {value: 5}}', fractions: [1, 0.05] },
    { name: 'mirror_percent (the CRD\'s snake_case spelling) 25', yaml: 'mirror: {host: ratings}\n  mirror_percent: 25', fractions: [0.25] },
    { name: 'mirrorPercentage and mirrors[].percentage truncated to millionths as istiod sends them (12.3456789 → 123456)', yaml: 'mirrors:\n  - {destination: {host: ratings}, percentage: {value: 12.3456789}}', fractions: [0.123456] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = firstRoute(compile([REVIEWS, RATINGS, SUBSETS, oneRule(`route: [{destination: {host: reviews}}]\n  ${c.yaml}`)]));
      assert.deepEqual(r.mirrors.map((m) => m.fraction), c.fractions);
      assert.equal(r.mirrors[0]?.target.host, 'ratings.default.svc.cluster.local');
      assert.equal(r.mirrors[0]?.target.cluster?.name, 'outbound|9080||ratings.default.svc.cluster.local');
    });
  }
});

describe('compileSnapshot: redirect and direct response', () => {
  it('a redirect has one decision without a target (default code 301)', () => {
    const s = compile([REVIEWS, oneRule('redirect: {uri: /new}')]);
    const d = decide(s, req('reviews', '/old'));
    assert.equal(d.route.action, 'redirect');
    assert.equal(d.target, undefined);
    assert.equal(d.route.redirect?.redirectCode, 301);
  });

  it('a direct response has one decision without a target', () => {
    const s = compile([REVIEWS, oneRule('directResponse: {status: 418, body: {string: teapot}}')]);
    const d = decide(s, req('reviews'));
    assert.equal(d.route.action, 'direct-response');
    assert.equal(d.target, undefined);
    assert.equal(d.route.directResponse?.status, 418);
    assert.equal(d.route.directResponse?.body?.toString(), 'teapot');
  });
});

describe('compileSnapshot: Envoy header values', () => {
  it('"%%" is a literal % (Envoy header format), other text is sent as written', () => {
    const s = compile([REVIEWS, oneRule('route: [{destination: {host: reviews}}]\n  headers: {request: {set: {x-load: "100%%", host: "a%%b.local"}}, response: {add: {x-v: "%HOSTNAME%"}}}')]);
    const r = firstRoute(s);
    assert.deepEqual(r.requestHeaders?.set, [['x-load', '100%']]);
    assert.equal(r.rewrite?.authority, 'a%b.local');
    assert.deepEqual(r.responseHeaders?.add, [['x-v', '%HOSTNAME%']]);
  });
});

describe('compileSnapshot: partial wildcard hosts (Istio: "*foo.com" covers any host ending in foo.com)', () => {
  it('routes a ServiceEntry host "*example.com" for example.com and api-example.com, not for example.org', () => {
    const s = compile([doc(NET, 'ServiceEntry', 'partial', 'hosts: ["*example.com"]\nresolution: DYNAMIC_DNS\nports: [{number: 80, name: http, protocol: HTTP}]')]);
    assert.equal(s.routes.virtualHost('api-example.com')?.host, '*example.com');
    assert.equal(s.routes.virtualHost('example.com')?.host, '*example.com');
    assert.equal(s.routes.virtualHost('example.org'), undefined);
  });
});

describe('compileSnapshot: content version', () => {
  const base = [REVIEWS, SUBSETS, oneRule('route:\n  - {destination: {host: reviews, subset: v1}, weight: 90}\n  - {destination: {host: reviews, subset: v2}, weight: 10}')];
  const changed = [REVIEWS, SUBSETS, oneRule('route:\n  - {destination: {host: reviews, subset: v1}, weight: 80}\n  - {destination: {host: reviews, subset: v2}, weight: 20}')];

  it('is stable for the same content', () => {
    const a = compile(base);
    const b = compile(base);
    assert.equal(a.version, b.version);
    assert.match(a.version, /^[0-9a-f]{12}$/);
  });

  it('does not depend on the order of the documents or the workload', () => {
    assert.equal(compile(base).version, compile([...base].reverse(), { service: 'other', labels: { a: 'b' } }).version);
  });

  it('changes when a spec changes', () => {
    assert.notEqual(compile(base).version, compile(changed).version);
  });

  it('changes when a resource is added', () => {
    assert.notEqual(compile(base).version, compile([...base, RATINGS]).version);
  });

  it('equals contentVersion(resources), unless a version is given', () => {
    const { resources } = validateYaml(base.join('---\n'));
    assert.equal(compileSnapshot(resources, { service: 'p' }).version, contentVersion(resources));
    assert.equal(compileSnapshot(resources, { service: 'p' }, { version: 'v42' }).version, 'v42');
  });
});

describe('compileSnapshot: preallocated decisions', () => {
  const snap = compile([
    REVIEWS,
    SUBSETS,
    doc(
      NET,
      'VirtualService',
      'reviews',
      'hosts: [reviews]\nhttp:\n- match: [{headers: {end-user: {exact: jason}}}]\n  route: [{destination: {host: reviews, subset: v2}}]\n- route:\n  - {destination: {host: reviews, subset: v1}, weight: 50}\n  - {destination: {host: reviews, subset: v2}, weight: 50}',
    ),
  ]);

  it('returns the same object for the same request', () => {
    const h = req('reviews:9080', '/reviews/1', { 'end-user': 'jason' });
    const a = decide(snap, h, toDraw(0.3));
    const b = decide(snap, h, toDraw(0.3));
    assert.equal(a, b);
    assert.ok(Object.isFrozen(a));
  });

  it('returns the same object for equal requests given under different names', () => {
    const draw = toDraw(0.1);
    const a = decide(snap, req('reviews', '/a?x=1'), draw);
    const b = decide(snap, req(`${REVIEWS_FQDN}:9080`, '/b'), draw);
    assert.equal(a, b);
    assert.equal(a.route.name, 'reviews.1');
  });

  it('every weighted pick is one of the route’s own preallocated decisions', () => {
    const seen = new Set<RouteDecision>();
    for (let i = 0; i < 1000; i++) seen.add(decide(snap, req('reviews', `/p${i % 7}`), toDraw(i / 1000)));
    const route = firstRoute(snap, 'reviews:9080');
    const own = snap.routes.virtualHost('reviews')?.routes[1]?.decisions ?? [];
    assert.equal(seen.size, 2);
    assert.deepEqual([...seen].sort((x, y) => own.indexOf(x) - own.indexOf(y)), [...own]);
    assert.deepEqual(own.map((d) => d.target?.subset), ['v1', 'v2']);
    for (const d of own) assert.equal(d.route, own[0]?.route);
    assert.ok(Object.isFrozen(own));
    assert.equal(route.decisions.length, 1);
  });

  it('recompiling gives equal but new objects (snapshots are independent)', () => {
    const again = compile([REVIEWS, SUBSETS, doc(NET, 'VirtualService', 'reviews', 'hosts: [reviews]\nhttp:\n- route: [{destination: {host: reviews, subset: v1}}]')]);
    assert.notEqual(decide(again, req('reviews')), decide(snap, req('reviews')));
  });
});

describe('Istio details found in review', () => {
  it('retries with attempts unset is rejected (unset attempts is 0 in Istio)', () => {
    const { errors } = validateYaml(doc('networking.istio.io/v1', 'VirtualService', 'r', 'hosts: [r]\nhttp:\n- retries: {retryOn: 5xx}\n  route: [{destination: {host: r}}]'));
    assert.ok(errors.some((e) => /attempts is required when retryOn is set/.test(e)), errors.join('\n'));
  });

  it('a DestinationRule in a namespace other than client, service or root does not apply', () => {
    const { resources } = validateYaml(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc, namespace: shop}
spec: {hosts: [svc.shop.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 10.0.0.1}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: elsewhere, namespace: other}
spec: {host: svc.shop.svc.cluster.local, trafficPolicy: {loadBalancer: {simple: RANDOM}}}
`);
    const snap = compileSnapshot(resources, { service: 'client', namespace: 'default' });
    const cluster = snap.clusters.get('outbound|80||svc.shop.svc.cluster.local');
    assert.ok(cluster);
    assert.equal(cluster.destinationRule, undefined);
  });
});
