/**
 * Fixtures of the inbound local rate limit phase's unit tests: Istio's rate-limit testdata, local
 * rate limit EnvoyFilters, requests as a server sees them, and the phase compiled for a workload.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ManualClock, Random } from '../../src/core/clock.ts';
import type { AnyResource } from '../../src/config/resource.ts';
import { type InboundRequest, newInboundRequest } from '../../src/inbound/pipeline.ts';
import { compileRateLimit, type RateLimitPhase, type RateLimitWorkload } from '../../src/inbound/rate-limit-phase.ts';
import { validateYaml } from './config.ts';

export const FIXTURES = join(import.meta.dirname, '../fixtures/istio/ratelimit');
export const LRL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';

/** Validated resources of YAML text (must be valid); `{{ .EchoNamespace }}` is filled in as Istio's test does. */
export function load(yaml: string): AnyResource[] {
  const { resources, errors } = validateYaml(yaml.replaceAll('{{ .EchoNamespace }}', 'echo'));
  assert.deepEqual(errors, []);
  return resources;
}
export const fixture = (file: string) => load(readFileSync(join(FIXTURES, file), 'utf8'));

/** An EnvoyFilter document (spec as an object). */
export function ef(spec: object, name = 'rl', namespace = 'istio-system', extraMeta = ''): string {
  return `apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\n${extraMeta}spec: ${JSON.stringify(spec)}\n---\n`;
}
export const pct = (numerator: number, denominator = 'HUNDRED') => ({ runtime_key: 'k', default_value: { numerator, denominator } });
export const filter = (config: object, match: object = { context: 'SIDECAR_INBOUND' }, operation = 'INSERT_BEFORE', name = 'envoy.filters.http.local_ratelimit') => ({
  applyTo: 'HTTP_FILTER',
  match,
  patch: { operation, value: { name, typed_config: { '@type': LRL, stat_prefix: 'http_local_rate_limiter', ...config } } },
});
export const oneBucket = (max: number, interval = '60s', over: object = {}) => ({ token_bucket: { max_tokens: max, tokens_per_fill: max, fill_interval: interval }, filter_enabled: pct(100), filter_enforced: pct(100), ...over });

export function request(init: Partial<InboundRequest> = {}): InboundRequest {
  return newInboundRequest({
    protocol: 'http1',
    method: 'GET',
    scheme: 'http',
    authority: 'srv.echo:80',
    path: '/',
    headers: Object.create(null),
    remoteAddress: '10.0.0.7',
    remotePort: 40000,
    localPort: 8888,
    ...init,
  });
}

export const clt = { principal: 'spiffe://cluster.local/ns/echo/sa/clt', trustDomain: 'cluster.local', namespace: 'echo', serviceAccount: 'clt', address: '10.0.0.7' };
export const srvWorkload: RateLimitWorkload = { service: 'srv', namespace: 'echo', labels: { app: 'srv' } };

/** Compiles, failing the test when no phase comes back. */
export function compile(resources: AnyResource[], workload: RateLimitWorkload, clock: ManualClock, random?: Random, previous?: RateLimitPhase): RateLimitPhase {
  const phase = compileRateLimit(resources, workload, 'istio-system', clock, { random, previous });
  assert.ok(phase !== undefined, 'a rate-limit phase');
  return phase;
}

/** Runs requests through the phase; 'a' admitted, 'r' refused. */
export function outcomes(phase: RateLimitPhase, reqs: readonly Partial<InboundRequest>[]): string {
  return reqs.map((r) => (phase.run(request(r)) === undefined ? 'a' : 'r')).join('');
}

/** A Random that returns the given values in turn. */
export function draws(...values: number[]): Random {
  let i = 0;
  return { next: () => values[i++ % values.length] as number };
}

