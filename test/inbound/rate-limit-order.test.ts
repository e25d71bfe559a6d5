/**
 * Where a local rate limit filter runs among Istio's inbound admission filters follows the
 * EnvoyFilter patch that inserts it, as istiod's `patchHTTPFilters`
 * (pilot/pkg/networking/core/envoyfilter/listener_patch.go) puts it into the chain
 * `buildHTTPConnectionManager` builds (listener_builder.go): istio.metadata_exchange, the CUSTOM
 * pair (envoy.filters.http.rbac with shadow rules, envoy.filters.http.ext_authz),
 * envoy.filters.http.jwt_authn, envoy.filters.http.rbac (ALLOW/DENY), grpc_stats, fault, cors,
 * istio.stats, router.
 *
 * - At the front (INSERT_FIRST; INSERT_BEFORE without a subFilter, "same as insert in the
 *   beginning"; next to metadata_exchange, or the CUSTOM pair's first filter): every request
 *   takes a token, even one the external authorizer, JWT or RBAC then refuses, and a request
 *   without a token is answered 429 before JWT or RBAC look at it (no 401/403).
 * - Between the CUSTOM pair and jwt_authn, or between jwt_authn and rbac: the steps before it
 *   refuse without taking a token, those after it after the token is taken.
 * - After rbac (INSERT_BEFORE the router, as most guides write it): only admitted requests take tokens.
 * - Next to a filter the chain does not have: istiod inserts nothing, nothing is limited.
 *
 * Each shape runs over real servers (node:http through mesh.createServer, Express 5, Fastify 5),
 * and over a grpc-js server; several rate limit filters run in the order the patches give.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createMesh } from '../../src/index.ts';
import { ManualClock } from '../../src/core/clock.ts';
import type { InboundEndMessage } from '../../src/core/observe.ts';
import { frameworks, raw } from '../helpers/frameworks.ts';
import { until } from '../helpers/until.ts';
import { type Echo, grpc, unary } from '../helpers/grpc.ts';
import { md, plainClient, startMeshGrpcServer } from '../helpers/grpc-server.ts';

const ISSUER = 'testing@secure.istio.io';
const LRL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
const ALL = { runtime_key: 'k', default_value: { numerator: 100, denominator: 'HUNDRED' } };
const HCM = 'envoy.filters.network.http_connection_manager';
const meta = (name: string) => ({ name, namespace: 'foo' });

/** A local rate limit filter named `name` with one token per 600 s, refusals marked `x-limited-by: <tag>`, inserted by `operation` next to `subFilter`. */
function limit(operation: string, subFilter: string | undefined, { name = 'envoy.filters.http.local_ratelimit', tag = 'rl', ef = 'rl' } = {}): object {
  return {
    apiVersion: 'networking.istio.io/v1alpha3',
    kind: 'EnvoyFilter',
    metadata: meta(ef),
    spec: {
      workloadSelector: { labels: { app: 'httpbin' } },
      configPatches: [
        {
          applyTo: 'HTTP_FILTER',
          match: { context: 'SIDECAR_INBOUND', listener: { filterChain: { filter: subFilter === undefined ? { name: HCM } : { name: HCM, subFilter: { name: subFilter } } } } },
          patch: {
            operation,
            value: {
              name,
              typed_config: {
                '@type': LRL,
                stat_prefix: tag,
                token_bucket: { max_tokens: 1, tokens_per_fill: 1, fill_interval: '600s' },
                filter_enabled: ALL,
                filter_enforced: ALL,
                response_headers_to_add: [{ header: { key: 'x-limited-by', value: tag } }],
              },
            },
          },
        },
      ],
    },
  };
}

function authn(jwks: string, custom: boolean): object[] {
  return [
    { apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: meta('jwt'), spec: { jwtRules: [{ issuer: ISSUER, jwks }] } },
    { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: meta('deny'), spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/denied'] } }] }] } },
    ...(custom ? [{ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: meta('ext'), spec: { action: 'CUSTOM', provider: { name: 'ext' }, rules: [{ to: [{ operation: { paths: ['/ext/*'] } }] }] } }] : []),
  ];
}

/** An external authorizer that refuses every check, and counts them. */
function refusingAuthorizer(): Promise<{ server: Server; port: number; checks: () => number }> {
  let checks = 0;
  const server = createServer((_req, res) => {
    checks++;
    res.writeHead(403);
    res.end('denied by the authorizer');
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port, checks: () => checks })));
}

// The script every shape runs, with a bucket of one token: each step's status says whether the
// steps before it took the token.
//   1. /ext/x, refused by the external authorizer (CUSTOM)          403
//   2. /ok with a token signed by another key, refused by jwt_authn   401
//   3. /denied with a valid token, refused by the DENY policy (rbac)  403
//   4. /ok with a valid token                                         200
//   5. /ok with a valid token                                         429 once the token is gone
const FRONT = [403, 429, 429, 429, 429]; // the authorizer's refusal took the token; no 401/403 after it
const BEFORE_JWT = [403, 401, 429, 429, 429]; // after the authorizer, before jwt_authn: the bad token took it
const BEFORE_RBAC = [403, 401, 403, 429, 429]; // after jwt_authn, before rbac: the request RBAC denies took it
const AFTER = [403, 401, 403, 200, 429]; // only the admitted request takes a token
const NOWHERE = [403, 401, 403, 200, 200];

const shapes: { name: string; op: string; sub?: string; want: number[] }[] = [
  { name: "INSERT_BEFORE without a subFilter (Istio's task and testdata)", op: 'INSERT_BEFORE', want: FRONT },
  { name: 'INSERT_FIRST', op: 'INSERT_FIRST', want: FRONT },
  { name: 'INSERT_FIRST with subFilter router (the subFilter does not matter)', op: 'INSERT_FIRST', sub: 'envoy.filters.http.router', want: FRONT },
  { name: 'INSERT_AFTER istio.metadata_exchange', op: 'INSERT_AFTER', sub: 'istio.metadata_exchange', want: FRONT },
  { name: 'INSERT_BEFORE envoy.filters.http.rbac: the first RBAC filter is CUSTOM’s, before ext_authz', op: 'INSERT_BEFORE', sub: 'envoy.filters.http.rbac', want: FRONT },
  { name: 'INSERT_AFTER envoy.filters.http.rbac: between CUSTOM’s RBAC filter and ext_authz', op: 'INSERT_AFTER', sub: 'envoy.filters.http.rbac', want: FRONT },
  { name: 'INSERT_BEFORE envoy.filters.http.ext_authz', op: 'INSERT_BEFORE', sub: 'envoy.filters.http.ext_authz', want: FRONT },
  { name: 'INSERT_AFTER envoy.filters.http.ext_authz', op: 'INSERT_AFTER', sub: 'envoy.filters.http.ext_authz', want: BEFORE_JWT },
  { name: 'INSERT_BEFORE envoy.filters.http.jwt_authn', op: 'INSERT_BEFORE', sub: 'envoy.filters.http.jwt_authn', want: BEFORE_JWT },
  { name: 'INSERT_AFTER envoy.filters.http.jwt_authn', op: 'INSERT_AFTER', sub: 'envoy.filters.http.jwt_authn', want: BEFORE_RBAC },
  { name: 'INSERT_BEFORE envoy.filters.http.grpc_stats', op: 'INSERT_BEFORE', sub: 'envoy.filters.http.grpc_stats', want: AFTER },
  { name: 'INSERT_BEFORE envoy.filters.http.fault', op: 'INSERT_BEFORE', sub: 'envoy.filters.http.fault', want: AFTER },
  { name: 'INSERT_AFTER envoy.filters.http.cors', op: 'INSERT_AFTER', sub: 'envoy.filters.http.cors', want: AFTER },
  { name: 'INSERT_BEFORE istio.stats', op: 'INSERT_BEFORE', sub: 'istio.stats', want: AFTER },
  { name: 'INSERT_BEFORE envoy.filters.http.router (the common guide form)', op: 'INSERT_BEFORE', sub: 'envoy.filters.http.router', want: AFTER },
  { name: 'INSERT_BEFORE a filter the inbound chain lacks (grpc_web): not inserted', op: 'INSERT_BEFORE', sub: 'envoy.filters.http.grpc_web', want: NOWHERE },
];

const servers = frameworks.filter((f) => ['node:http (mesh.createServer)', 'Express 5', 'Fastify 5'].includes(f.name));

describe('local rate limit: where the patch puts the filter among ext_authz, jwt_authn and rbac', () => {
  let jwks = '';
  let valid = '';
  let forged = '';
  let authorizer: Awaited<ReturnType<typeof refusingAuthorizer>>;
  before(async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const other = await generateKeyPair('RS256');
    jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256' }] });
    const exp = Math.floor(Date.now() / 1000) + 3600;
    valid = await new SignJWT({ iss: ISSUER, sub: 'alice', exp }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(privateKey);
    forged = await new SignJWT({ iss: ISSUER, sub: 'alice', exp }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(other.privateKey);
    authorizer = await refusingAuthorizer();
  });
  after(() => new Promise<void>((r) => authorizer.server.close(() => r())));

  for (const fw of servers) {
    describe(fw.name, () => {
      for (const shape of shapes) {
        it(`${shape.name}: ${shape.want.join(' ')}`, async () => {
          const mesh = await createMesh({
            service: 'httpbin',
            namespace: 'foo',
            labels: { app: 'httpbin' },
            config: [...authn(jwks, true), limit(shape.op, shape.sub)],
            clock: new ManualClock(0),
            extensionProviders: [{ name: 'ext', envoyExtAuthzHttp: { service: '127.0.0.1', port: authorizer.port } }],
            logger: { warn: () => {} },
          });
          const server = await fw.start(mesh);
          try {
            const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
            const got = [];
            for (const [path, token] of [
              ['/ext/x', valid],
              ['/ok', forged],
              ['/denied', valid],
              ['/ok', valid],
              ['/ok', valid],
            ] as const) {
              const r = await raw(server.port, path, { headers: bearer(token) });
              got.push(r.statusCode);
              if (r.statusCode === 429) {
                assert.equal(r.text, 'local_rate_limited');
                assert.equal(r.headers['x-limited-by'], 'rl');
              }
            }
            assert.deepEqual(got, shape.want);
          } finally {
            await server.close();
            await mesh.close();
          }
        });
      }
    });
  }

  it('without CUSTOM, INSERT_BEFORE envoy.filters.http.rbac is the ALLOW/DENY filter: after jwt_authn, before authorization', async () => {
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: [...authn(jwks, false), limit('INSERT_BEFORE', 'envoy.filters.http.rbac')], clock: new ManualClock(0), logger: { warn: () => {} } });
    const server = await (servers[0] as (typeof servers)[number]).start(mesh);
    try {
      assert.deepEqual(mesh.diagnostics().inboundPhases, ['jwt', 'rate-limit', 'authorization']);
      const got = [];
      for (const [path, token] of [
        ['/ok', forged],
        ['/denied', valid],
        ['/ok', valid],
      ] as const) {
        got.push((await raw(server.port, path, { headers: { authorization: `Bearer ${token}` } })).statusCode);
      }
      assert.deepEqual(got, [401, 403, 429]);
    } finally {
      await server.close();
      await mesh.close();
    }
  });

  it("Istio's per-route form: the filter at the front (enabled by no one), the bucket in the route's config; requests RBAC denies take the route's tokens", async () => {
    const front = limit('INSERT_BEFORE', undefined) as { spec: { configPatches: { patch: { value: { typed_config: Record<string, unknown> } } }[] } };
    const tc = (front.spec.configPatches[0] as (typeof front.spec.configPatches)[number]).patch.value.typed_config;
    const routeConfig = { ...tc };
    for (const k of ['token_bucket', 'filter_enabled', 'filter_enforced', 'response_headers_to_add']) delete tc[k];
    const route = {
      applyTo: 'HTTP_ROUTE',
      match: { context: 'SIDECAR_INBOUND', routeConfiguration: { vhost: { route: { action: 'ANY' } } } },
      patch: { operation: 'MERGE', value: { typed_per_filter_config: { 'envoy.filters.http.local_ratelimit': routeConfig } } },
    };
    const ef = { ...front, spec: { ...front.spec, configPatches: [...front.spec.configPatches, route] } };
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: [...authn(jwks, false), ef], clock: new ManualClock(0), logger: { warn: () => {} } });
    const server = await (servers[0] as (typeof servers)[number]).start(mesh);
    try {
      assert.deepEqual(mesh.diagnostics().inboundPhases, ['rate-limit', 'jwt', 'authorization']);
      const auth = { authorization: `Bearer ${valid}` };
      assert.equal((await raw(server.port, '/denied', { headers: auth })).statusCode, 403);
      const r = await raw(server.port, '/ok', { headers: auth });
      assert.deepEqual([r.statusCode, r.text, r.headers['x-limited-by']], [429, 'local_rate_limited', 'rl']);
    } finally {
      await server.close();
      await mesh.close();
    }
  });

  it('INSERT_AFTER envoy.filters.http.rbac with DENY and ALLOW policies lands between their two RBAC filters: run after authorization, with a warning', async () => {
    const allow = { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: meta('allow'), spec: { action: 'ALLOW', rules: [{ to: [{ operation: { paths: ['/ok', '/denied'] } }] }] } };
    const warnings: string[] = [];
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: [...authn(jwks, false), allow, limit('INSERT_AFTER', 'envoy.filters.http.rbac')], clock: new ManualClock(0), logger: { warn: (m) => warnings.push(m) } });
    const server = await (servers[0] as (typeof servers)[number]).start(mesh);
    try {
      assert.match(warnings.join('\n'), /EnvoyFilter foo\/rl configPatches\[0\]: istiod puts this local rate limit filter between two of the RBAC filters it builds for AUDIT, DENY and ALLOW policies/);
      const got = [];
      for (const path of ['/other', '/ok', '/ok']) got.push((await raw(server.port, path)).statusCode);
      assert.deepEqual(got, [403, 200, 429], 'the request the ALLOW policy denies takes no token in meshlet');
    } finally {
      await server.close();
      await mesh.close();
    }
  });

  it('the phases in use show where the filters run: a front one and one before the router', async () => {
    const mesh = await createMesh({
      service: 'httpbin',
      namespace: 'foo',
      labels: { app: 'httpbin' },
      config: [...authn(jwks, true), limit('INSERT_FIRST', undefined, { ef: 'a' }), limit('INSERT_BEFORE', 'envoy.filters.http.router', { ef: 'b' })],
      extensionProviders: [{ name: 'ext', envoyExtAuthzHttp: { service: '127.0.0.1', port: authorizer.port } }],
      logger: { warn: () => {} },
    });
    try {
      assert.deepEqual(mesh.diagnostics().inboundPhases, ['rate-limit', 'ext-authz', 'jwt', 'authorization', 'rate-limit']);
    } finally {
      await mesh.close();
    }
  });

  it('the external authorizer is not asked about a request a front filter refuses', async () => {
    const mesh = await createMesh({
      service: 'httpbin',
      namespace: 'foo',
      labels: { app: 'httpbin' },
      config: [...authn(jwks, true), limit('INSERT_FIRST', undefined)],
      clock: new ManualClock(0),
      extensionProviders: [{ name: 'ext', envoyExtAuthzHttp: { service: '127.0.0.1', port: authorizer.port } }],
      logger: { warn: () => {} },
    });
    const server = await (servers[0] as (typeof servers)[number]).start(mesh);
    const ends: InboundEndMessage[] = [];
    const onEnd = (m: unknown) => ends.push(m as InboundEndMessage);
    subscribe('meshlet:inbound:end', onEnd);
    try {
      const asked = authorizer.checks();
      assert.equal((await raw(server.port, '/ext/a')).statusCode, 403);
      assert.equal((await raw(server.port, '/ext/b')).statusCode, 429);
      assert.equal(authorizer.checks() - asked, 1, 'the second request never reached ext_authz');
      // Telemetry: the authorizer's refusal is UAEX, the front filter's RL with local_rate_limited.
      await until(() => ends.length === 2, 'both requests observed');
      assert.deepEqual(
        ends.map((e) => [e.status, e.flags, e.details, e.deniedBy]),
        [
          [403, 'UAEX', 'ext_authz_denied', 'authorization'],
          [429, 'RL', 'local_rate_limited', 'rate-limit'],
        ],
      );
    } finally {
      unsubscribe('meshlet:inbound:end', onEnd);
      await server.close();
      await mesh.close();
    }
  });

  it('mesh.explainInbound lists the filters a request meets before the step that refuses it, and where each runs', async () => {
    const A = { name: 'rl.a', tag: 'a', ef: 'a' };
    const B = { name: 'rl.b', tag: 'b', ef: 'b' };
    const mesh = await createMesh({
      service: 'httpbin',
      namespace: 'foo',
      labels: { app: 'httpbin' },
      config: [...authn(jwks, false), limit('INSERT_FIRST', undefined, A), limit('INSERT_BEFORE', 'envoy.filters.http.router', B)],
      logger: { warn: () => {} },
    });
    try {
      const met = async (url: string, token: string) => {
        const e = await mesh.explainInbound({ url, token });
        return { status: e.status, refusedBy: e.refusedBy, limits: e.rateLimits?.map((x) => `${x.filter}${x.runsBefore === undefined ? '' : ` before ${x.runsBefore}`}`), text: String(e) };
      };
      const badToken = await met('/ok', forged);
      assert.deepEqual([badToken.status, badToken.refusedBy, badToken.limits], [401, 'jwt', ['rl.a before jwt']]);
      const denied = await met('/denied', valid);
      assert.deepEqual([denied.status, denied.refusedBy, denied.limits], [403, 'authorization', ['rl.a before jwt']]);
      assert.match(denied.text, /rl\.a \(EnvoyFilter foo\/a configPatches\[0\]; runs before JWT authentication\)/);
      const ok = await met('/ok', valid);
      assert.deepEqual([ok.status, ok.refusedBy, ok.limits], [200, undefined, ['rl.a before jwt', 'rl.b']]);
    } finally {
      await mesh.close();
    }
  });

  it("mesh.explainInbound builds source_cluster as the phase does: the app label's, not the service's", async () => {
    const filter = limit('INSERT_FIRST', undefined) as { spec: { configPatches: { patch: { value: { typed_config: Record<string, unknown> } } }[] } };
    const tc = (filter.spec.configPatches[0] as (typeof filter.spec.configPatches)[number]).patch.value.typed_config;
    tc.rate_limits = [{ actions: [{ source_cluster: {} }] }];
    tc.descriptors = [{ entries: [{ key: 'source_cluster', value: 'productpage.foo' }], token_bucket: { max_tokens: 1, tokens_per_fill: 1, fill_interval: '600s' } }];
    tc.token_bucket = { max_tokens: 100, tokens_per_fill: 100, fill_interval: '600s' };
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'productpage' }, config: [{ ...filter, spec: { configPatches: filter.spec.configPatches } }], clock: new ManualClock(0), logger: { warn: () => {} } });
    const server = await (servers[0] as (typeof servers)[number]).start(mesh);
    try {
      const e = await mesh.explainInbound({ url: '/ok' });
      assert.deepEqual(e.rateLimits?.map((x) => x.descriptors), [[['source_cluster=productpage.foo']]]);
      assert.deepEqual([(await raw(server.port, '/ok')).statusCode, (await raw(server.port, '/ok')).statusCode], [200, 429], 'the phase matched the same descriptor');
    } finally {
      await server.close();
      await mesh.close();
    }
  });

  describe('several rate limit filters run in the order the patches give', () => {
    const A = { name: 'rl.a', tag: 'a', ef: 'a' };
    const B = { name: 'rl.b', tag: 'b', ef: 'b' };
    const rows: { name: string; config: () => object[]; second: string }[] = [
      { name: 'a before the router, then b INSERT_FIRST: b runs first (before the JWT and RBAC filters)', config: () => [limit('INSERT_BEFORE', 'envoy.filters.http.router', A), limit('INSERT_FIRST', undefined, B)], second: 'b' },
      { name: 'a before the router, then b before the router: a, b', config: () => [limit('INSERT_BEFORE', 'envoy.filters.http.router', A), limit('INSERT_BEFORE', 'envoy.filters.http.router', B)], second: 'a' },
      { name: 'a before the router, then b INSERT_BEFORE rl.a: b, a', config: () => [limit('INSERT_BEFORE', 'envoy.filters.http.router', A), limit('INSERT_BEFORE', 'rl.a', B)], second: 'b' },
      { name: 'a INSERT_FIRST, then b INSERT_AFTER rl.a: a, b (both at the front)', config: () => [limit('INSERT_FIRST', undefined, A), limit('INSERT_AFTER', 'rl.a', B)], second: 'a' },
      { name: 'a INSERT_FIRST, then b INSERT_FIRST: b, a', config: () => [limit('INSERT_FIRST', undefined, A), limit('INSERT_FIRST', undefined, B)], second: 'b' },
    ];
    for (const row of rows) {
      it(`${row.name}; the second request is refused by ${row.second}`, async () => {
        // Creation times order the EnvoyFilters as istiod does (older first).
        const config = row.config().map((r, i) => ({ ...r, metadata: { ...(r as { metadata: object }).metadata, creationTimestamp: `2024-01-0${i + 1}T00:00:00Z` } }));
        const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: [...authn(jwks, false), ...config], clock: new ManualClock(0), logger: { warn: () => {} } });
        const server = await (servers[0] as (typeof servers)[number]).start(mesh);
        try {
          const auth = { authorization: `Bearer ${valid}` };
          assert.equal((await raw(server.port, '/ok', { headers: auth })).statusCode, 200);
          const r = await raw(server.port, '/ok', { headers: auth });
          assert.deepEqual([r.statusCode, r.headers['x-limited-by']], [429, row.second]);
        } finally {
          await server.close();
          await mesh.close();
        }
      });
    }
  });

  describe('grpc-js server', () => {
    for (const [shape, want] of [
      ['INSERT_FIRST', [grpc.status.UNAUTHENTICATED, grpc.status.UNAVAILABLE]],
      ['INSERT_BEFORE the router', [grpc.status.UNAUTHENTICATED, grpc.status.UNAUTHENTICATED]],
    ] as const) {
      it(`${shape}: a call with a bad token after the bucket is empty gets ${want.map((c) => grpc.status[c]).join(' then ')}`, async () => {
        const patch = shape === 'INSERT_FIRST' ? limit('INSERT_FIRST', undefined) : limit('INSERT_BEFORE', 'envoy.filters.http.router');
        const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: [...authn(jwks, false), patch], clock: new ManualClock(0), logger: { warn: () => {} } });
        const server = await startMeshGrpcServer(mesh);
        const client = plainClient(server.port) as Echo;
        try {
          const codes: number[] = [];
          for (let i = 0; i < 2; i++) {
            const r = await unary(client, { text: 'x' }, { metadata: md({ authorization: `Bearer ${forged}` }) });
            codes.push(r.error?.code ?? grpc.status.OK);
            if (r.error?.code === grpc.status.UNAVAILABLE) assert.equal(r.error.details, 'local_rate_limited');
          }
          assert.deepEqual(codes, want);
          assert.equal(server.seen.length, 0);
        } finally {
          client.close();
          await server.close();
          await mesh.close();
        }
      });
    }
  });
});
