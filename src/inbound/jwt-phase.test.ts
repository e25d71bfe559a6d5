/**
 * The jwt phase in the admission pipeline, through a fake adapter: Istio's
 * `tests/integration/security/jwt_test.go` authn-authz and headers-params rows (a stand-in
 * authorization phase plays the AuthorizationPolicy `requestPrincipals: [...]`), gRPC statuses,
 * and what the app sees of the request and its context.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { currentContext, type MeshContext } from '../core/context.ts';
import { ManualClock } from '../core/clock.ts';
import type { Headers } from '../core/handler.ts';
import type { JwtAuthenticator } from '../security/jwt/authenticator.ts';
import { jwksOf, makeKey, mint, ra, startJwksServer, validated } from '../security/jwt/fixtures.test.ts';
import { JwtRuntime } from '../security/jwt/runtime.ts';
import { jwtPhase } from './jwt-phase.ts';
import { type InboundRequest, InboundPipeline, newInboundRequest, type Phase, runAdmitted } from './pipeline.ts';

const NOW = 1_700_000_000;
const ISS1 = 'test-issuer-1@istio.io';
const key = makeKey('RS256', 'k');
const T1 = mint(key, { iss: ISS1, sub: 'sub-1', exp: NOW + 3600, scope: 'read write', aud: 'foo', azp: 'web' });
const T2 = mint(key, { iss: ISS1, sub: 'sub-2', exp: NOW + 3600 });
const expired = mint(key, { iss: ISS1, sub: 'sub-1', exp: NOW - 3600 });

const server = await startJwksServer({ '/jwks': { body: jwksOf(key) } });
const runtime = new JwtRuntime({ clock: new ManualClock(0), epochMs: NOW * 1000 });
after(async () => {
  await runtime.close();
  await server.close();
});

let current: JwtAuthenticator | undefined = runtime.compile(
  validated([
    ra('httpbin', 'foo', {
      jwtRules: [{ issuer: ISS1, jwksUri: `${server.url}/jwks`, fromHeaders: [{ name: 'authorization', prefix: 'Bearer ' }, { name: 'x-jwt-token', prefix: 'Value ' }], fromParams: ['token', 'secondary_token'] }],
    }),
  ]),
  { namespace: 'foo', labels: { app: 'httpbin' } },
);

/** Stands in for AuthorizationPolicy `rules: [{to: [{operation: {methods: [GET]}}], from: [{source: {requestPrincipals: [...]}}]}]`. */
function requirePrincipal(...principals: string[]): Phase {
  return {
    name: 'authorization',
    run: (req) =>
      req.method === 'GET' && req.requestPrincipal !== undefined && principals.includes(req.requestPrincipal)
        ? undefined
        : { status: 403, grpcStatus: 7, body: 'RBAC: access denied', reason: 'no policy matched', phase: 'authorization' },
  };
}

const pipeline = new InboundPipeline([jwtPhase(() => current), requirePrincipal(`${ISS1}/sub-1`)]);

function request(init: Partial<InboundRequest> & { headers?: Headers } = {}): InboundRequest {
  return newInboundRequest({
    protocol: 'http1',
    method: 'GET',
    scheme: 'http',
    authority: 'httpbin.foo:8000',
    path: '/headers',
    remoteAddress: '10.0.0.7',
    remotePort: 40000,
    localPort: 8000,
    ...init,
    headers: Object.assign(Object.create(null) as Headers, init.headers),
  });
}

/** A fake adapter: admits, renders a denial as a status, or runs the app inside the context. */
async function serve(req: InboundRequest): Promise<{ status: number; grpcStatus?: number; body?: string; wwwAuthenticate?: string; app?: { ctx: MeshContext; headers: Headers; path: string } }> {
  const a = await pipeline.admit(req);
  if (!a.admitted) return { status: a.denial.status, grpcStatus: a.denial.grpcStatus, body: a.denial.body, wwwAuthenticate: a.denial.headers?.['www-authenticate'] as string | undefined };
  return { status: 200, app: runAdmitted(a, () => ({ ctx: currentContext(), headers: { ...req.headers }, path: req.path })) };
}

describe('Istio jwt_test rows through the pipeline (RequestAuthentication + an ALLOW policy on requestPrincipals)', () => {
  const rows: { name: string; req: Partial<InboundRequest> & { headers?: Headers }; status: number; body?: string }[] = [
    { name: 'valid-token → 200', req: { headers: { authorization: `Bearer ${T1}` } }, status: 200 },
    { name: 'expired-token → 401 from RequestAuthentication', req: { headers: { authorization: `Bearer ${expired}` } }, status: 401, body: 'Jwt is expired' },
    { name: 'no-token → 403 from the authorization policy', req: {}, status: 403, body: 'RBAC: access denied' },
    { name: 'valid token of another subject → 403', req: { headers: { authorization: `Bearer ${T2}` } }, status: 403 },
    { name: 'valid-params → 200', req: { path: `/valid-token?token=${T1}` }, status: 200 },
    { name: 'valid-params-secondary → 200', req: { path: `/valid-token?secondary_token=${T1}` }, status: 200 },
    { name: 'invalid-params → 403', req: { path: `/valid-token?token_value=${T1}` }, status: 403 },
    { name: 'valid-token-set → 200', req: { path: `/valid-token?token=${T1}&secondary_token=${T1}` }, status: 200 },
    { name: 'invalid-token-set → 401', req: { path: `/valid-token?token=${T1}&secondary_token=${expired}` }, status: 401 },
    { name: 'valid-header → 200', req: { headers: { 'x-jwt-token': `Value ${T1}` } }, status: 200 },
    { name: 'invalid-header → 403', req: { headers: { 'auth-header-param': `Bearer ${T1}` } }, status: 403 },
    { name: 'two different valid tokens → no principal → 403', req: { headers: { authorization: `Bearer ${T1}`, 'x-jwt-token': `Value ${T2}` } }, status: 403 },
  ];
  for (const r of rows) {
    it(r.name, async () => {
      const got = await serve(request(r.req));
      assert.equal(got.status, r.status, got.body);
      if (r.body !== undefined) assert.equal(got.body, r.body);
    });
  }
});

describe('what the phase gives the app and the later phases', () => {
  it('principal, claims, audiences and presenter; the token is gone from what the app sees', async () => {
    const req = request({ headers: { authorization: `Bearer ${T1}`, accept: '*/*' }, path: '/h?x=1' });
    const got = await serve(req);
    assert.equal(got.status, 200);
    assert.equal(got.app?.ctx.requestPrincipal, `${ISS1}/sub-1`);
    assert.deepEqual(got.app?.ctx.claims?.scope, ['read', 'write']);
    assert.deepEqual([req.audiences, req.presenter], [['foo'], 'web']);
    assert.deepEqual(got.app?.headers, { accept: '*/*' });
  });

  it('a denial carries WWW-Authenticate and the gRPC status for gRPC callers (401 → UNAUTHENTICATED)', async () => {
    const got = await serve(request({ protocol: 'grpc', method: 'POST', path: '/pkg.Svc/Call', headers: { authorization: `Bearer ${expired}` } }));
    assert.deepEqual([got.status, got.grpcStatus, got.body, got.wwwAuthenticate], [401, 16, 'Jwt is expired', 'Bearer realm="http://httpbin.foo:8000/pkg.Svc/Call", error="invalid_token"']);
  });

  it('an audience that is not allowed is 403 / PERMISSION_DENIED', async () => {
    const saved = current;
    current = runtime.compile(validated([ra('aud', 'foo', { jwtRules: [{ issuer: ISS1, jwksUri: `${server.url}/jwks`, audiences: ['bar'] }] })]), { namespace: 'foo', labels: {} });
    try {
      const got = await serve(request({ protocol: 'grpc', headers: { authorization: `Bearer ${T1}` } }));
      assert.deepEqual([got.status, got.grpcStatus, got.body], [403, 7, 'Audiences in Jwt are not allowed']);
    } finally {
      current = saved;
    }
  });

  it('no RequestAuthentication: the phase does nothing, synchronously', () => {
    const phase = jwtPhase(() => undefined);
    const req = request({ headers: { authorization: 'Bearer garbage' } });
    assert.equal(phase.run(req), undefined);
    assert.equal(req.headers.authorization, 'Bearer garbage');
  });

  it('a cached token is admitted without a promise', async () => {
    await serve(request({ headers: { authorization: `Bearer ${T1}` } }));
    const admission = pipeline.admit(request({ headers: { authorization: `Bearer ${T1}` } }));
    assert.ok(!(admission instanceof Promise));
    assert.equal(admission.admitted, true);
  });
});
