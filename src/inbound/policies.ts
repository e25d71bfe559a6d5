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
import { checkEnvoyFileAccessLog, type EnvoyFileAccessLogProvider } from '../telemetry/access-log/config.ts';
import { checkEnvoyOtelAls, type EnvoyOtelAlsProvider } from '../telemetry/access-log/otel-config.ts';
import type { Dispatcher } from 'undici';
import { ofKind, type AnyResource } from '../config/resource.ts';
import type { Clock, Random } from '../core/clock.ts';
import { InvalidArgumentError } from '../core/errors.ts';
import type { WorkloadIdentity } from '../core/observe.ts';
import { compileAuthz } from '../security/authz/engine.ts';
import { checkEnvoyExtAuthzHttp, type EnvoyExtAuthzHttpConfig, envoyExtAuthzHttp } from '../security/authz/ext-authz-http.ts';
import { checkEnvoyExtAuthzGrpc, type EnvoyExtAuthzGrpcConfig, envoyExtAuthzGrpc, type UnaryCaller } from '../security/authz/ext-authz-grpc.ts';
import type { AuthzResult, ExtAuthzCheck } from '../security/authz/types.ts';
import { spiffeUri } from '../security/identity/spiffe.ts';
import { JwtRuntime } from '../security/jwt/runtime.ts';
import { authorizationPhase, extAuthzPhase } from './authz-phase.ts';
import { jwtPhase } from './jwt-phase.ts';
import type { InboundRequest, Phase } from './pipeline.ts';
import { compileRateLimit, type RateLimitPhase } from './rate-limit-phase.ts';
import { type CompiledInboundPools, compileInboundPool, type InboundPoolCounters } from './connection-pool.ts';
import { optionNames } from '../core/option-names.ts';
import { suggest } from '../core/did-you-mean.ts';

/**
 * A MeshConfig `extensionProviders` entry, as written in Istio's mesh config: a name and one
 * provider. meshlet runs `envoyExtAuthzHttp` and `envoyExtAuthzGrpc` providers (AuthorizationPolicy `CUSTOM`) and
 * `envoyFileAccessLog` and `envoyOtelAls` providers (Telemetry `accessLogging`; `envoy` is built in), and records
 * metrics for `prometheus` ones. Istio's other kinds (tracing and access-log services, `stackdriver`)
 * are accepted, so that Istio's MeshConfig (whose defaults hold `prometheus` and `stackdriver`)
 * can be given as it is, and not run (`logger.info` says so).
 * @category Server
 */
export interface ExtensionProvider {
  readonly name: string;
  readonly envoyExtAuthzHttp?: EnvoyExtAuthzHttpConfig | undefined;
  readonly envoyExtAuthzGrpc?: EnvoyExtAuthzGrpcConfig | undefined;
  readonly envoyFileAccessLog?: EnvoyFileAccessLogProvider | undefined;
  readonly prometheus?: object | undefined;
  readonly stackdriver?: object | undefined;
  readonly zipkin?: object | undefined;
  readonly lightstep?: object | undefined;
  readonly datadog?: object | undefined;
  readonly opencensus?: object | undefined;
  readonly skywalking?: object | undefined;
  readonly opentelemetry?: object | undefined;
  readonly envoyOtelAls?: EnvoyOtelAlsProvider | undefined;
  readonly envoyHttpAls?: object | undefined;
  readonly envoyTcpAls?: object | undefined;
}

/** The kinds meshlet runs (or reads: `prometheus`, by the metrics). */
const RUN_KINDS = ['envoyExtAuthzHttp', 'envoyExtAuthzGrpc', 'envoyFileAccessLog', 'envoyOtelAls', 'prometheus'];
/** Istio's other provider kinds (MeshConfig `ExtensionProvider.provider`): accepted, not run. */
const OTHER_KINDS = ['stackdriver', 'zipkin', 'lightstep', 'datadog', 'opencensus', 'skywalking', 'opentelemetry', 'envoyHttpAls', 'envoyTcpAls'];

/** The one kind of provider `p` (Istio's `provider` is a oneof); throws for none, several or an unknown one. */
function kindOf(p: ExtensionProvider, where: string): string {
  const kinds = Object.keys(p).filter((k) => k !== 'name' && (p as unknown as Record<string, unknown>)[k] !== undefined);
  const known = [...RUN_KINDS, ...OTHER_KINDS];
  if (kinds.length === 1 && known.includes(kinds[0] as string)) return kinds[0] as string;
  const unknown = kinds.find((k) => !known.includes(k));
  if (unknown !== undefined) throw new InvalidArgumentError(`${where} (${p.name}): unknown provider kind "${unknown}"${suggest(unknown, known)}; meshlet runs envoyExtAuthzHttp, envoyExtAuthzGrpc, envoyFileAccessLog and envoyOtelAls providers`);
  throw new InvalidArgumentError(`${where} (${p.name}): a provider has exactly one kind (envoyExtAuthzHttp, envoyExtAuthzGrpc, envoyFileAccessLog, envoyOtelAls, …), got ${kinds.length === 0 ? 'none' : kinds.join(', ')}`);
}

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
  if (!Array.isArray(list)) throw new InvalidArgumentError('createMesh: `extensionProviders` must be a list of { name, envoyExtAuthzHttp | envoyExtAuthzGrpc | envoyFileAccessLog | envoyOtelAls } (MeshConfig extensionProviders)');
  list.forEach((p, i) => {
    const where = `createMesh: extensionProviders[${i}]`;
    if (p === null || typeof p !== 'object' || typeof p.name !== 'string' || p.name === '') throw new InvalidArgumentError(`${where}: \`name\` must be a non-empty string`);
    if (p.name in out) throw new InvalidArgumentError(`${where}: provider name ${JSON.stringify(p.name)} is used twice`);
    const kind = kindOf(p, where);
    const warn = (m: string) => o.warn(`meshlet: extension provider ${p.name}: ${m}`);
    if (OTHER_KINDS.includes(kind)) {
      o.info?.(`meshlet: extension provider ${p.name}: meshlet does not run ${kind} providers; it is not used (a CUSTOM policy naming it denies what it matches, as Istio does for a provider that is not an authorizer)`);
      return;
    }
    if (kind === 'prometheus') return; // Read by the metrics (Telemetry metrics providers).
    if (kind === 'envoyOtelAls') {
      // An OpenTelemetry access-log collector (the access logger exports to it); not an authorizer.
      const problems = checkEnvoyOtelAls(p.envoyOtelAls);
      if (problems.length > 0) throw new InvalidArgumentError(`${where} (${p.name}).envoyOtelAls: ${problems.join('; ')}`);
      return;
    }
    if (kind === 'envoyExtAuthzGrpc') {
      const grpcConfig = p.envoyExtAuthzGrpc as EnvoyExtAuthzGrpcConfig;
      const problems = checkEnvoyExtAuthzGrpc(grpcConfig);
      if (problems.length > 0) throw new InvalidArgumentError(`${where} (${p.name}).envoyExtAuthzGrpc: ${problems.join('; ')}`);
      const w = o.workload;
      const localPrincipal = w === undefined ? undefined : spiffeUri({ trustDomain: o.trustDomain ?? 'cluster.local', namespace: w.namespace, serviceAccount: w.serviceAccount });
      const client = o.grpcClient;
      if (client === undefined) throw new InvalidArgumentError(`${where} (${p.name}).envoyExtAuthzGrpc: no gRPC client to call it with`);
      out[p.name] = envoyExtAuthzGrpc(grpcConfig, { name: p.name, client, localPrincipal, clock: o.clock, warn });
      return;
    }
    if (p.envoyExtAuthzHttp === undefined) {
      // An access-log provider (the access logger reads it); not an authorizer.
      const problems = checkEnvoyFileAccessLog(p.envoyFileAccessLog as EnvoyFileAccessLogProvider);
      if (problems.length > 0) throw new InvalidArgumentError(`${where} (${p.name}).envoyFileAccessLog: ${problems.join('; ')}`);
      return;
    }
    const problems = checkEnvoyExtAuthzHttp(p.envoyExtAuthzHttp);
    if (problems.length > 0) throw new InvalidArgumentError(`${where} (${p.name}).envoyExtAuthzHttp: ${problems.join('; ')}`);
    out[p.name] = envoyExtAuthzHttp(p.envoyExtAuthzHttp, { name: p.name, dispatcher: o.dispatcher, clock: o.clock, warn });
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

  /** The inbound connection pools' counters (those requests have used). */
  poolCounters(): InboundPoolCounters[] {
    return this.#pools?.counters() ?? [];
  }

  /** Stops key fetches and closes their connections. */
  close(): Promise<void> {
    return this.#jwt.close();
  }
}
