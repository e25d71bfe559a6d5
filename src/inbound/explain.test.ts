/**
 * The inbound explainer agrees with what the server side really does: one table of requests
 * over one config (RequestAuthentication with inline keys, DENY, ALLOW, dry-run, AUDIT, a local
 * rate limit), each explained and then judged by the real admission phases
 * (InboundPolicies → InboundGuard) and by the AuthorizationPolicy engine itself (CUSTOM policies and malformed
 * requests: explain-custom.test.ts). Keys are made at test time and tokens signed with jose.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { verdictOf } from '../../test/helpers/authz.ts';
import { validateYaml } from '../../test/helpers/config.ts';
import type { AnyResource } from '../config/resource.ts';
import { ManualClock } from '../core/clock.ts';
import { compileAuthz } from '../security/authz/engine.ts';
import { explainInbound, type InboundExplainRequest, type InboundExplanation } from './explain.ts';
import { InboundGuard } from './guard.ts';
import { InboundPipeline } from './pipeline.ts';
import { InboundPolicies } from './policies.ts';

const ISSUER = 'testing@secure.istio.io';
const WORKLOAD = { service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' } };
const LRL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';

function load(yaml: string): AnyResource[] {
  const { resources, errors } = validateYaml(yaml);
  assert.deepEqual(errors, []);
  return resources;
}

function config(jwks: string, remoteIssuer = 'remote@example.com'): string {
  const rateLimit = {
    configPatches: [
      {
        applyTo: 'HTTP_FILTER',
        match: { context: 'SIDECAR_INBOUND' },
        patch: {
          operation: 'INSERT_BEFORE',
          value: {
            name: 'envoy.filters.http.local_ratelimit',
            typed_config: {
              '@type': LRL,
              stat_prefix: 'http_local_rate_limiter',
              token_bucket: { max_tokens: 10, tokens_per_fill: 10, fill_interval: '60s' },
              filter_enabled: { runtime_key: 'e', default_value: { numerator: 100, denominator: 'HUNDRED' } },
              filter_enforced: { runtime_key: 'f', default_value: { numerator: 100, denominator: 'HUNDRED' } },
            },
          },
        },
      },
    ],
  };
  return `
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: foo}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 8000, targetPort: 8080}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  jwtRules:
  - issuer: ${ISSUER}
    jwks: '${jwks}'
    audiences: [httpbin]
    outputClaimToHeaders: [{header: x-jwt-sub, claim: sub}]
  - issuer: ${remoteIssuer}
    jwksUri: https://keys.example.com/jwks.json
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: foo}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: [/admin, /admin/*]}}]
    when: [{key: "request.auth.claims[groups]", notValues: [admins]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: foo}
spec:
  action: ALLOW
  rules:
  - from: [{source: {requestPrincipals: ["${ISSUER}/*", "remote@example.com/*"]}}]
  - from: [{source: {principals: [cluster.local/ns/foo/sa/sleep]}}]
    to: [{operation: {methods: [GET], ports: ["8080"]}}]
  - to: [{operation: {paths: [/public/*]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: shadow-deny
  namespace: foo
  annotations: {istio.io/dry-run: "true"}
spec:
  action: DENY
  rules: [{from: [{source: {ipBlocks: [10.9.0.0/16]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-public, namespace: istio-system}
spec:
  action: AUDIT
  rules: [{to: [{operation: {paths: [/public/*]}}]}]
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: rl, namespace: foo}
spec: ${JSON.stringify(rateLimit)}
`;
}

interface Tokens {
  user: string;
  admin: string;
  expired: string;
  wrongAudience: string;
  otherKey: string;
  remote: string;
  unknownIssuer: string;
}

let resources: AnyResource[] = [];
let tokens: Tokens;

before(async () => {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const other = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  const now = Math.floor(Date.now() / 1000);
  const sign = (claims: Record<string, unknown>, key = privateKey, kid = 'k1') => new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid }).sign(key);
  tokens = {
    user: await sign({ iss: ISSUER, sub: 'alice', aud: 'httpbin', exp: now + 3600, groups: ['users'] }),
    admin: await sign({ iss: ISSUER, sub: 'root', aud: 'httpbin', exp: now + 3600, groups: ['admins'] }),
    expired: await sign({ iss: ISSUER, sub: 'alice', aud: 'httpbin', exp: now - 600 }),
    wrongAudience: await sign({ iss: ISSUER, sub: 'alice', aud: 'other', exp: now + 3600 }),
    otherKey: await sign({ iss: ISSUER, sub: 'alice', aud: 'httpbin', exp: now + 3600 }, other.privateKey, 'k1'),
    remote: await sign({ iss: 'remote@example.com', sub: 'bob', exp: now + 3600 }, other.privateKey, 'r1'),
    unknownIssuer: await sign({ iss: 'nobody', sub: 'x', exp: now + 3600 }),
  };
  resources = load(config(JSON.stringify({ keys: [jwk] })));
});

/** The real server side of the workload over `resources`. */
function realGuard(res: readonly AnyResource[]): { guard: InboundGuard; policies: InboundPolicies } {
  const policies = new InboundPolicies({
    workload: { ...WORKLOAD, serviceAccount: 'httpbin' },
    rootNamespace: 'istio-system',
    trustDomain: 'cluster.local',
    clock: new ManualClock(),
    random: { next: () => 0 },
    warn: () => undefined,
  });
  return { guard: new InboundGuard(new InboundPipeline(policies.compile(res)), 'BASE'), policies };
}

interface Row {
  readonly name: string;
  readonly req: InboundExplainRequest;
  /** What the caller gets, from the explanation (checked against the real phases too). */
  readonly status: number;
  readonly refusedBy?: InboundExplanation['refusedBy'];
  /** `policy rule` of the authorization verdict, '' for none. */
  readonly decidedBy?: string;
  readonly check?: (e: InboundExplanation) => void;
}

/** The explained rule with the inline keys. */
function local(e: InboundExplanation) {
  assert.ok(e.jwt !== undefined && e.jwt !== 'given');
  return e.jwt.rules.find((r) => r.issuer === ISSUER);
}

const SLEEP = { principal: 'cluster.local/ns/foo/sa/sleep', ip: '10.0.0.1' };

const rows: (() => Row)[] = [
  () => ({ name: 'no token, no peer: default deny', req: { url: '/headers' }, status: 403, refusedBy: 'authorization', decidedBy: '' }),
  () => ({ name: 'a valid token: allowed by the ALLOW policy rule 0', req: { url: '/headers', token: tokens.user }, status: 200, decidedBy: 'foo/allow 0' }),
  () => ({
    name: 'a valid token at /admin without the admins group: DENY rule 0',
    req: { url: '/admin', headers: { authorization: `Bearer ${tokens.user}` } },
    status: 403,
    refusedBy: 'authorization',
    decidedBy: 'foo/deny-admin 0',
  }),
  () => ({ name: 'an admin token at /admin/users: allowed', req: { url: '/admin/users', token: tokens.admin }, status: 200, decidedBy: 'foo/allow 0' }),
  () => ({
    name: 'a path trick reaches /admin after normalization and is denied',
    req: { url: '/public/../admin', source: SLEEP },
    status: 403,
    refusedBy: 'authorization',
    decidedBy: 'foo/deny-admin 0',
    check: (e) => assert.deepEqual([e.path.normalized, e.path.changed], ['/admin', true]),
  }),
  () => ({ name: '%2e%2e is normalized as well', req: { url: '/public/%2e%2e/admin', token: tokens.admin }, status: 200, decidedBy: 'foo/allow 0', check: (e) => assert.equal(e.path.normalized, '/admin') }),
  () => ({ name: 'an encoded NUL is refused (400)', req: { url: '/a%00b', token: tokens.user }, status: 400, refusedBy: 'path', check: (e) => assert.equal(e.authz, undefined) }),
  () => ({
    name: 'an expired token: 401 Jwt is expired, authorization not reached',
    req: { url: '/headers', token: tokens.expired },
    status: 401,
    refusedBy: 'jwt',
    check: (e) => {
      assert.equal(e.authz, undefined);
      assert.ok(e.jwt !== undefined && e.jwt !== 'given');
      assert.equal(e.jwt.denial?.body, 'Jwt is expired');
      assert.equal(local(e)?.tokens[0]?.problem, 'Jwt is expired');
      // Rules are tried by issuer: the remote one does not know this issuer.
      assert.equal(e.jwt.rules[0]?.tokens[0]?.problem, 'Jwt issuer is not configured (iss "testing@secure.istio.io")');
    },
  }),
  () => ({ name: 'a wrong audience: 403 from the jwt step', req: { url: '/headers', token: tokens.wrongAudience }, status: 403, refusedBy: 'jwt' }),
  () => ({
    name: 'a signature by another key: 401 (inline keys are really checked)',
    req: { url: '/headers', token: tokens.otherKey },
    status: 401,
    refusedBy: 'jwt',
    check: (e) => {
      assert.ok(e.jwt !== undefined && e.jwt !== 'given');
      assert.equal(e.jwt.denial?.body, 'Jwt verification fails');
      assert.equal(local(e)?.signature, 'checked');
      assert.equal(local(e)?.tokens[0]?.keysNeeded, true);
    },
  }),
  () => ({ name: 'an issuer no rule names: 401', req: { url: '/headers', token: tokens.unknownIssuer }, status: 401, refusedBy: 'jwt' }),
  () => ({
    name: 'a token that is not a JWT in the header: 401 with Envoy text',
    req: { url: '/headers', headers: { authorization: 'Bearer not-a-jwt' } },
    status: 401,
    refusedBy: 'jwt',
    check: (e) => {
      assert.ok(e.jwt !== undefined && e.jwt !== 'given');
      assert.equal(e.jwt.tokens[0]?.error, 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections');
    },
  }),
  () => ({ name: 'the mTLS peer sleep, GET on port 8080: ALLOW rule 1', req: { url: '/headers', source: SLEEP }, status: 200, decidedBy: 'foo/allow 1' }),
  () => ({ name: 'sleep, POST: not rule 1 (GET only): default deny', req: { url: '/headers', method: 'POST', source: SLEEP }, status: 403, refusedBy: 'authorization', decidedBy: '' }),
  () => ({ name: 'sleep on another local port: default deny', req: { url: '/headers', source: SLEEP, port: 9090 }, status: 403, refusedBy: 'authorization', decidedBy: '' }),
  () => ({
    name: 'the URL\'s service port 8000 maps to local port 8080',
    req: { url: 'http://httpbin.foo:8000/headers', source: SLEEP },
    status: 200,
    decidedBy: 'foo/allow 1',
    check: (e) => assert.deepEqual([e.request.localPort, e.request.authority], [8080, 'httpbin.foo:8000']),
  }),
  () => ({
    name: '/public/x: allowed by rule 2, audited, and the rate limit bucket named',
    req: { url: '/public/x', source: { ip: '10.9.1.1' } },
    status: 200,
    decidedBy: 'foo/allow 2',
    check: (e) => {
      assert.ok(e.authz !== undefined);
      assert.deepEqual(e.authz.result.audit, { policy: 'istio-system/audit-public', rule: 0 });
      assert.deepEqual(
        e.authz.result.dryRun.map((d) => [d.action, d.result, d.policy]),
        [['DENY', 'deny', 'foo/shadow-deny']],
      );
      assert.equal(e.rateLimits?.length, 1);
      assert.deepEqual(e.rateLimits?.[0]?.buckets, ['default: 10 per 60000ms, max 10']);
      assert.ok(e.assumes.some((a) => a.includes('10 per 60000ms')));
    },
  }),
  () => ({
    name: 'a token whose keys would be fetched: allowed if the signature verifies, and said so',
    req: { url: '/headers', token: tokens.remote },
    status: 200,
    decidedBy: 'foo/allow 0',
    check: (e) => {
      assert.ok(e.jwt !== undefined && e.jwt !== 'given');
      assert.equal(e.jwt.assumedSignature, true);
      assert.equal(e.requestPrincipal, 'remote@example.com/bob');
      assert.ok(e.assumes.some((a) => a.includes('https://keys.example.com/jwks.json')));
    },
  }),
  () => ({
    name: 'principal and claims given directly: JWT not evaluated',
    req: { url: '/admin', requestPrincipal: `${ISSUER}/root`, claims: { iss: ISSUER, sub: 'root', groups: ['admins'] } },
    status: 200,
    decidedBy: 'foo/allow 0',
    check: (e) => assert.equal(e.jwt, 'given'),
  }),
];

describe('explainInbound agrees with the real server side', () => {
  for (const make of rows) {
    it('row', async (t) => {
      const row = make();
      t.diagnostic(row.name);
      const e = await explainInbound(resources, row.req, { workload: WORKLOAD });
      assert.equal(e.status, row.status, String(e));
      assert.equal(e.refusedBy, row.refusedBy);
      if (row.decidedBy !== undefined) {
        assert.ok(e.authz !== undefined, 'authorization reached');
        assert.equal(e.authz.result.policy === undefined ? '' : `${e.authz.result.policy} ${e.authz.result.rule}`, row.decidedBy);
      }
      row.check?.(e);
      assert.ok(String(e).includes(e.status === 200 ? 'reaches the app' : `${e.status}, refused by`));

      // The AuthorizationPolicy engine on the request as authorization saw it.
      if (e.authz !== undefined) {
        const direct = await compileAuthz(resources, WORKLOAD, { rootNamespace: 'istio-system' }).evaluate({
          method: e.request.method,
          scheme: e.request.scheme,
          authority: e.request.authority,
          path: e.path.normalized as string,
          headers: {},
          remoteAddress: e.request.remoteAddress,
          localPort: e.request.localPort,
          peer: e.request.peer === undefined ? undefined : { principal: e.request.peer },
          requestPrincipal: e.requestPrincipal,
          claims: e.claims,
        });
        assert.deepEqual(verdictOf(e.authz.result), verdictOf(direct));
      }

      // The real phases, unless the outcome rests on keys an explanation does not fetch (they would be fetched).
      if (row.req.requestPrincipal !== undefined || (e.jwt !== undefined && e.jwt !== 'given' && e.jwt.assumedSignature)) return;
      const { guard, policies } = realGuard(resources);
      try {
        const headers: Record<string, string | string[]> = Object.create(null);
        for (const [k, v] of Object.entries(e.request.headers)) headers[k] = typeof v === 'string' ? v : [...v];
        const j = await guard.judge(e.request.method, e.request.authority, e.path.received, headers, {
          remoteAddress: e.request.remoteAddress,
          remotePort: 40000,
          localPort: e.request.localPort,
          scheme: 'http',
          peer: e.request.peer === undefined ? undefined : { principal: e.request.peer, trustDomain: 'cluster.local', namespace: 'foo', serviceAccount: 'sleep', address: e.request.remoteAddress },
        });
        assert.equal(j.serve ? 200 : j.denial.status, e.status, 'the real phases give the same status');
        if (!j.serve) assert.equal(j.denial.phase, e.refusedBy);
        if (j.serve) {
          assert.equal(j.info.requestPrincipal, e.requestPrincipal);
          if (e.authz !== undefined && e.authz.policies.length > 0) assert.deepEqual([j.info.authz?.policy, j.info.authz?.rule], [e.authz.result.policy, e.authz.result.rule]);
        }
      } finally {
        await policies.close();
      }
    });
  }
});
