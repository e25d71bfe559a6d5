/**
 * The inbound policies of one mesh: builds the admission phases (RequestAuthentication,
 * AuthorizationPolicy, local rate limit) from each config the mesh applies, for this workload,
 * as istiod would build its sidecar's filters — the same selection (namespace, root namespace,
 * selector labels), the same order (CUSTOM → jwt → AUDIT/DENY/ALLOW → the inbound cluster's
 * circuit breaker, with local rate limits where their EnvoyFilters insert them: after
 * authorization, or before any of the three).
 *
 * State that outlives one config lives here: the JWT runtime (fetched key sets, verified-token
 * cache), the rate-limit buckets (kept where a new config leaves their settings alone) and the
 * inbound connection pools' counters (kept, with the new config's limits).
 *
 * @module
 */
import type { RateLimitServiceClient } from '../policies/rate-limit/rls-client.ts';
import type { Dispatcher } from 'undici';
import { ofKind, type AnyResource } from '../config/resource.ts';
import type { Clock, Random } from '../core/clock.ts';
import { InvalidArgumentError } from '../core/errors.ts';
import type { WorkloadIdentity } from '../core/observe.ts';
import { compileAuthz } from '../security/authz/engine.ts';
import { type EnvoyExtAuthzHttpConfig, envoyExtAuthzHttp } from '../security/authz/ext-authz-http.ts';
import { type EnvoyExtAuthzGrpcConfig, envoyExtAuthzGrpc, type UnaryCaller } from '../security/authz/ext-authz-grpc.ts';
import type { AuthzResult, ExtAuthzCheck } from '../security/authz/types.ts';
import { spiffeUri } from '../security/identity/spiffe.ts';
import { JwtRuntime } from '../security/jwt/runtime.ts';
import { authorizationPhase, extAuthzPhase } from './authz-phase.ts';
import { jwtPhase } from './jwt-phase.ts';
import type { InboundRequest, Phase } from './pipeline.ts';
import { compileRateLimit, type RateLimitPhase, type RateLimitStats } from './rate-limit-phase.ts';
import { type CompiledInboundPools, compileInboundPool, type InboundPoolCounters } from './connection-pool.ts';
import { optionNames } from '../core/option-names.ts';
import { checkExtensionProvider, type ExtensionProvider, NOT_A_LIST, OTHER_KINDS } from './extension-providers.ts';

export type { ExtensionProvider } from './extension-providers.ts';

/**
 * JWT settings of {@link MeshOptions.jwt}.
 * @category Server
 */
export interface JwtOptions {
  /** Verified tokens remembered (a repeated token skips the signature check); 0 turns it off. @defaultValue 1000 */
  readonly tokenCacheSize?: number | undefined;
  /** Tokens longer than this many characters are refused (`Jwt is too large`) before they are parsed. @defaultValue 16384 */
  readonly maxTokenChars?: number | undefined;
  /** How long fetched keys are fresh. @defaultValue 300000 */
  readonly jwksCacheDurationMs?: number | undefined;
  /** The least time between two key fetches started by an unknown `kid`. @defaultValue 30000 */
  readonly jwksKidRefreshCooldownMs?: number | undefined;
  /** The dispatcher key sets are fetched through (a proxy, extra CAs). @defaultValue a dedicated agent that refuses link-local and cloud-metadata addresses */
  readonly dispatcher?: Dispatcher | undefined;
}

/** The names of {@link JwtOptions} (createMesh refuses others), checked against the type. @internal */
export const JWT_OPTION_NAMES = optionNames<JwtOptions>()(['tokenCacheSize', 'maxTokenChars', 'jwksCacheDurationMs', 'jwksKidRefreshCooldownMs', 'dispatcher']);

/** What the phases need to know about the mesh. */
export interface InboundPolicyOptions {
  readonly workload: WorkloadIdentity;
  readonly rootNamespace: string;
  /** The workload's named ports (a Service's named `targetPort` resolves through them). */
  readonly ports?: Readonly<Record<string, number>> | undefined;
  readonly trustDomain: string;
  readonly trustDomainAliases?: readonly string[];
  readonly numTrustedProxies?: number;
  readonly extensionProviders?: readonly ExtensionProvider[];
  readonly jwt?: JwtOptions;
  /** The dispatcher external authorizers are called through (the mesh's, so they are routed like any call). */
  readonly dispatcher?: Dispatcher;
  /** Makes the client gRPC external authorizers are called through (on the mesh's channel); called at a provider's first check. */
  readonly grpcClient?: (target: string) => UnaryCaller;
  /** Calls the rate limit services of global rate limit filters. @defaultValue none: their calls fail */
  readonly rls?: RateLimitServiceClient;
  readonly clock: Clock;
  readonly random: Random;
  /** Where findings about the compiled policies go (each is said once). */
  readonly warn: (message: string) => void;
  /** When given, every authorization verdict is logged here (which policy and rule, dry-run outcomes). */
  readonly debug?: (message: string) => void;
  /** When given, requests an AUDIT policy matched are logged here (Istio's audit log). */
  readonly info?: (message: string) => void;
}

/** One line per verdict: what was asked, what decided, and what dry-run policies would have done. */
function describeVerdict(req: InboundRequest): string {
  const a = req.authz as AuthzResult;
  const dry = a.dryRun.length === 0 ? '' : `; dry-run: ${a.dryRun.map((d) => `${d.action} would ${d.result}${d.policy === undefined ? ' (no dry-run rule matched)' : ` (${d.policy} rule ${d.rule})`}`).join(', ')}`;
  return `meshlet: authz ${a.decision} ${req.method} ${req.path}${req.requestPrincipal === undefined ? '' : ` (${req.requestPrincipal})`}: ${a.reason}${dry}`;
}

/** Logs each verdict of `phase` (debug) and each AUDIT hit (info). */
function logged(phase: Phase, debug: ((m: string) => void) | undefined, info: ((m: string) => void) | undefined): Phase {
  if (debug === undefined && info === undefined) return phase;
  const log = (req: InboundRequest): void => {
    const a = req.authz as AuthzResult | undefined;
    if (a === undefined) return;
    debug?.(describeVerdict(req));
    if (a.audit !== undefined) info?.(`meshlet: audit ${req.method} ${req.path}${req.requestPrincipal === undefined ? '' : ` (${req.requestPrincipal})`}: AUDIT policy ${a.audit.policy} rule ${a.audit.rule} matched; ${a.decision}`);
  };
  return {
    name: phase.name,
    run(req) {
      const r = phase.run(req);
      if (r instanceof Promise) {
        return r.then((x) => {
          log(req);
          return x;
        });
      }
      log(req);
      return r;
    },
  };
}

/** Turns MeshConfig-shaped providers into the checks the authorization engine calls; throws naming what is wrong. */
export function buildProviders(list: readonly ExtensionProvider[] | undefined, o: Pick<InboundPolicyOptions, 'dispatcher' | 'grpcClient' | 'clock' | 'warn'> & Partial<Pick<InboundPolicyOptions, 'workload' | 'trustDomain' | 'info'>>): Record<string, ExtAuthzCheck> {
  const out: Record<string, ExtAuthzCheck> = Object.create(null);
  if (list === undefined) return out;
  if (!Array.isArray(list)) throw new InvalidArgumentError(NOT_A_LIST);
  const names = new Set<string>();
  list.forEach((p, i) => {
    const checked = checkExtensionProvider(p, i, names);
    if ('problem' in checked) throw new InvalidArgumentError(checked.problem);
    const kind = checked.kind;
    const warn = (m: string) => o.warn(`meshlet: extension provider ${p.name}: ${m}`);
    if (OTHER_KINDS.includes(kind)) {
      o.info?.(`meshlet: extension provider ${p.name}: meshlet does not run ${kind} providers; it is not used (a CUSTOM policy naming it denies what it matches, as Istio does for a provider that is not an authorizer)`);
      return;
    }
    // prometheus is read by the metrics, envoyFileAccessLog, envoyOtelAls and envoyHttpAls by the access logger: not authorizers.
    if (kind === 'envoyExtAuthzGrpc') {
      const w = o.workload;
      const localPrincipal = w === undefined ? undefined : spiffeUri({ trustDomain: o.trustDomain ?? 'cluster.local', namespace: w.namespace, serviceAccount: w.serviceAccount });
      const client = o.grpcClient;
      if (client === undefined) throw new InvalidArgumentError(`createMesh: extensionProviders[${i}] (${p.name}).envoyExtAuthzGrpc: no gRPC client to call it with`);
      out[p.name] = envoyExtAuthzGrpc(p.envoyExtAuthzGrpc as EnvoyExtAuthzGrpcConfig, { name: p.name, client, localPrincipal, clock: o.clock, warn });
    } else if (kind === 'envoyExtAuthzHttp') {
      out[p.name] = envoyExtAuthzHttp(p.envoyExtAuthzHttp as EnvoyExtAuthzHttpConfig, { name: p.name, dispatcher: o.dispatcher, clock: o.clock, warn });
    }
  });
  return out;
}

/** Builds a mesh's admission phases from each config. */
export class InboundPolicies {
  readonly #o: InboundPolicyOptions;
  readonly #jwt: JwtRuntime;
  readonly #providers: Record<string, ExtAuthzCheck>;
  #rateLimit: RateLimitPhase | undefined;
  #pools: CompiledInboundPools | undefined;
  readonly #said = new Set<string>();

  constructor(o: InboundPolicyOptions) {
    this.#o = o;
    this.#providers = buildProviders(o.extensionProviders, o);
    this.#jwt = new JwtRuntime({ ...o.jwt, clock: o.clock });
  }

  #warnOnce(message: string): void {
    if (this.#said.has(message)) return;
    this.#said.add(message);
    this.#o.warn(message);
  }

  /**
   * The phases of `resources` for this workload, in phase order (a kind with no policy that
   * applies adds no phase, and costs nothing per request).
   */
  compile(resources: readonly AnyResource[]): Phase[] {
    const { workload, rootNamespace } = this.#o;
    const who = { namespace: workload.namespace, labels: workload.labels };
    const phases: Phase[] = [];
    const jwt = this.#jwt.compile(ofKind(resources, 'RequestAuthentication'), who, { rootNamespace });
    const authz = compileAuthz(resources, who, {
      rootNamespace,
      trustDomain: this.#o.trustDomain,
      trustDomainAliases: this.#o.trustDomainAliases,
      numTrustedProxies: this.#o.numTrustedProxies,
      providers: this.#providers,
    });
    for (const f of authz.findings) if (f.level !== 'info') this.#warnOnce(`meshlet: AuthorizationPolicy ${f.policy}: ${f.message}`);
    const own = { service: workload.service, workloadName: workload.workloadName, namespace: workload.namespace, labels: workload.labels, ...(this.#o.ports === undefined ? {} : { ports: this.#o.ports }) };
    this.#rateLimit = compileRateLimit(resources, own, rootNamespace, this.#o.clock, {
      random: this.#o.random,
      previous: this.#rateLimit,
      ...(this.#o.rls === undefined ? {} : { rls: this.#o.rls }),
    });
    // Local rate limits where their EnvoyFilters put them: before CUSTOM, JWT or authorization, or after them all.
    const limits = this.#rateLimit?.phases() ?? [];
    for (const m of this.#rateLimit?.approximations ?? []) this.#warnOnce(m);
    const limitsBefore = (name: string) => {
      for (const l of limits) if (l.before === name) phases.push(l);
    };
    // CUSTOM before JWT authentication, AUDIT/DENY/ALLOW after it, as Istio orders Envoy's filters.
    limitsBefore('ext-authz');
    if (authz.hasCustom) phases.push(logged(extAuthzPhase(authz, workload), this.#o.debug, this.#o.info));
    limitsBefore('jwt');
    if (jwt.rules.length > 0) phases.push(jwtPhase(() => jwt));
    limitsBefore('authorization');
    if (authz.policies.length > 0) phases.push(logged(authorizationPhase(authz, workload, authz.hasCustom), this.#o.debug, this.#o.info));
    for (const l of limits) if (l.before === undefined) phases.push(l);
    // Last, as Envoy's circuit breaker is at the router: a refused request never takes a slot.
    const pool = compileInboundPool(resources, own, rootNamespace, this.#pools, workload);
    this.#pools = pool.pools;
    if (pool.phase !== undefined) phases.push(pool.phase);
    return phases;
  }

  /** The rate limit filters' counters by `stat_prefix` (empty without filters). */
  get rateLimitStats(): ReadonlyMap<string, Readonly<RateLimitStats>> {
    return this.#rateLimit?.stats ?? new Map();
  }

  /** The inbound connection pools' counters (those requests have used). */
  poolCounters(): InboundPoolCounters[] {
    return this.#pools?.counters() ?? [];
  }

  /** Stops key fetches and closes their connections. */
  close(): Promise<void> {
    return this.#jwt.close();
  }
}
