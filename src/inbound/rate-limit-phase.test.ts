import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { clt, compile, draws, ef, filter, fixture, load, LRL, oneBucket, outcomes, pct, request, srvWorkload } from '../../test/helpers/inbound-rate-limit.ts';
import { validateYaml } from '../../test/helpers/config.ts';
import { ManualClock, } from '../core/clock.ts';
import type { AnyResource } from '../config/resource.ts';
import { CompiledRateLimits } from './rate-limit-compile.ts';
import { InboundPipeline } from './pipeline.ts';
import { compileRateLimit, RATE_LIMITED_BODY, type RateLimitDenial, rateLimitResponseHeaders, type RateLimitWorkload } from './rate-limit-phase.ts';

describe('rate-limit phase: Envoy\'s filter semantics', () => {
  it('filter_enabled draws per request; requests it is not enabled for take no token', () => {
    const clock = new ManualClock(0);
    // 50%: enabled when floor(r * 100) < 50.
    const phase = compile(load(ef({ configPatches: [filter(oneBucket(1, '60s', { filter_enabled: pct(50) }))] })), srvWorkload, clock, draws(0.49, 0.5, 0.2, 0.99, 0.1));
    // enabled (takes the token), not enabled, enabled (refused), not enabled, enabled (refused)
    assert.equal(outcomes(phase, [{}, {}, {}, {}, {}]), 'aarar');
    assert.deepEqual(phase.stats.get('http_local_rate_limiter'), { enabled: 3, ok: 1, rate_limited: 2, enforced: 2 });
  });

  it('enabled but not enforced is shadow mode: counted, let through, with request_headers_to_add_when_not_enforced', () => {
    const clock = new ManualClock(0);
    const cfg = oneBucket(1, '60s', { filter_enforced: undefined, request_headers_to_add_when_not_enforced: [{ append_action: 'OVERWRITE_IF_EXISTS_OR_ADD', header: { key: 'x-rate-limited', value: 'shadow' } }] });
    const phase = compile(load(ef({ configPatches: [filter(cfg)] })), srvWorkload, clock);
    const first = request();
    const second = request();
    assert.equal(phase.run(first), undefined);
    assert.equal(phase.run(second), undefined);
    assert.equal(first.headers['x-rate-limited'], undefined);
    assert.equal(second.headers['x-rate-limited'], 'shadow');
    assert.deepEqual(phase.stats.get('http_local_rate_limiter'), { enabled: 2, ok: 1, rate_limited: 1, enforced: 0 });
  });

  it('filter_enforced draws only for rate-limited requests', () => {
    const phase = compile(load(ef({ configPatches: [filter(oneBucket(1, '60s', { filter_enforced: pct(10, 'TEN_THOUSAND') }))] })), srvWorkload, new ManualClock(0), draws(0.0009, 0.001));
    // 10 in 10 000: the first limited request draws 0.0009 (9 < 10: enforced), the next 0.001 (10: not).
    assert.equal(outcomes(phase, [{}, {}, {}]), 'ara');
  });

  it('a custom status, and gRPC callers: UNAVAILABLE by default, RESOURCE_EXHAUSTED when asked', () => {
    const clock = new ManualClock(0);
    const a = compile(load(ef({ configPatches: [filter(oneBucket(1, '60s', { status: { code: 'ServiceUnavailable' } }))] })), srvWorkload, clock);
    a.run(request({ protocol: 'grpc' }));
    const d = a.run(request({ protocol: 'grpc' })) as RateLimitDenial;
    assert.deepEqual([d.status, d.grpcStatus, d.body], [503, 14, RATE_LIMITED_BODY]);
    const b = compile(load(ef({ configPatches: [filter(oneBucket(1, '60s', { status: { code: 302 }, rate_limited_as_resource_exhausted: true }))] })), srvWorkload, clock);
    b.run(request());
    const e = b.run(request()) as RateLimitDenial;
    assert.deepEqual([e.status, e.grpcStatus], [429, 8], 'a status under 400 is 429');
  });

  it('applies response_headers_to_add to refusals as Envoy\'s append actions say, never to admitted requests', () => {
    const headers = [
      { append_action: 'APPEND_IF_EXISTS_OR_ADD', header: { key: 'x-a', value: '1' } },
      { append_action: 'APPEND_IF_EXISTS_OR_ADD', header: { key: 'x-a', value: '2' } },
      { append_action: 'ADD_IF_ABSENT', header: { key: 'x-a', value: 'no' } },
      { append_action: 'OVERWRITE_IF_EXISTS', header: { key: 'x-b', value: 'no' } },
      { append: false, header: { key: 'x-c', value: 'first' } },
      { append: false, header: { key: 'x-c', value: 'second' } },
      { header: { key: 'x-empty', value: '' } },
      { keep_empty_value: true, header: { key: 'x-kept', value: '' } },
    ];
    const phase = compile(load(ef({ configPatches: [filter(oneBucket(1, '60s', { response_headers_to_add: headers }))] })), srvWorkload, new ManualClock(0));
    const admitted = request();
    assert.equal(phase.run(admitted), undefined);
    assert.equal(rateLimitResponseHeaders(admitted), undefined);
    const d = phase.run(request()) as RateLimitDenial;
    assert.deepEqual({ ...d.headers }, { 'x-a': '1, 2', 'x-c': 'second', 'x-kept': '' });
  });

  it('a per-route config replaces the filter\'s for that route; its bucket is the route\'s', () => {
    const clock = new ManualClock(0);
    const yaml = ef({
      configPatches: [
        filter(oneBucket(5)),
        {
          applyTo: 'HTTP_ROUTE',
          match: { context: 'SIDECAR_INBOUND', routeConfiguration: { portNumber: 9080, vhost: { route: { name: 'default', action: 'ROUTE' } } } },
          patch: { operation: 'MERGE', value: { typed_per_filter_config: { 'envoy.filters.http.local_ratelimit': { '@type': LRL, stat_prefix: 'route', ...oneBucket(1) } } } },
        },
      ],
    });
    const phase = compile(load(yaml), srvWorkload, clock);
    assert.equal(outcomes(phase, [{ localPort: 9080 }, { localPort: 9080 }]), 'ar');
    assert.equal(outcomes(phase, Array(6).fill({ localPort: 8888 })), 'aaaaar');
    assert.match(String(phase.filtersFor(9080)[0]?.source), /configPatches\[1\] \(route inbound\|9080\|\|\)/);
  });

  it('a virtual host config applies when the route has none, and the route\'s rate limits feed it descriptors', () => {
    const clock = new ManualClock(0);
    const vhostConfig = { '@type': LRL, stat_prefix: 'vh', ...oneBucket(100), descriptors: [{ entries: [{ key: 'user', value: 'jason' }], token_bucket: { max_tokens: 1, fill_interval: '60s' } }] };
    const yaml = ef({
      configPatches: [
        filter({ filter_enabled: pct(0) }),
        { applyTo: 'VIRTUAL_HOST', match: { context: 'SIDECAR_INBOUND', routeConfiguration: { vhost: { name: 'inbound|http|8888' } } }, patch: { operation: 'MERGE', value: { typed_per_filter_config: { 'envoy.filters.http.local_ratelimit': vhostConfig } } } },
        { applyTo: 'HTTP_ROUTE', match: { context: 'SIDECAR_INBOUND' }, patch: { operation: 'MERGE', value: { route: { rate_limits: [{ actions: [{ request_headers: { header_name: 'end-user', descriptor_key: 'user' } }] }] } } } },
      ],
    });
    const phase = compile(load(yaml), srvWorkload, clock);
    const jason = { headers: { 'end-user': 'jason' } };
    assert.equal(outcomes(phase, [jason, jason, { headers: { 'end-user': 'alice' } }, {}]), 'araa');
  });

  it('the filter\'s own rate_limits override the route\'s', () => {
    const cfg = oneBucket(100, '60s', {
      rate_limits: [{ actions: [{ generic_key: { descriptor_value: 'all', descriptor_key: 'k' } }] }],
      descriptors: [{ entries: [{ key: 'k', value: 'all' }], token_bucket: { max_tokens: 2, fill_interval: '60s' } }],
    });
    const phase = compile(load(ef({ configPatches: [filter(cfg)] })), srvWorkload, new ManualClock(0));
    assert.equal(outcomes(phase, [{}, {}, {}]), 'aar');
  });

  it('listener matches: port and transport', () => {
    const clock = new ManualClock(0);
    const yaml = ef({
      configPatches: [
        filter(oneBucket(1), { context: 'SIDECAR_INBOUND', listener: { portNumber: 9080, filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager' } } } }),
        filter(oneBucket(1), { context: 'ANY', listener: { filterChain: { transportProtocol: 'tls' } } }, 'INSERT_BEFORE', 'mtls-only'),
      ],
    });
    const phase = compile(load(yaml), srvWorkload, clock);
    assert.equal(outcomes(phase, [{ localPort: 9080 }, { localPort: 9080 }]), 'ar');
    assert.equal(outcomes(phase, [{ localPort: 8888 }, { localPort: 8888 }]), 'aa');
    assert.equal(outcomes(phase, [{ localPort: 8888, scheme: 'https', peer: clt }, { localPort: 8888, scheme: 'https', peer: clt }]), 'ar');
  });

  it('runs filters in Istio\'s insertion order, the first refusal answering', () => {
    const clock = new ManualClock(0);
    const yaml =
      ef({ configPatches: [filter(oneBucket(1, '60s', { response_headers_to_add: [{ header: { key: 'x-by', value: 'late' } }] }), { context: 'SIDECAR_INBOUND' }, 'INSERT_BEFORE', 'late')] }, 'a') +
      ef({ configPatches: [filter(oneBucket(1, '60s', { response_headers_to_add: [{ header: { key: 'x-by', value: 'first' } }] }), { context: 'SIDECAR_INBOUND' }, 'INSERT_FIRST', 'first')] }, 'b');
    const phase = compile(load(yaml), srvWorkload, clock);
    assert.deepEqual(phase.filtersFor(8888).map((f) => f.name), ['first', 'late']);
    phase.run(request());
    assert.equal((phase.run(request()) as RateLimitDenial).headers?.['x-by'], 'first');
  });

  it("inserts next to a sub-filter as istiod does: among Istio's own inbound filters (those of the policies that apply), nothing next to a filter not in the chain", () => {
    const clock = new ManualClock(0);
    const hcm = 'envoy.filters.network.http_connection_manager';
    const at = (name: string, operation: string, subFilter?: string) =>
      filter(oneBucket(1), { context: 'SIDECAR_INBOUND', ...(subFilter === undefined ? {} : { listener: { filterChain: { filter: { name: hcm, subFilter: { name: subFilter } } } } }) }, operation, name);
    const efs = ef({
      configPatches: [
        at('before-router', 'INSERT_BEFORE', 'envoy.filters.http.router'),
        at('after-rbac', 'INSERT_AFTER', 'envoy.filters.http.rbac'),
        at('before-jwt', 'INSERT_BEFORE', 'envoy.filters.http.jwt_authn'),
        at('after-ext-authz', 'INSERT_AFTER', 'envoy.filters.http.ext_authz'),
        at('after-before-router', 'INSERT_AFTER', 'before-router'),
        at('before-mx', 'INSERT_BEFORE', 'istio.metadata_exchange'),
        at('before-alpn', 'INSERT_BEFORE', 'istio.alpn'),
        at('before-authn', 'INSERT_BEFORE', 'istio_authn'),
        at('before-typo', 'INSERT_BEFORE', 'envoy.filters.http.routr'),
      ],
    });
    const { resources, warnings } = validateYaml(efs);
    // No policy applies: the chain is metadata exchange, gRPC stats, fault, CORS, stats, router.
    assert.deepEqual(compile(resources as AnyResource[], srvWorkload, clock).filtersFor(8888).map((f) => f.name), ['before-mx', 'before-router', 'after-before-router']);
    const said = warnings.map(String).join('\n');
    assert.match(said, /"envoy\.filters\.http\.routr" is not a filter Istio puts in a sidecar's HTTP chain, so Istio inserts nothing before it/);
    assert.match(said, /"istio_authn" is not a filter Istio puts in a sidecar's HTTP chain \(istio_authn is a network filter, not an HTTP filter\)/);
    assert.match(said, /configPatches\[6\].*the inbound chain has no istio\.alpn filter/);
    assert.doesNotMatch(said, /"before-router" is not a filter/, 'a filter another patch inserts is one to insert next to');
    assert.doesNotMatch(said, /rbac|jwt_authn|ext_authz/, 'inbound chains can have them');
    // A CUSTOM policy (rbac, ext_authz), a RequestAuthentication with JWT rules (jwt_authn), an ALLOW policy (rbac).
    const policies =
      'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ext, namespace: echo}\nspec: {selector: {matchLabels: {app: srv}}, action: CUSTOM, provider: {name: ext}, rules: [{}]}\n---\n' +
      'apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt, namespace: echo}\nspec: {selector: {matchLabels: {app: srv}}, jwtRules: [{issuer: "https://issuer.example", jwksUri: "https://issuer.example/jwks"}]}\n---\n';
    const withCustomJwt = validateYaml(efs + policies).resources as AnyResource[];
    // The first rbac is CUSTOM's, before ext_authz.
    assert.deepEqual(compile(withCustomJwt, srvWorkload, clock).filtersFor(8888).map((f) => f.name), ['before-mx', 'after-rbac', 'after-ext-authz', 'before-jwt', 'before-router', 'after-before-router']);
    // Each runs before the first of Istio's admission filters after it (undefined: after them all).
    assert.deepEqual(compile(withCustomJwt, srvWorkload, clock).filtersFor(8888).map((f) => f.gate), ['ext_authz', 'ext_authz', 'jwt_authn', 'jwt_authn', undefined, undefined]);
    assert.deepEqual(compile(withCustomJwt, srvWorkload, clock).phases().map((p) => p.before), ['ext-authz', 'jwt', undefined]);
    const allow = 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow, namespace: echo}\nspec: {selector: {matchLabels: {app: srv}}, rules: [{}]}\n---\n';
    assert.deepEqual(compile(validateYaml(efs + allow).resources as AnyResource[], srvWorkload, clock).filtersFor(8888).map((f) => f.name), ['before-mx', 'after-rbac', 'before-router', 'after-before-router']);
    assert.deepEqual(compile(validateYaml(efs + allow).resources as AnyResource[], srvWorkload, clock).filtersFor(8888).map((f) => f.gate), ['rbac', undefined, undefined, undefined]);
    // A policy for another workload adds nothing.
    assert.deepEqual(compile(validateYaml(efs + allow.replace('app: srv', 'app: other')).resources as AnyResource[], srvWorkload, clock).filtersFor(8888).map((f) => f.name), ['before-mx', 'before-router', 'after-before-router']);
  });

  it('buckets per downstream connection: one limiter per connection, made from the first config that asks and shared by every filter that asks, as Envoy keeps it under one filter-state key', () => {
    const clock = new ManualClock(0);
    const perConn = (max: number) => oneBucket(max, '600s', { local_rate_limit_per_downstream_connection: true });
    const afterA = { context: 'SIDECAR_INBOUND', listener: { filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager', subFilter: { name: 'a' } } } } };
    const yaml = ef({ configPatches: [filter(perConn(3), { context: 'SIDECAR_INBOUND' }, 'INSERT_FIRST', 'a'), filter(perConn(10), afterA, 'INSERT_AFTER', 'b')] });
    const conn = {};
    const other = {};
    const phase = compile(load(yaml), srvWorkload, clock);
    assert.deepEqual(phase.filtersFor(8888).map((f) => f.name), ['a', 'b']);
    // Each request takes a token in each filter, both from the connection's one limiter (a's 3 tokens).
    assert.equal(outcomes(phase, [{ connection: conn }, { connection: conn }]), 'ar');
    assert.equal(outcomes(phase, [{ connection: other }]), 'a', 'another connection: its own');
    // No connection object: keyed by the caller's address and port.
    assert.equal(outcomes(phase, [{ remotePort: 1 }, { remotePort: 1 }, { remotePort: 2 }]), 'ara');
  });

  it('buckets per downstream connection after a reload: a tightened limit reaches connections already open; an unchanged one keeps their buckets', () => {
    const clock = new ManualClock(0);
    const perConn = (max: number) => oneBucket(max, '600s', { local_rate_limit_per_downstream_connection: true });
    const patch = (max: number) => ef({ configPatches: [filter(perConn(max), { context: 'SIDECAR_INBOUND' }, 'INSERT_FIRST', 'a')] });
    const conn = {};
    const loose = compile(load(patch(100)), srvWorkload, clock);
    assert.equal(outcomes(loose, [{ connection: conn }, { connection: conn }]), 'aa');
    const same = compile(load(patch(100)), srvWorkload, clock, undefined, loose);
    const tight = compile(load(patch(1)), srvWorkload, clock, undefined, same);
    assert.equal(outcomes(tight, [{ connection: conn }, { connection: conn }, { connection: conn }]), 'arr', 'the open connection gets the new limit');
    assert.equal(outcomes(tight, [{ connection: {} }, { connection: {} }]), 'aa', 'new connections: one each');
    // An unchanged config keeps the connection's bucket: 1 token taken before the reload, 99 after, then none left.
    const conn2 = {};
    assert.equal(outcomes(loose, [{ connection: conn2 }]), 'a');
    const again = compile(load(patch(100)), srvWorkload, clock, undefined, loose);
    assert.equal(outcomes(again, Array.from({ length: 99 }, () => ({ connection: conn2 }))), `${'a'.repeat(99)}`);
    assert.equal(outcomes(again, [{ connection: conn2 }]), 'r');
  });

  it('source_cluster is the sidecar’s service cluster: the app label (not the service) dot namespace, else the workload name', () => {
    const resources = load(ef({ configPatches: [filter(oneBucket(1))] }));
    const cluster = (w: RateLimitWorkload) => new CompiledRateLimits(resources, w, 'istio-system', new ManualClock()).sourceCluster;
    assert.equal(cluster({ service: 'srv', namespace: 'echo', labels: { app: 'srv-app' } }), 'srv-app.echo');
    assert.equal(cluster({ service: 'srv', namespace: 'echo', labels: { 'service.istio.io/canonical-name': 'canon' } }), 'canon.echo');
    assert.equal(cluster({ service: 'srv', namespace: 'echo', labels: {}, workloadName: 'srv-v1' }), 'srv-v1.echo');
    assert.equal(cluster({ service: 'srv', namespace: 'echo', labels: {} }), 'srv.echo');
  });

  it('orders EnvoyFilters by priority, root namespace first, creation time, then name', () => {
    const clock = new ManualClock(0);
    const f = (name: string) => filter(oneBucket(1), { context: 'SIDECAR_INBOUND' }, 'INSERT_FIRST', name);
    const yaml =
      ef({ priority: -1, configPatches: [f('prio-1')] }, 'z', 'echo') +
      ef({ configPatches: [f('own-ns')] }, 'a', 'echo') +
      ef({ configPatches: [f('root-new')] }, 'b', 'istio-system', '  creationTimestamp: "2024-01-02T00:00:00Z"\n') +
      ef({ configPatches: [f('root-old')] }, 'c', 'istio-system', '  creationTimestamp: "2024-01-01T00:00:00Z"\n') +
      ef({ configPatches: [f('other-ns')] }, 'a', 'other');
    const phase = compile(load(yaml), srvWorkload, clock);
    // Applied in order prio-1, root-old, root-new, own-ns; each INSERT_FIRST goes in front.
    assert.deepEqual(phase.filtersFor(8888).map((x) => x.name), ['own-ns', 'root-new', 'root-old', 'prio-1']);
  });

  it('selects by workloadSelector (root namespace: any namespace), and never with targetRefs', () => {
    const clock = new ManualClock(0);
    const sel = (labels: object, ns = 'istio-system') => load(ef({ workloadSelector: { labels }, configPatches: [filter(oneBucket(1))] }, 'x', ns));
    assert.ok(compileRateLimit(sel({ app: 'srv' }), srvWorkload, 'istio-system', clock) !== undefined);
    assert.ok(compileRateLimit(sel({ app: 'srv' }, 'echo'), srvWorkload, 'istio-system', clock) !== undefined);
    assert.equal(compileRateLimit(sel({ app: 'srv' }, 'other'), srvWorkload, 'istio-system', clock), undefined);
    assert.equal(compileRateLimit(sel({ app: 'srv', version: 'v2' }), srvWorkload, 'istio-system', clock), undefined);
    assert.equal(compileRateLimit(sel({ app: 'srv' }), srvWorkload, 'mesh-root', clock), undefined, 'another root namespace');
    const targeted = load(ef({ targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'gw' }], configPatches: [filter(oneBucket(1))] }));
    assert.equal(compileRateLimit(targeted, srvWorkload, 'istio-system', clock), undefined);
  });

  it('keeps one set of buckets per workload: every server on a port shares them; another port has its own filter chain and buckets', () => {
    const phase = compile(load(ef({ configPatches: [filter(oneBucket(2))] })), srvWorkload, new ManualClock(0));
    assert.equal(outcomes(phase, [{ remoteAddress: '10.0.0.1' }, { remoteAddress: '10.0.0.2', scheme: 'https', peer: clt }, { remoteAddress: '10.0.0.3' }]), 'aar');
    assert.equal(outcomes(phase, [{ localPort: 9090 }, { localPort: 9090 }, { localPort: 9090 }]), 'aar');
  });

  it('keeps drained buckets across a config reload when their settings do not change', () => {
    const clock = new ManualClock(0);
    const first = compile(load(ef({ configPatches: [filter(oneBucket(1))] })), srvWorkload, clock);
    assert.equal(outcomes(first, [{}, {}]), 'ar');
    const withDr = `${ef({ configPatches: [filter(oneBucket(1))] })}apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: d\n  namespace: echo\nspec:\n  host: srv\n`;
    const same = compile(load(withDr), srvWorkload, clock, undefined, first);
    assert.equal(outcomes(same, [{}]), 'r', 'an unrelated config change does not refill the bucket');
    const changed = compile(load(ef({ configPatches: [filter(oneBucket(3))] })), srvWorkload, clock, undefined, same);
    assert.equal(outcomes(changed, [{}, {}, {}, {}]), 'aaar');
  });
});

describe('rate-limit phase behind a real node:http server', () => {
  let server: Server;
  let base: string;
  const clock = new ManualClock(0);

  before(async () => {
    const phase = compile(fixture('enable_envoy_local_ratelimit.yaml'), { service: 'clt', namespace: 'echo', labels: { app: 'clt' } }, clock);
    const pipeline = new InboundPipeline([phase]);
    // A minimal adapter: the request view, admission, Envoy's local reply for a refusal.
    server = createServer(async (req, res) => {
      const url = req.url ?? '/';
      const view = request({ method: req.method ?? 'GET', authority: req.headers.host ?? '', path: url, headers: { ...req.headers }, remoteAddress: req.socket.remoteAddress ?? '', remotePort: req.socket.remotePort ?? 0, localPort: req.socket.localPort ?? 0 });
      const a = await pipeline.admit(view);
      if (!a.admitted) {
        res.writeHead(a.denial.status, { 'content-type': 'text/plain', ...a.denial.headers, 'x-meshlet-response-flags': (a.denial as RateLimitDenial).flag });
        res.end(a.denial.body);
        return;
      }
      res.end('hello');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('answers the second request 429 local_rate_limited, and serves again once the bucket refilled', async () => {
    const ok = await fetch(`${base}/a`);
    assert.equal(ok.status, 200);
    assert.equal(await ok.text(), 'hello');
    const limited = await fetch(`${base}/b`);
    assert.equal(limited.status, 429);
    assert.equal(await limited.text(), 'local_rate_limited');
    assert.equal(limited.headers.get('x-local-rate-limit'), 'true');
    assert.equal(limited.headers.get('x-meshlet-response-flags'), 'RL');
    assert.equal(limited.headers.get('x-envoy-ratelimited'), null, 'Envoy\'s local rate limit filter does not set it');
    clock.advance(600_000);
    assert.equal((await fetch(`${base}/c`)).status, 200);
  });
});
