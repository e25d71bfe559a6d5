/**
 * The local rate limit part of an inbound explanation: the rate limit filters of the request's
 * port (compiled by the rate-limit phase's own code), the request's descriptors, and the buckets
 * it would draw from — found without drawing, so no bucket's level is known or changed.
 *
 * @module
 */
import { ManualClock } from '../core/clock.ts';
import type { AdmissionGate } from '../policies/rate-limit/envoy-filters.ts';
import type { InboundRequest } from './pipeline.ts';
import { compileRateLimit, GATE_PHASES, type RateLimitWorkload } from './rate-limit-phase.ts';

/**
 * One local rate limit filter that looks at the request.
 * @category Server
 */
export interface RateLimitExplanation {
  readonly filter: string;
  /** `EnvoyFilter ns/name configPatches[i]` (and the route or virtual host level). */
  readonly source: string;
  /**
   * The admission step it runs just before, where its EnvoyFilter puts it in Istio's chain
   * (`ext-authz`: CUSTOM authorization, `jwt`, `authorization`): it takes its token even from a
   * request that step refuses. Undefined: after authorization (`INSERT_BEFORE envoy.filters.http.router`).
   */
  readonly runsBefore: 'ext-authz' | 'jwt' | 'authorization' | undefined;
  /** `filter_enabled`: the share of requests the filter looks at. */
  readonly enabledPercent: number;
  /** `filter_enforced`: the share of rate-limited requests refused (0: shadow mode). */
  readonly enforcedPercent: number;
  /** The request's descriptors (`key=value` entries each), built from the request as it is when the filter runs. */
  readonly descriptors: readonly (readonly string[])[];
  /** The buckets the request would draw from, in order (`descriptor k=v: 10 per 60000ms, max 10`, `default: …`). */
  readonly buckets: readonly string[];
  /** The refusal status when enforced (429 unless configured). */
  readonly status: number;
  /** A global rate limit filter's service, `host:port (domain <domain>)`: it decides, and there are no buckets. */
  readonly rateLimitService?: string;
}

function percent(f: { readonly numerator: number; readonly denominator: number } | undefined): number {
  return f === undefined ? 0 : Math.min(100, (f.numerator / f.denominator) * 100);
}

function bucketText(b: { readonly maxTokens: number; readonly tokensPerFill: number; readonly fillIntervalMs: number }): string {
  return `${b.tokensPerFill} per ${b.fillIntervalMs}ms, max ${b.maxTokens}`;
}

/** Explains the filters of one place for the request as it is when they run; each that has a bucket for it adds to `assumes`. */
export type RateLimitExplainer = (place: AdmissionGate | undefined, req: InboundRequest, assumes: string[]) => RateLimitExplanation[];

/**
 * The rate limit filters that look at requests on `localPort` (mTLS when `tls`), compiled by the
 * rate-limit phase's own code, explained place by place: before CUSTOM (`ext_authz`), JWT
 * (`jwt_authn`) or authorization (`rbac`), or after them all (undefined), as the phases run them.
 */
export function rateLimitExplainer(resources: Parameters<typeof compileRateLimit>[0], workload: RateLimitWorkload, rootNamespace: string, localPort: number, tls: boolean): RateLimitExplainer {
  const phase = compileRateLimit(resources, workload, rootNamespace, new ManualClock());
  const filters = phase?.filtersFor(localPort, tls) ?? [];
  const site = { sourceCluster: phase?.sourceCluster ?? '', destinationCluster: `inbound|${localPort}||` };
  return (place, req, assumes) => {
    const rateLimits: RateLimitExplanation[] = [];
    for (const f of filters) {
      if (f.gate !== place) continue;
      const descriptors = f.descriptors?.build(req, site) ?? [];
      const m = f.limiter.match(descriptors);
      const buckets = [
        ...m.descriptors.map((d) => `descriptor ${d.entries.map((e) => `${e.key}=${e.value}`).join(',')}${d.wildcard ? ' (a bucket per value)' : ''}: ${bucketText(d.bucket)}`),
        ...(m.defaultBucket === undefined ? [] : [`default: ${bucketText(m.defaultBucket)}`]),
      ];
      const x: RateLimitExplanation = {
        filter: f.name,
        source: f.source,
        runsBefore: f.gate === undefined ? undefined : (GATE_PHASES[f.gate] as RateLimitExplanation['runsBefore']),
        enabledPercent: percent(f.config.filterEnabled),
        enforcedPercent: percent(f.config.filterEnforced),
        descriptors: descriptors.map((d) => d.map((e) => `${e.key}=${e.value}`)),
        buckets,
        status: f.config.status,
        ...(f.global === undefined ? {} : { rateLimitService: `${f.global.target} (domain ${f.global.domain})` }),
      };
      rateLimits.push(x);
      if (f.global !== undefined) {
        // A global filter asks its service only for a request with descriptors.
        if (descriptors.length === 0) continue;
        const fail = f.global.failureModeDeny ? `${f.global.statusOnError} if it cannot be asked (failure_mode_deny)` : 'allowed if it cannot be asked';
        assumes.push(`${f.name} (${f.source}) is answered OK by the rate limit service ${x.rateLimitService} for ${x.descriptors.map((d) => d.join(',')).join('; ')} (else ${x.status}; ${fail})`);
        continue;
      }
      if (buckets.length === 0) continue;
      const share = x.enabledPercent < 100 ? ` (the filter looks at ${x.enabledPercent}% of requests)` : '';
      const enforced = x.enforcedPercent === 0 ? '; not enforced: a request over the limit still passes' : x.enforcedPercent < 100 ? `; ${x.enforcedPercent}% of requests over the limit are refused ${x.status}` : `; else ${x.status} local_rate_limited`;
      const where = `${x.runsBefore === undefined ? '' : `, before ${STEP[x.runsBefore]}`}${f.config.perDownstreamConnection ? '; the buckets of the request\'s connection' : ''}`;
      assumes.push(`${f.name} (${f.source}${where}) has a token in ${buckets.length === 1 ? 'bucket' : 'buckets'} ${buckets.join('; ')}${share}${enforced}`);
    }
    return rateLimits;
  };
}

/** How the steps a filter can run before are named in explanations. */
export const STEP: Readonly<Record<NonNullable<RateLimitExplanation['runsBefore']>, string>> = Object.freeze({ 'ext-authz': 'CUSTOM authorization', jwt: 'JWT authentication', authorization: 'authorization' });
