/**
 * Test helpers for the authorization engine: policies from YAML (validated as any config
 * is), requests with defaults, and a short way to ask for a decision.
 */
import assert from 'node:assert/strict';
import { validateYaml } from './config.ts';
import type { Resource } from '../../src/config/resource.ts';
import type { AuthzOptions, AuthzWorkload } from '../../src/security/authz/compile.ts';
import { type AuthzEngine, compileAuthz } from '../../src/security/authz/engine.ts';
import type { AuthzRequest, AuthzResult } from '../../src/security/authz/types.ts';

/** The workload most tests judge requests for: `app: httpbin` in `foo`. */
export const HTTPBIN: AuthzWorkload = { namespace: 'foo', labels: { app: 'httpbin', version: 'v1' } };

/** Validated resources from YAML; fails the test on a validation error. */
export function resourcesOf(yaml: string): Resource[] {
  const { resources, errors } = validateYaml(yaml);
  assert.deepEqual(errors, [], 'fixture must validate');
  return resources;
}

/** An AuthorizationPolicy document. */
export function policy(name: string, spec: string, namespace = 'foo', annotations?: Record<string, string>): string {
  const ann = annotations === undefined ? '' : `  annotations: ${JSON.stringify(annotations)}\n`;
  const body = spec
    .trim()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
  return `---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\n${ann}spec:\n${body}\n`;
}

/** An engine for `yaml` and the workload. */
export function engineOf(yaml: string, workload: AuthzWorkload = HTTPBIN, options: AuthzOptions = {}): AuthzEngine {
  return compileAuthz(resourcesOf(yaml), workload, options);
}

/** Request overrides, with shortcuts for the peer and the JWT. */
export type RequestInit = Partial<Omit<AuthzRequest, 'peer'>> & {
  /** The peer's SPIFFE id without `spiffe://` (`cluster.local/ns/foo/sa/sleep`); unset: plaintext. */
  readonly peer?: string;
};

/** A request to httpbin:8000 from 10.0.0.7, plaintext, no JWT, with `init` applied. */
export function request(init: RequestInit = {}): AuthzRequest {
  const { peer, ...rest } = init;
  const claims = rest.claims;
  return {
    method: 'GET',
    scheme: 'http',
    authority: 'httpbin:8000',
    path: '/headers',
    headers: Object.create(null),
    remoteAddress: '10.0.0.7',
    localPort: 8000,
    localAddress: '10.0.0.20',
    requestPrincipal: claims !== undefined && typeof claims.iss === 'string' && typeof claims.sub === 'string' ? `${claims.iss}/${claims.sub}` : undefined,
    claims: undefined,
    ...rest,
    peer: peer === undefined ? undefined : { principal: `spiffe://${peer}` },
  };
}

/** Asks synchronously (fails when the engine would wait for an authorizer). */
export function judge(engine: AuthzEngine, init: RequestInit = {}): AuthzResult {
  const r = engine.evaluate(request(init));
  assert.ok(!(r instanceof Promise), 'evaluation must be synchronous here');
  return r;
}

/** `allow` or `deny`. */
export function decide(engine: AuthzEngine, init: RequestInit = {}): 'allow' | 'deny' {
  return judge(engine, init).decision;
}

/** The fields of an authorization verdict that say what decided it and how (for comparing two verdicts). */
export function verdictOf(r: AuthzResult) {
  return { decision: r.decision, policy: r.policy, rule: r.rule, action: r.action, details: r.details, dryRun: r.dryRun, audit: r.audit };
}
