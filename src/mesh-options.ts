/**
 * {@link MeshOptions} for `createMesh` and the logger shape (events: `mesh-events.ts`; {@link MeshDiagnostics}: `mesh-diagnostics.ts`).
 * @module
 */
import type { LocalityLoadBalancerSetting } from './config/types/destination-rule.ts';
import type { HTTPRetry } from './config/types/networking.ts';
import type { AnalysisMode, ConfigSource } from './config/load-config.ts';
import type { Clock, Random } from './core/clock.ts';
import type { ErrorMode } from './core/exchange.ts';
import type { PathNormalization } from './core/path-normalization.ts';
import type { ExtensionProvider, JwtOptions } from './inbound/policies.ts';
import type { DnsOptions } from './outbound/dns-target.ts';
import type { OwnMetricsOptions } from './telemetry/mesh-metrics/mesh-metrics.ts';
import type { MeshletError } from './core/errors.ts';
import type { MetricsOptions } from './telemetry/metrics/options.ts';
import type { AccessLogOptions } from './telemetry/access-log/config.ts';
import type { TracingOptions } from './telemetry/tracing/config.ts';
import { optionNames } from './core/option-names.ts';
import type { ProxyHeadersOptions } from './core/proxy-headers.ts';
import { type MeshNetworkOptions, NETWORK_OPTION_NAMES } from './mesh-network-options.ts';
import type { AdminOptions } from './mesh-admin-options.ts';

/**
 * Where a mesh's workload certificate comes from; see {@link MeshOptions.identity}.
 * @category Identity
 */
export type IdentityOption =
  | { readonly certFile: string; readonly keyFile: string; readonly caFile: string }
  | { readonly devCa: string }
  | 'control-plane'
  | 'none';

/**
 * Options of {@link createMesh}.
 * @category Mesh
 */
export interface MeshOptions extends MeshNetworkOptions {
  /** This workload's service (short name, e.g. `productpage`). */
  readonly service: string;
  /** @defaultValue 'default' */
  readonly namespace?: string | undefined;
  /** This workload's labels (matched by subsets, selectors, `sourceLabels`). @defaultValue {} */
  readonly labels?: Readonly<Record<string, string>> | undefined;
  /** This workload's service account: its identity (`spiffe://<trust domain>/ns/<namespace>/sa/<account>`), as Kubernetes gives every pod one. @defaultValue 'default' */
  readonly serviceAccount?: string | undefined;
  /**
   * This workload's name as Istio's telemetry names it (`source_workload` /
   * `destination_workload`, `WORKLOAD_NAME` in peer metadata) — in Kubernetes, the Deployment's
   * name (e.g. `reviews-v2`). Also the canonical service when no `service.istio.io/canonical-name`,
   * `app.kubernetes.io/name` or `app` label names one.
   * @defaultValue the `service`
   */
  readonly workloadName?: string | undefined;
  /**
   * Embedded mode: a YAML/JSON file, a directory of them, a list of paths, resource objects, or
   * one object (a resource, or a `List` such as `JSON.parse` of `kubectl get … -o json`). Files and directories are watched: a valid change applies to new requests; an
   * invalid one is rejected as a whole (event `rejected`) and the last good config keeps serving.
   * Exactly one of `config` and `controlPlane` is required.
   */
  readonly config?: ConfigSource | undefined;
  /**
   * Control-plane mode: the URL of `meshlet control-plane` (`http://host:15010`), or several
   * (replicas, tried in turn). See docs/control-plane-client.md.
   */
  readonly controlPlane?: string | readonly string[] | undefined;
  /**
   * The CA certificate(s) that verify an `https://` control plane's certificate: PEM text, or the
   * path of a PEM file (for a `meshlet control-plane --tls auto`, its `<data-dir>/root-cert.pem`),
   * as istio-agent verifies istiod with the mesh's root cert. Used for every call (watch,
   * registration, certificates, ACKs, reports); a certificate it does not verify fails the call.
   * @defaultValue process.env.MESHLET_CONTROL_PLANE_CA, else the system's CAs
   */
  readonly controlPlaneCa?: string | undefined;
  /** Bearer token for the control plane (`meshlet token`). @defaultValue process.env.MESHLET_TOKEN */
  readonly token?: string | undefined;
  /**
   * A file holding the control-plane token, read again for every request to the control plane
   * (as istio-agent re-reads its projected service-account token): a token replaced on disk — a
   * Kubernetes projected volume or secret, a rotated signing key's new token — is used without a
   * restart. Not with `token`. Unreadable or empty at start: `createMesh` rejects, naming the file.
   * @defaultValue process.env.MESHLET_TOKEN_FILE (when `token` and MESHLET_TOKEN are not set)
   */
  readonly tokenFile?: string | undefined;
  /** Directory of the last-known-good cache (`<namespace>.<service>.json`); none when absent. */
  readonly cacheDir?: string | undefined;
  /** How long `createMesh` waits for the first config from the control plane. @defaultValue 10000 */
  readonly startupTimeoutMs?: number | undefined;
  /** Cancels `createMesh` while it starts: it stops what it started, then rejects with `signal.reason`, as `fetch` does. */
  readonly signal?: AbortSignal | undefined;
  /** With no control plane and no cache at startup, start with an empty config (every host passes through) and keep trying, instead of rejecting. @defaultValue false */
  readonly failOpen?: boolean | undefined;
  /** After `close()` deregistered this mesh's registrations, how long it waits before closing its pools, so other meshes have stopped routing here. @defaultValue 1000 */
  readonly drainMs?: number | undefined;
  /**
   * How mesh-made failures (no route, no healthy upstream, overflow, timeout, fault abort, …)
   * reach callers: `respond` answers as a sidecar would (404/503/504 with the Envoy flag in
   * `x-meshlet-response-flags`); `throw` fails the call with a typed {@link MeshletError}.
   * @defaultValue 'respond'
   */
  readonly errors?: ErrorMode | undefined;
  /**
   * How long `close()` lets calls in flight finish before it cancels them (they fail with
   * `MESHLET_ERR_CLOSED`); like Istio's `terminationDrainDuration`. A call to a hung upstream on a
   * route without a timeout (Istio's default) would otherwise hold `close()` forever.
   * @defaultValue 5000
   */
  readonly closeTimeoutMs?: number | undefined;
  /**
   * This workload's named ports, as its Pod's `containerPorts` name them (e.g. `{ http: 8080 }`):
   * a Kubernetes Service that selects the workload with a named `targetPort` (`targetPort: http`)
   * reaches the port of that name. The server side keys on it: the DestinationRule port-level
   * `connectionPool` of the inbound pool and the local rate limit's `inbound|http|<service port>`
   * virtual host. Without it, such a Service port is not known to reach any local port.
   * @defaultValue {}
   */
  readonly ports?: Readonly<Record<string, number>> | undefined;
  /**
   * The paths of this workload's health probes (a Pod's `livenessProbe`/`readinessProbe`/
   * `startupProbe` `httpGet.path`, e.g. `['/healthz', '/ready']`; for a `grpc:` probe, the gRPC
   * health method `'/grpc.health.v1.Health/Check'`). A plaintext `GET` or `HEAD` whose path
   * (before `?`) is exactly one of them, or a plaintext gRPC call of such a method on a port of
   * `mesh.grpc.bind` or a server with `mesh.grpc.serverInterceptors()`, is served without the inbound policies —
   * PeerAuthentication (also under STRICT), RequestAuthentication, AuthorizationPolicy, local rate
   * limits — and without Istio's metrics or a span, as kubelet's probes reach an Istio app through
   * istio-agent (its probe rewrite, on by default) and never through the sidecar. Any other
   * plaintext request on such a connection under STRICT is refused as before. Over mTLS the path
   * is judged as usual.
   * @defaultValue [] (no path: probes are judged like any request)
   */
  readonly probePaths?: readonly string[] | undefined;
  /** This workload's locality, `region/zone/subzone` (locality load balancing). @defaultValue '' */
  readonly locality?: string | undefined;
  /** MeshConfig's `localityLbSetting`: the one of destinations whose DestinationRule sets none and whose Service has no `trafficDistribution` (Istio's default: enabled, no rules). */
  readonly localityLbSetting?: LocalityLoadBalancerSetting | undefined;
  /** This workload's IP (the key of `consistentHash.useSourceIp`; IPv6: `resolution: DNS` names resolve to IPv6; when given, only east-west gateway addresses of its family are used). @defaultValue '127.0.0.1' */
  readonly sourceIp?: string | undefined;
  /** What happens to hosts outside the registry (Istio's `outboundTrafficPolicy.mode`). @defaultValue 'ALLOW_ANY' */
  readonly outboundTrafficPolicy?: 'ALLOW_ANY' | 'REGISTRY_ONLY' | undefined;
  /**
   * MeshConfig's `defaultHttpRetryPolicy` (Istio's `HTTPRetry`, as a VirtualService's `retries`):
   * the retry policy of every HTTP and gRPC route that has no `retries` of its own — VirtualService
   * rules, Gateway API HTTPRoute/GRPCRoute rules without `retry`, and the default route of a
   * service without a VirtualService. A route's own `retries` replace it wholly. As in Istio, an
   * unset or 0 `attempts` turns those retries off; an unset `retryOn` is Istio's default
   * conditions. From `meshConfig.defaultHttpRetryPolicy` when not given.
   * @defaultValue Istio's default: `{ attempts: 2, retryOn: 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes' }` (no status code retried since Istio 1.24)
   */
  readonly defaultHttpRetryPolicy?: HTTPRetry | undefined;
  /** Largest request body a retry replays or a mirror copies (a streamed one is kept up to it; a larger string or bytes is sent once). @defaultValue 1048576 (1 MiB, Envoy's buffer limit) */
  readonly retryBufferBytes?: number | undefined;
  /**
   * MeshConfig's `connectTimeout`: how long a new upstream connection may take to come up (TCP,
   * and TLS when the mesh originates it) for clusters whose DestinationRule sets no
   * `connectionPool.tcp.connectTimeout`, and for calls through the PassthroughCluster (ALLOW_ANY);
   * a DestinationRule's value wins. HTTP and gRPC alike. From `meshConfig.connectTimeout` when not given.
   * @defaultValue 10000 (Istio's default)
   */
  readonly connectTimeoutMs?: number | undefined;
  /**
   * MeshConfig's `tcpKeepalive`: TCP keepalive on every upstream connection the mesh opens — the
   * clusters' (a DestinationRule's `connectionPool.tcp.tcpKeepalive` sets its fields over this one,
   * field by field, as istiod's cluster.go `applyTCPKeepalive`) and the PassthroughCluster's (ALLOW_ANY).
   * Times in whole seconds as istiod sends them (a time under 1 s leaves the operating system's);
   * an unset field is the operating system's. HTTP and gRPC alike. From `meshConfig.tcpKeepalive`
   * when not given. `probes` and `intervalMs` need Node 24.19 or later.
   * @defaultValue none: a cluster without a DestinationRule keepalive keeps its transport's default (undici: probes after 60 s idle; gRPC: none)
   */
  readonly tcpKeepalive?: { readonly timeMs?: number | undefined; readonly intervalMs?: number | undefined; readonly probes?: number | undefined } | undefined;
  /** Longest upstream `Retry-After` a retry waits for; a longer one ends retrying. @defaultValue 10000 */
  readonly maxRetryAfterMs?: number | undefined;
  /** Honour a call's own `x-envoy-retry-on`, `x-envoy-max-retries`, `x-envoy-upstream-rq-timeout-ms`, … as a sidecar does under istiod's `PILOT_SIDECAR_USE_REMOTE_ADDRESS=true`; by default they are removed and ignored, as Istio's sidecar removes them (docs/outbound.md). @defaultValue false */
  readonly trustEnvoyRequestHeaders?: boolean | undefined;
  /** Mirrored requests in flight at most; more are dropped. @defaultValue 64 */
  readonly maxMirrorsInFlight?: number | undefined;
  /**
   * What `istioctl analyze`-style findings (IST0101 missing subset or host, …) do to config.
   * `advisory`: reported (logged once, in the `config` event) and applied — a route to a missing
   * subset answers 503 NC at run time, as in Istio; `blocking`: error-level findings refuse the
   * config as schema errors do; `off`: the analyzers do not run. Schema-invalid config is
   * always refused as a whole.
   * @defaultValue 'advisory'
   */
  readonly analysis?: AnalysisMode | undefined;
  /** Watch config files for changes. @defaultValue true */
  readonly watch?: boolean | undefined;
  /**
   * How request paths are normalized (MeshConfig `pathNormalization`): `BASE` (RFC 3986 dot
   * segments), `MERGE_SLASHES`, `DECODE_AND_MERGE_SLASHES`, or `NONE` — before the server side
   * judges them (the app gets the path that was judged) and before calls to mesh hosts are routed
   * and sent, as istiod configures the sidecar's inbound and outbound listeners.
   * @defaultValue 'BASE'
   */
  readonly pathNormalization?: PathNormalization | undefined;
  /** The namespace whose policies apply to every workload (Istio's root namespace). @defaultValue 'istio-system' */
  readonly rootNamespace?: string | undefined;
  /** Istio's MeshConfig ({@link MeshConfigInput}): its settings that meshlet applies (docs/config.md), under options given here. */
  readonly meshConfig?: MeshConfigInput | undefined;
  /** MeshConfig `trustDomain`: the trust domain of this mesh's SPIFFE identities (AuthorizationPolicy `principals`, `trustDomains`). @defaultValue 'cluster.local' */
  readonly trustDomain?: string | undefined;
  /** MeshConfig `trustDomainAliases`: other trust domains treated as this one. @defaultValue [] */
  readonly trustDomainAliases?: readonly string[] | undefined;
  /**
   * MeshConfig `enableAutoMtls`: without a DestinationRule `tls` block, calls to an endpoint that
   * accepts mTLS (labelled `security.istio.io/tlsMode: istio`, its PeerAuthentication not
   * DISABLE) use mTLS with this workload's certificate; other calls stay plaintext.
   * @defaultValue true
   */
  readonly enableAutoMtls?: boolean | undefined;
  /**
   * Where this workload's certificate — its SPIFFE identity for mTLS — comes from:
   * - `{ certFile, keyFile, caFile }`: files written by cert-manager, SPIRE's helper or any
   *   tool, watched and reloaded when they change;
   * - `{ devCa: dir }`: a development CA made by `meshlet ca init <dir>`; the mesh issues itself
   *   a certificate from it (laptops and tests);
   * - `'control-plane'`: the control plane's CA, through a CSR authenticated by the mesh's token;
   * - `'none'`: no identity: the workload neither offers nor accepts mTLS.
   * @defaultValue 'control-plane' with `controlPlane`, otherwise 'none'
   */
  readonly identity?: IdentityOption | undefined;
  /**
   * MeshConfig `extensionProviders`, in Istio's shape: CUSTOM authorizers (`{ name, envoyExtAuthzHttp: { service, port, … } }`
   * or `envoyExtAuthzGrpc`; a CUSTOM policy naming a provider not given here denies what it matches, as in Istio), access logs
   * (`envoyFileAccessLog`, `envoyOtelAls`, `envoyHttpAls`: docs/telemetry.md) and tracers. `envoyExtAuthzGrpc`, `envoyOtelAls` and `envoyHttpAls` need `@grpc/grpc-js`.
   */
  readonly extensionProviders?: readonly ExtensionProvider[] | undefined;
  /**
   * How `remote.ip` / `remoteIpBlocks` read X-Forwarded-For. Unset: as an Istio sidecar (the last
   * entry, else the TCP peer). A number N: as a gateway with `numTrustedProxies: N`.
   */
  readonly numTrustedProxies?: number | undefined;
  /**
   * Istio's ProxyConfig `proxyHeaders` (MeshConfig `defaultConfig.proxyHeaders`, or the
   * `proxy.istio.io/config` annotation): what happens to `x-forwarded-client-cert` on served
   * requests (by default, as Istio's sidecar: over mTLS the caller's certificate details are
   * appended; otherwise the header is removed), and whether `x-request-id`,
   * `x-envoy-attempt-count`, `x-envoy-expected-rq-timeout-ms` and `x-envoy-original-path` are added to calls and
   * `x-envoy-upstream-service-time` to their responses and to the app's answers to served requests.
   * @defaultValue Istio's defaults (`forwardedClientCert: 'APPEND_FORWARD'`, subject, URI and DNS details, every header on)
   */
  readonly proxyHeaders?: ProxyHeadersOptions | undefined;
  /** RequestAuthentication settings: verified-token cache size, token size limit, key caching, the dispatcher key sets are fetched through. */
  readonly jwt?: JwtOptions | undefined;
  /**
   * Where the mesh logs: rejected config and analysis findings (`warn`), config applied
   * (`info`), control-plane connection changes. Any object with these methods — `console`, a
   * pino or winston logger — works; `debug`, `info` and `error` are optional.
   * @defaultValue warnings and errors to the console (console.warn, console.error)
   */
  readonly logger?: MeshLogger | undefined;
  /** How `resolution: DNS` names are resolved ({@link DnsOptions}; docs/outbound.md). */
  readonly dns?: DnsOptions | undefined;
  /** Time source (tests inject a manual clock). @defaultValue the system clock */
  readonly clock?: Clock | undefined;
  /** Randomness (tests inject a seeded one). @defaultValue Math.random */
  readonly random?: Random | undefined;
  /** Telemetry: what the mesh reports about itself and the traffic through it (docs/telemetry.md). */
  readonly telemetry?: TelemetryOptions | undefined;
  /**
   * A read-only admin endpoint for operators, as the sidecar's admin port: `/clusters` (endpoints,
   * health, outlier ejections), `/config_dump`, `/certs`, `/server_info`, `/ready`, `/explain`;
   * read by `meshlet proxy-config` (docs/admin.md). `true`: 127.0.0.1:15000. `createMesh` rejects
   * when the port cannot be bound; `close()` closes it last.
   * @defaultValue none
   */
  readonly admin?: boolean | AdminOptions | undefined;
}

/** The names of {@link MeshOptions} (createMesh refuses others), checked against the type. @internal */
export const MESH_OPTION_NAMES = [...NETWORK_OPTION_NAMES, ...optionNames<Omit<MeshOptions, keyof MeshNetworkOptions>>()([
  'service',
  'namespace',
  'labels',
  'serviceAccount',
  'workloadName',
  'config',
  'controlPlane',
  'controlPlaneCa',
  'token',
  'tokenFile',
  'cacheDir',
  'startupTimeoutMs',
  'signal',
  'failOpen',
  'drainMs',
  'errors',
  'closeTimeoutMs',
  'ports',
  'probePaths',
  'locality',
  'localityLbSetting',
  'sourceIp',
  'outboundTrafficPolicy',
  'defaultHttpRetryPolicy',
  'retryBufferBytes',
  'maxRetryAfterMs',
  'connectTimeoutMs',
  'tcpKeepalive',
  'trustEnvoyRequestHeaders',
  'maxMirrorsInFlight',
  'analysis',
  'watch',
  'pathNormalization',
  'rootNamespace',
  'trustDomain',
  'trustDomainAliases',
  'enableAutoMtls',
  'identity',
  'extensionProviders',
  'numTrustedProxies',
  'proxyHeaders',
  'jwt',
  'logger',
  'meshConfig',
  'dns',
  'clock',
  'random',
  'telemetry',
  'admin',
])];

/**
 * The `telemetry` block of {@link MeshOptions}.
 * @category Telemetry
 */
export interface TelemetryOptions {
  /**
   * MeshConfig's access-log settings (`accessLogFile`, `accessLogEncoding`, `accessLogFormat`,
   * `defaultProviders.accessLogging`). Telemetry resources (`accessLogging`) override them as
   * in Istio; `envoyFileAccessLog` providers go in {@link MeshOptions.extensionProviders}.
   * @defaultValue no access log unless a Telemetry resource enables one
   * @example { accessLog: { file: '/dev/stdout' } } // every request, Istio's text format, through `logger.info`
   */
  readonly accessLog?: AccessLogOptions | undefined;
  /**
   * meshlet's own metrics (config in use, retries, retry-budget exhaustion, outlier ejections,
   * pool overflows, mirror drops, authorization decisions, inbound TLS) through the
   * OpenTelemetry metrics API: `false` turns them off, an object picks the MeterProvider and
   * endpoint labels. Without an SDK (OTel's no-op provider) nothing is counted.
   * @defaultValue true (the global MeterProvider, when the app registered one)
   */
  readonly ownMetrics?: boolean | OwnMetricsOptions | undefined;
  /** Tracing through the app's OpenTelemetry SDK: sampling, propagation formats, mesh-wide custom tags. @defaultValue on, 1 % sampled, W3C trace context */
  readonly tracing?: TracingOptions | undefined;
  /** Istio's standard metrics (`istio_requests_total`, …) and peer metadata exchange. @defaultValue on, through the global MeterProvider */
  readonly metrics?: MetricsOptions | undefined;
}

/** The names of {@link TelemetryOptions}, checked against the type. @internal */
export const TELEMETRY_OPTION_NAMES = optionNames<TelemetryOptions>()([
  'accessLog',
  'ownMetrics',
  'tracing',
  'metrics',
]);

/**
 * A logger: `console`, pino, winston or anything with these methods.
 * @category Mesh
 */
export interface MeshLogger {
  debug?(message: string): void;
  info?(message: string): void;
  warn(message: string): void;
  error?(message: string): void;
}

/**
 * Istio's MeshConfig for {@link MeshOptions.meshConfig}: the `istio` ConfigMap (`kubectl get configmap istio -n istio-system -o yaml`) as text or parsed, or its `data.mesh`, as text or parsed.
 * @category Mesh
 */
export type MeshConfigInput = string | Readonly<Record<string, unknown>>;

export type { MeshEvents, RejectedEvent, WatchStateEvent } from './mesh-events.ts';
