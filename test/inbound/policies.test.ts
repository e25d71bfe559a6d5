/**
 * RequestAuthentication, AuthorizationPolicy (ALLOW, DENY, CUSTOM through a real external
 * authorizer) and the local rate limit, through every framework's real entry point — one shared
 * table each, the same answers from node:http, Express 5, Express 4 and Fastify 5. Keys are made
 * at test time; tokens are signed with jose; requests go over real sockets on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createMesh, type Mesh } from '../../src/index.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { frameworks, raw, type Seen } from '../helpers/frameworks.ts';
import { localRateLimitFilter } from '../helpers/rate-limit.ts';

const ISSUER = 'testing@secure.istio.io';

interface Tokens {
  valid: string;
  expired: string;
  notYet: string;
  otherKey: string;
  wrongIssuer: string;
  algNone: string;
  admin: string;
}

async function makeTokens(): Promise<{ jwks: string; tokens: Tokens }> {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const other = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  const now = Math.floor(Date.now() / 1000);
  const sign = (claims: Record<string, unknown>, key = privateKey, kid = 'k1') => new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid }).sign(key);
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return {
    jwks: JSON.stringify({ keys: [jwk] }),
    tokens: {
      valid: await sign({ iss: ISSUER, sub: 'sub-1', exp: now + 3600, groups: ['users'] }),
      admin: await sign({ iss: ISSUER, sub: 'root', exp: now + 3600, groups: ['admins'] }),
      // Beyond Envoy's 60 s clock skew.
      expired: await sign({ iss: ISSUER, sub: 'sub-1', exp: now - 120 }),
      notYet: await sign({ iss: ISSUER, sub: 'sub-1', nbf: now + 600, exp: now + 3600 }),
      otherKey: await sign({ iss: ISSUER, sub: 'sub-1', exp: now + 3600 }, other.privateKey, 'k2'),
      wrongIssuer: await sign({ iss: 'someone-else', sub: 'sub-1', exp: now + 3600 }),
      algNone: `${b64({ alg: 'none', kid: 'k1' })}.${b64({ iss: ISSUER, sub: 'sub-1', exp: now + 3600 })}.`,
    },
  };
}

/** Istio's sample external authorizer, in a few lines: allows `x-ext-authz: allow`, adds a header. */
function extAuthz(): Promise<{ server: Server; port: number; checks: string[] }> {
  const checks: string[] = [];
  const server = createServer((req, res) => {
    checks.push(`${req.method} ${req.url}`);
    if (req.headers['x-ext-authz'] === 'allow') {
      res.writeHead(200, { 'x-ext-authz-added': 'from-authorizer' });
      res.end();
      return;
    }
    res.writeHead(403, { 'x-ext-authz-check-result': 'denied' });
    res.end('denied by ext_authz for not found header `x-ext-authz: allow` in the request');
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port, checks })));
}

function config(jwks: string): object[] {
  const meta = (name: string, annotations?: Record<string, string>) => ({ name, namespace: 'foo', ...(annotations ? { annotations } : {}) });
  return [
    {
      apiVersion: 'security.istio.io/v1',
      kind: 'RequestAuthentication',
      metadata: meta('jwt'),
      spec: { selector: { matchLabels: { app: 'httpbin' } }, jwtRules: [{ issuer: ISSUER, jwks, outputClaimToHeaders: [{ header: 'x-jwt-sub', claim: 'sub' }] }] },
    },
    {
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: meta('deny-admin'),
      spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin', '/admin/*'] } }], when: [{ key: 'request.auth.claims[groups]', notValues: ['admins'] }] }] },
    },
    {
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: meta('allow'),
      spec: {
        action: 'ALLOW',
        rules: [{ from: [{ source: { requestPrincipals: [`${ISSUER}/*`] } }] }, { to: [{ operation: { methods: ['GET'], paths: ['/public/*'] } }] }],
      },
    },
    {
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: meta('ext'),
      spec: { action: 'CUSTOM', provider: { name: 'sample-ext-authz' }, rules: [{ to: [{ operation: { paths: ['/ext/*'] } }] }] },
    },
    {
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: meta('dry-run-deny', { 'istio.io/dry-run': 'true' }),
      spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/public/dry'] } }] }] },
    },
  ];
}

interface Row {
  name: string;
  method?: string;
  path: string;
  /** Tokens by name in the Authorization header (several: one header each). */
  bearer?: (keyof Tokens)[];
  headers?: Record<string, string>;
  status: number;
  /** The denial's body. */
  text?: string | RegExp;
  wwwAuthenticate?: RegExp;
  /** What the app saw. */
  seen?: { path?: string; principal?: string | null; policy?: string; rule?: number; headers?: Record<string, unknown>; query?: Record<string, unknown>; claimGroups?: unknown };
  /** The token, in the query (access_token=). */
  queryToken?: keyof Tokens;
}

const rows: Row[] = [
  { name: 'no token, a path the ALLOW policy opens: served with no principal', path: '/public/a', status: 200, seen: { principal: null, policy: 'foo/allow', rule: 1 } },
  { name: 'no token, any other path: 403 RBAC (default deny once an ALLOW policy applies)', path: '/private', status: 403, text: 'RBAC: access denied' },
  {
    name: 'a valid token: served, principal iss/sub, claims, the claim header, the token removed (forwardOriginalToken: false)',
    path: '/private',
    bearer: ['valid'],
    status: 200,
    seen: { principal: `${ISSUER}/sub-1`, policy: 'foo/allow', rule: 0, headers: { 'x-jwt-sub': 'sub-1' }, claimGroups: ['users'] },
  },
  {
    name: 'a valid token in access_token: served, the parameter gone from the query the app parsed',
    path: '/private?a=1&access_token=TOKEN',
    queryToken: 'valid',
    status: 200,
    seen: { path: '/private', principal: `${ISSUER}/sub-1`, query: { a: '1' } },
  },
  { name: 'an expired token (beyond the 60 s skew): 401 Jwt is expired', path: '/public/a', bearer: ['expired'], status: 401, text: 'Jwt is expired', wwwAuthenticate: /^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/public\/a", error="invalid_token"$/ },
  { name: 'a token not yet valid: 401', path: '/public/a', bearer: ['notYet'], status: 401, text: 'Jwt not yet valid' },
  { name: 'a token signed by a key the JWKS does not have: 401', path: '/private', bearer: ['otherKey'], status: 401, text: "Jwks doesn't have key to match kid or alg from Jwt" },
  { name: 'a token from an issuer no rule names: 401', path: '/private', bearer: ['wrongIssuer'], status: 401, text: 'Jwt issuer is not configured' },
  { name: 'alg none: 401', path: '/private', bearer: ['algNone'], status: 401, text: /^Jwt/ },
  { name: 'two Authorization headers, one a different token: 401 (Node keeps only the first in req.headers)', path: '/private', bearer: ['valid', 'otherKey'], status: 401, text: /Jwt|Jwks/ },
  { name: 'a spoofed claim header without a token never reaches the app', path: '/public/a', headers: { 'x-jwt-sub': 'admin' }, status: 200, seen: { principal: null, headers: {} } },
  { name: 'POST to a GET-only ALLOW rule: 403', method: 'POST', path: '/public/a', status: 403, text: 'RBAC: access denied' },
  { name: 'DENY: /admin with a non-admin token', path: '/admin', bearer: ['valid'], status: 403, text: 'RBAC: access denied' },
  { name: 'DENY is judged on the normalized path: /public/../admin', path: '/public/../admin', bearer: ['valid'], status: 403, text: 'RBAC: access denied' },
  { name: 'DENY is judged on the normalized path: /public/%2e%2e/admin', path: '/public/%2e%2e/admin', bearer: ['valid'], status: 403, text: 'RBAC: access denied' },
  { name: 'DENY does not match an admin token (notValues): served as /admin', path: '/public/../admin', bearer: ['admin'], status: 200, seen: { path: '/admin', principal: `${ISSUER}/root`, policy: 'foo/allow', rule: 0 } },
  { name: 'a dry-run DENY is reported, never enforced', path: '/public/dry', status: 200, seen: { policy: 'foo/allow', rule: 1 } },
  {
    name: 'CUSTOM: the external authorizer allows, and its header reaches the app',
    path: '/ext/a',
    bearer: ['valid'],
    headers: { 'x-ext-authz': 'allow' },
    status: 200,
    seen: { headers: { 'x-ext-authz-added': 'from-authorizer', 'x-jwt-sub': 'sub-1' } },
  },
  { name: "CUSTOM: the external authorizer denies with its own status and body", path: '/ext/a', bearer: ['valid'], status: 403, text: /^denied by ext_authz/ },
  // Istio puts ext_authz before jwt_authn: an authorizer that denies answers before the token is judged, one that allows leaves it to JWT authentication.
  { name: 'CUSTOM runs before JWT authentication: an expired token on a path the authorizer denies gets its denial', path: '/ext/a', bearer: ['expired'], status: 403, text: /^denied by ext_authz/ },
  { name: 'CUSTOM runs before JWT authentication: an expired token the authorizer lets through is then refused (401)', path: '/ext/a', bearer: ['expired'], headers: { 'x-ext-authz': 'allow' }, status: 401, text: 'Jwt is expired' },
];

describe('server-side policies through every framework', () => {
  let jwks: string;
  let tokens: Tokens;
  let ext: Awaited<ReturnType<typeof extAuthz>>;
  before(async () => {
    ({ jwks, tokens } = await makeTokens());
    ext = await extAuthz();
  });
  after(() => new Promise<void>((r) => ext.server.close(() => r())));

  for (const fw of frameworks) {
    describe(fw.name, () => {
      let mesh: Mesh;
      let server: { port: number; close(): Promise<void> };
      before(async () => {
        mesh = await createMesh({
          service: 'httpbin',
          namespace: 'foo',
          labels: { app: 'httpbin' },
          config: config(jwks),
          extensionProviders: [{ name: 'sample-ext-authz', envoyExtAuthzHttp: { service: '127.0.0.1', port: ext.port, includeRequestHeadersInCheck: ['x-ext-authz'], headersToUpstreamOnAllow: ['x-ext-authz-added'] } }],
          logger: { warn: () => {} },
        });
        server = await fw.start(mesh);
      });
      after(async () => {
        await server.close();
        await mesh.close();
      });
      it('runs CUSTOM before JWT authentication, and the other actions after it (as Istio orders ext_authz, jwt_authn and rbac)', () => {
        assert.deepEqual(mesh.diagnostics().inboundPhases, ['ext-authz', 'jwt', 'authorization']);
      });
      for (const row of rows) {
        it(row.name, async () => {
          const headers: Record<string, string | string[]> = { ...row.headers };
          if (row.bearer !== undefined) headers.authorization = row.bearer.length === 1 ? `Bearer ${tokens[row.bearer[0] as keyof Tokens]}` : row.bearer.map((b) => `Bearer ${tokens[b]}`);
          const path = row.queryToken !== undefined ? row.path.replace('TOKEN', tokens[row.queryToken]) : row.path;
          const r = await raw(server.port, path, { method: row.method, headers });
          assert.equal(r.statusCode, row.status, r.text);
          if (row.text !== undefined) {
            if (typeof row.text === 'string') assert.equal(r.text, row.text);
            else assert.match(r.text, row.text);
          }
          if (row.wwwAuthenticate !== undefined) assert.match(String(r.headers['www-authenticate']), row.wwwAuthenticate);
          if (row.status !== 200) return;
          const s = JSON.parse(r.text) as Seen;
          const want = row.seen ?? {};
          assert.equal(s.path, want.path ?? path.split('?')[0]);
          assert.notEqual(s.meshlet, null, 'req.meshlet is set');
          if ('principal' in want) assert.equal(s.meshlet?.requestPrincipal ?? null, want.principal);
          if (want.policy !== undefined) assert.deepEqual([s.meshlet?.authz?.decision, s.meshlet?.authz?.policy, s.meshlet?.authz?.rule], ['allow', want.policy, want.rule]);
          // The token never reaches the app (Istio's default forwardOriginalToken: false).
          assert.equal(s.headers.authorization, undefined);
          if (want.headers !== undefined) assert.deepEqual(s.headers, want.headers);
          if (want.query !== undefined) assert.deepEqual(s.query, want.query);
          if (want.claimGroups !== undefined) assert.deepEqual(s.meshlet?.claims?.groups, want.claimGroups);
        });
      }
    });
  }

  it('the external authorizer was asked by each framework (only for /ext/*)', () => {
    assert.ok(ext.checks.length >= frameworks.length * 2, ext.checks.join('\n'));
    assert.ok(ext.checks.every((c) => c.startsWith('GET /ext/a')), ext.checks.join('\n'));
  });
});

/** Istio's local rate limit task, for this workload: 2 tokens, refilled over 60 s. */
const rateLimit = localRateLimitFilter(
  { name: 'filter-local-ratelimit-svc', namespace: 'foo' },
  2,
  '60s',
  { response_headers_to_add: [{ append: false, header: { key: 'x-local-rate-limit', value: 'true' } }] },
  { app: 'httpbin' },
);

describe('the local rate limit through every framework', () => {
  for (const fw of frameworks) {
    it(`${fw.name}: 2 served, the third 429 local_rate_limited with the configured header, one more after 30 s`, async () => {
      const clock = new ManualClock();
      const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: [rateLimit], clock, logger: { warn: () => {} } });
      const server = await fw.start(mesh);
      try {
        assert.deepEqual(mesh.diagnostics().inboundPhases, ['rate-limit']);
        const statuses: number[] = [];
        for (let i = 0; i < 3; i++) statuses.push((await raw(server.port, '/get')).statusCode);
        const limited = await raw(server.port, '/get');
        assert.deepEqual([...statuses, limited.statusCode], [200, 200, 429, 429]);
        assert.equal(limited.text, 'local_rate_limited');
        assert.equal(limited.headers['x-local-rate-limit'], 'true');
        // Envoy refills continuously: 2 tokens per 60 s is one every 30 s.
        clock.advance(29_999);
        assert.equal((await raw(server.port, '/get')).statusCode, 429);
        clock.advance(1);
        assert.equal((await raw(server.port, '/get')).statusCode, 200);
        assert.equal((await raw(server.port, '/get')).statusCode, 429);
      } finally {
        await server.close();
        await mesh.close();
      }
    });
  }
});

describe('decisions in the log', () => {
  it('debug: every verdict with its policy, rule and dry-run outcomes; info: AUDIT hits', async () => {
    const debug: string[] = [];
    const info: string[] = [];
    const policy = (name: string, spec: object, annotations?: Record<string, string>) => ({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name, namespace: 'foo', ...(annotations ? { annotations } : {}) }, spec });
    const mesh = await createMesh({
      service: 'httpbin',
      namespace: 'foo',
      labels: { app: 'httpbin' },
      config: [
        policy('audit', { action: 'AUDIT', rules: [{ to: [{ operation: { paths: ['/audited'] } }] }] }),
        policy('dry', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/audited'] } }] }] }, { 'istio.io/dry-run': 'true' }),
        policy('deny', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] }),
      ],
      logger: { warn: () => {}, debug: (m) => debug.push(m), info: (m) => info.push(m) },
    });
    const server = await (frameworks[0] as (typeof frameworks)[number]).start(mesh);
    try {
      assert.equal((await raw(server.port, '/audited')).statusCode, 200);
      assert.equal((await raw(server.port, '/x', { method: 'DELETE' })).statusCode, 403);
      assert.deepEqual(debug, [
        'meshlet: authz allow GET /audited: allowed: no ALLOW policy applies to this workload; dry-run: DENY would deny (foo/dry rule 0)',
        'meshlet: authz deny DELETE /x: denied by DENY policy foo/deny rule 0; dry-run: DENY would allow (no dry-run rule matched)',
      ]);
      assert.deepEqual(info.filter((m) => m.includes('audit')), ['meshlet: audit GET /audited: AUDIT policy foo/audit rule 0 matched; allow']);
    } finally {
      await server.close();
      await mesh.close();
    }
  });
});

describe('createMesh extensionProviders', () => {
  const bad: [string, unknown, RegExp][] = [
    ['no name', [{ envoyExtAuthzHttp: { service: 'a', port: 80 } }], /extensionProviders\[0\]: `name` must be a non-empty string/],
    ['a name twice', [{ name: 'x', envoyExtAuthzHttp: { service: 'a', port: 80 } }, { name: 'x', envoyExtAuthzHttp: { service: 'b', port: 80 } }], /extensionProviders\[1\]: provider name "x" is used twice/],
    ['a name twice among providers of different kinds (Istio: duplicate extension provider name)', [{ name: 'x', envoyFileAccessLog: { path: '/dev/stdout' } }, { name: 'x', envoyExtAuthzHttp: { service: 'b', port: 80 } }], /extensionProviders\[1\]: provider name "x" is used twice/],
    ['a name twice among access-log providers', [{ name: 'x', envoyFileAccessLog: { path: '/dev/stdout' } }, { name: 'x', envoyFileAccessLog: { path: '/dev/stderr' } }], /extensionProviders\[1\]: provider name "x" is used twice/],
    ['a kind Istio does not have', [{ name: 'x', envoyExtAuthzHtp: { service: 'a', port: 80 } }], /extensionProviders\[0\] \(x\): unknown provider kind "envoyExtAuthzHtp" \(did you mean "envoyExtAuthzHttp"\?\)/],
    ['two kinds in one provider (a oneof in Istio)', [{ name: 'x', envoyExtAuthzHttp: { service: 'a', port: 80 }, envoyExtAuthzGrpc: { service: 'a', port: 90 } }], /extensionProviders\[0\] \(x\): a provider has exactly one kind .*got envoyExtAuthzHttp, envoyExtAuthzGrpc/],
    ['a provider with no kind', [{ name: 'x' }], /extensionProviders\[0\] \(x\): a provider has exactly one kind .*got none/],
    ['a gRPC authorizer config Istio refuses', [{ name: 'x', envoyExtAuthzGrpc: { service: 'a', port: 0 } }], /extensionProviders\[0\] \(x\)\.envoyExtAuthzGrpc: .*port/],
    ['a config Istio refuses', [{ name: 'x', envoyExtAuthzHttp: { service: 'a', port: 0 } }], /extensionProviders\[0\] \(x\)\.envoyExtAuthzHttp: .*port/],
    ['a body setting Envoy refuses (maxRequestBytes 0)', [{ name: 'x', envoyExtAuthzHttp: { service: 'a', port: 80, includeRequestBodyInCheck: { allowPartialMessage: true } } }], /\(x\)\.envoyExtAuthzHttp: includeRequestBodyInCheck\.maxRequestBytes must be an integer above 0/],
    ['not a list', { name: 'x' }, /`extensionProviders` must be a list/],
    ['an access-log provider with a bad field', [{ name: 'x', envoyFileAccessLog: { logFormat: { text: 1 } } }], /extensionProviders\[0\] \(x\)\.envoyFileAccessLog: logFormat\.text must be a string/],
    ['an access-log format Envoy refuses', [{ name: 'x', envoyFileAccessLog: { logFormat: { text: '%NOPE%' } } }], /extensionProviders\[0\] \(x\)\.envoyFileAccessLog: logFormat\.text: unknown command operator %NOPE% \(at position 0\)/],
  ];
  for (const [name, providers, message] of bad) {
    it(`refuses ${name}, naming where`, async () => {
      await assert.rejects(createMesh({ service: 'httpbin', config: [], extensionProviders: providers as never }), message);
    });
  }

  it("takes Istio's default MeshConfig providers (prometheus, stackdriver, envoy) and tracing ones beside an authorizer; says which it does not run; a CUSTOM policy naming one of them denies", async () => {
    const meshConfig = [
      'extensionProviders:',
      '- name: prometheus',
      '  prometheus: {}',
      '- name: stackdriver',
      '  stackdriver: {}',
      '- name: envoy',
      '  envoyFileAccessLog: {path: /dev/stdout}',
      '- name: otel-tracing',
      '  opentelemetry: {service: opentelemetry-collector.observability.svc.cluster.local, port: 4317}',
      '- name: sample-ext-authz-http',
      '  envoyExtAuthzHttp: {service: ext-authz.foo.svc.cluster.local, port: 8000}',
    ].join('\n');
    const info: string[] = [];
    const policy = {
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'wrong-provider', namespace: 'foo' },
      spec: { action: 'CUSTOM', provider: { name: 'otel-tracing' }, rules: [{ to: [{ operation: { paths: ['/custom'] } }] }] },
    };
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', config: [policy] as never, meshConfig, logger: { info: (m: string) => info.push(m), warn: () => undefined } });
    try {
      assert.ok(info.some((m) => /extension provider stackdriver: meshlet does not run stackdriver providers/.test(m)), info.join('\n'));
      assert.ok(info.some((m) => /extension provider otel-tracing: meshlet does not run opentelemetry providers/.test(m)), info.join('\n'));
      assert.ok(!info.some((m) => /extension provider (prometheus|envoy|sample-ext-authz-http):/.test(m)), info.join('\n'));
      const server = mesh.createServer((_req, res) => res.end('app'));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      try {
        const port = (server.address() as AddressInfo).port;
        const denied = await fetch(`http://127.0.0.1:${port}/custom`);
        assert.equal(denied.status, 403);
        assert.equal(await denied.text(), 'RBAC: access denied');
        const other = await fetch(`http://127.0.0.1:${port}/other`);
        assert.equal(await other.text(), 'app');
      } finally {
        await new Promise<void>((r) => server.close(() => r()));
      }
    } finally {
      await mesh.close();
    }
  });
});
