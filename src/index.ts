/**
 * meshlet: an in-process service mesh for Node.js that reads Istio's own resources.
 *
 * The public API: {@link createMesh} and the {@link Mesh} it returns (its `fetch` and
 * `dispatcher`, events, `explain`, `register`), the error catalogue, deadlines in the async
 * context, injected time and randomness, and the config model (loading, validating and
 * analysing Istio resources, compiling them into a workload's {@link Snapshot}). Engine
 * internals are in the unstable `meshlet/internals` entry.
 *
 * @packageDocumentation
 */
// First: on a Node.js older than meshlet needs, fail here with a message that says so.
import './core/require-node.ts';
export { Mesh } from './mesh.ts';
export { createMesh } from './create-mesh.ts';
export { flushMeshTelemetry as flushAccessLogs } from './telemetry/flush-channel.ts';
export type { DnsAnswer, DnsOptions, DnsResolve } from './outbound/dns-target.ts';
export type { GatewayNameView } from './outbound/gateway-names.ts';
export type { IdentityOption, MeshConfigInput, MeshEvents, MeshLogger, MeshOptions, RejectedEvent, TelemetryOptions, WatchStateEvent } from './mesh-options.ts';
export type { EndpointDiagnostics, MeshDiagnostics } from './mesh-diagnostics.ts';
export type { AdminOptions } from './mesh-admin-options.ts';
export type { MetricsOptions } from './telemetry/metrics/options.ts';
export type { AccessLogOptions, EnvoyFileAccessLogProvider } from './telemetry/access-log/config.ts';
export type { EnvoyOtelAlsProvider } from './telemetry/access-log/otel-config.ts';
export type { EnvoyHttpAlsProvider, EnvoyTcpAlsProvider } from './telemetry/access-log/als-config.ts';
export type { OtelExportStats } from './telemetry/access-log/otel-exporter.ts';
export type { TracingOptions } from './telemetry/tracing/config.ts';
export type { PropagationFormat } from './telemetry/tracing/propagation.ts';
export type { ConfigAppliedEvent, ConfigOrigin, ConnectedEvent, DisconnectedEvent } from './control-plane/source.ts';
export type { Registration, RegisterOptions } from './control-plane/registration.ts';
export type { Explanation, ExplainRequest, ExplainedEndpoint, ExplainedTarget } from './outbound/explain.ts';
export type { OutboundEvent } from './outbound/pipeline.ts';
export { MeshDispatcher } from './adapters/undici/dispatcher.ts';
export { MeshGrpc, type GrpcClientConstructor } from './adapters/grpc/mesh-grpc.ts';
export { MeshChannel } from './adapters/grpc/channel.ts';
export { FLAGS_HEADER } from './adapters/undici/render.ts';
export type { ErrorMode } from './core/exchange.ts';
export type { ClientCertDetailsOptions, ForwardClientCertDetails, ProxyHeadersOptions } from './core/proxy-headers.ts';

export { ConfigError, InvalidArgumentError, isMeshletError, MeshletError, statusFor, ERROR_STATUS } from './core/errors.ts';
export type { ConfigIssueLike, ErrorContext, ErrorStatus, MeshletErrorCode, MeshletErrorOptions } from './core/errors.ts';

export { withDeadline, withDeadlineAt, currentDeadline, currentContext } from './core/context.ts';
export type { MeshContext, PeerIdentity, TraceHeaders } from './core/context.ts';
export type { RequestMeshInfo } from './inbound/guard.ts';
export type { ExtensionProvider, JwtOptions } from './inbound/policies.ts';
export type { EnvoyExtAuthzHttpConfig } from './security/authz/ext-authz-http.ts';
export type { EnvoyExtAuthzGrpcConfig } from './security/authz/ext-authz-grpc.ts';
export type { CheckBodySettings } from './security/authz/check-body.ts';
export type { WorkloadIdentity } from './core/observe.ts';
export type { OwnMetricsOptions } from './telemetry/mesh-metrics/mesh-metrics.ts';
export type { AuthzDecision } from './inbound/pipeline.ts';
export type { PathNormalization } from './core/path-normalization.ts';
export type {
  AuthzExplanation,
  DecodedToken,
  ExplainedJwtRule,
  InboundExplainRequest,
  InboundExplainSource,
  InboundExplanation,
  InboundPoolExplanation,
  JwtExplanation,
  RateLimitExplanation,
} from './inbound/explain.ts';
export type { AppliedPolicy, AuthzFinding } from './security/authz/compile.ts';
export type { AuthzAction, AuthzDenialResponse, AuthzResult, DryRunOutcome, RuleRef } from './security/authz/types.ts';
export type { FastifyLike, FastifyPlugin, FastifyReplyLike, FastifyRequestLike, FastifyServerOptions } from './adapters/server/fastify.ts';
export type { InboundTlsCounts } from './inbound/tls-stats.ts';
export type { InboundPoolCounters } from './inbound/connection-pool.ts';
export type { MtlsMode } from './security/peer-authentication.ts';
export { ManualClock, seededRandom, systemClock, systemRandom } from './core/clock.ts';
export type { Clock, Random, Timer } from './core/clock.ts';

export { loadConfig, checkDocuments, ANALYSIS_MODES } from './config/load-config.ts';
export type { AnalysisMode, ConfigSource, LoadConfigOptions, LoadedConfig } from './config/load-config.ts';
export { IssueList, formatPath } from './config/issues.ts';
export type { ConfigIssue, FieldPath, IssueLevel, IssueSubject, PathSegment, SourceRef } from './config/issues.ts';
export { parseText, fromObjects } from './config/load.ts';
export type { LoadLimits, RawDocument } from './config/load.ts';
export { validateDocuments } from './config/validate/index.ts';
export type { ValidateOptions, ValidationResult } from './config/validate/index.ts';
export { analyze } from './config/analyze/index.ts';
export { KIND_VERSIONS } from './config/resource.ts';
export type { AnyResource, Kind, LoadBalancerIngress, Resource, ResourceStatus, SpecByKind } from './config/resource.ts';
export { parseDuration, formatDuration } from './config/duration.ts';
export { compileSnapshot, contentVersion } from './routing/compile.ts';
export type { AppliedSidecar, CompileOptions, InboundSection, MeshWideSettings, Snapshot, UnknownHostPolicy, WorkloadInfo } from './routing/compile.ts';
export type { EgressHostSet, ScopedService, ScopeListener, ScopeVirtualService, SidecarScope } from './config/sidecar-scope.ts';
export type { ClusterSettings, DeclaredTls, PoolLimits, ResolvedConnectionPool, ResolvedRetryBudget, TcpKeepalive } from './routing/cluster-settings.ts';
export type { TrafficDistribution } from './config/traffic-distribution.ts';
export type { CookieGeneration, HashKeyPolicy, PickerKind, ResolvedLoadBalancer } from './routing/balancer/lb-settings.ts';
export type { SlowStart } from './routing/balancer/warmup.ts';
export type { ResolvedOutlierSettings } from './routing/outlier-settings.ts';
export { NO_ROUTE, toDraw } from './routing/route-table.ts';
export type { Cluster, CompiledRoute, MirrorTarget, RouteAction, RouteDecision, RouteTable, RouteTarget, VirtualHost } from './routing/route-table.ts';
export type { RequestHead, HeaderValue } from './routing/request-head.ts';
export type { Re2 } from './config/regex.ts';
export type { RetryPolicy, FaultPolicy, HeaderOps, RewritePolicy, RedirectPolicy, DirectResponsePolicy } from './routing/route-policy.ts';
export type { CorsRule } from './routing/cors.ts';
export type { Endpoint, EndpointGateway, Service, ServiceAlias, Workload } from './config/registry.ts';
export type { MeshNetwork, MeshNetworkEndpoints, MeshNetworkGateway, MeshNetworks, MeshNetworksInput } from './config/mesh-networks.ts';
export type { MeshNetworkOptions } from './mesh-network-options.ts';
export type { GatewayAddresses, NetworkSettings } from './config/network-topology.ts';
export type { ServiceRegistry } from './config/registry.ts';
export type { MergedDestinationRule } from './config/destination-policy.ts';
export type * from './config/types/common.ts';
export type * from './config/types/networking.ts';
export type * from './config/types/security.ts';
export type * from './config/types/telemetry.ts';
export type * from './config/types/kubernetes.ts';
export type * from './config/gateway-api/types.ts';
export type * from './config/types/envoy-filter.ts';
export type * from './config/types/sidecar.ts';
