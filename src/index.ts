/**
 * meshlet: an in-process service mesh for Node.js that reads Istio's own resources.
 *
 * This entry point exports the config model: loading and validating Istio resources, analysis,
 * and compiling them into the immutable per-workload {@link Snapshot} the data plane reads.
 *
 * @packageDocumentation
 */
// First: on a Node.js older than meshlet needs, fail here with a message that says so.
import './core/require-node.ts';
export { ConfigError, InvalidArgumentError, isMeshletError, MeshletError, statusFor, ERROR_STATUS } from './core/errors.ts';
export type { ConfigIssueLike, ErrorContext, ErrorStatus, MeshletErrorCode, MeshletErrorOptions } from './core/errors.ts';
export { loadConfig, checkDocuments } from './config/load-config.ts';
export type { ConfigSource, LoadConfigOptions, LoadedConfig } from './config/load-config.ts';
export { IssueList, formatPath } from './config/issues.ts';
export type { ConfigIssue, FieldPath, IssueLevel, IssueSubject, PathSegment, SourceRef } from './config/issues.ts';
export { parseText, readSources, fromObjects, ParseCache } from './config/load.ts';
export type { LoadLimits, RawDocument } from './config/load.ts';
export { validateDocuments } from './config/validate/index.ts';
export type { ValidateOptions, ValidationResult } from './config/validate/index.ts';
export { analyze } from './config/analyze/index.ts';
export { KIND_VERSIONS } from './config/resource.ts';
export type { AnyResource, Kind, Resource, SpecByKind } from './config/resource.ts';
export { parseDuration, formatDuration } from './config/duration.ts';
export { resolveHost, hostMatches } from './config/hosts.ts';
export { ServiceRegistry } from './config/registry.ts';
export type { Endpoint, Service, ServiceAlias, Workload } from './config/registry.ts';
export { convertProtocol } from './config/protocol.ts';
export type { IstioProtocol } from './config/protocol.ts';
export { augmentLabels } from './config/topology.ts';
export { DestinationRuleIndex, effectivePolicy, findDestinationRule } from './config/destination-policy.ts';
export type { ClientWorkload, MergedDestinationRule } from './config/destination-policy.ts';
export { compileSnapshot, contentVersion } from './routing/compile.ts';
export type { CompileOptions, Snapshot, WorkloadInfo } from './routing/compile.ts';
export { NO_ROUTE, RouteTable, matchRoute, pickTarget, toDraw, MAX_DRAW } from './routing/route-table.ts';
export type { Cluster, CompiledRoute, MirrorTarget, RouteAction, RouteDecision, RouteTarget, VirtualHost } from './routing/route-table.ts';
export type { RequestHead, HeaderValue } from './routing/request-head.ts';
export { RequestMatcher } from './routing/request-matcher.ts';
export type { MatchScratch } from './routing/request-matcher.ts';
export { compileRe2 } from './config/regex.ts';
export type { Re2 } from './config/regex.ts';
export type { RetryPolicy, FaultPolicy, HeaderOps, RewritePolicy, RedirectPolicy, DirectResponsePolicy } from './routing/route-policy.ts';
export type * from './config/types/common.ts';
export type * from './config/types/networking.ts';
export type * from './config/types/security.ts';
export type * from './config/types/telemetry.ts';
export type * from './config/types/kubernetes.ts';
export { createMesh, Mesh } from './mesh.ts';
export type { MeshOptions, RejectedEvent } from './mesh.ts';
export type { ConfigAppliedEvent, ConfigOrigin, ConnectedEvent, DisconnectedEvent } from './control-plane/source.ts';
export type { Registration, RegisterOptions } from './control-plane/registration.ts';
export type { Explanation, ExplainRequest, ExplainedEndpoint, ExplainedTarget } from './outbound/explain.ts';
export type { OutboundEvent } from './outbound/pipeline.ts';
export { withDeadline, withDeadlineAt, currentDeadline } from './core/context.ts';
export { ManualClock, seededRandom, systemClock, systemRandom } from './core/clock.ts';
export type { Clock, Random, Timer } from './core/clock.ts';
export { FLAGS_HEADER } from './core/exchange.ts';
export type { ErrorMode } from './core/exchange.ts';
export { MeshDispatcher } from './adapters/undici/dispatcher.ts';
export { Outbound } from './outbound/pipeline.ts';
export type { OutboundOptions } from './outbound/pipeline.ts';
export type { MeshDispatcherOptions } from './adapters/undici/dispatcher.ts';
export { DeadlineQueue } from './core/deadlines.ts';
export type { DeadlineNode } from './core/deadlines.ts';
export { Exchange, stack } from './core/exchange.ts';
export type { Controller, Dispatch, Headers as MeshHeaders, Layer, ResponseHandler, Waiter, ResponseHeaderOps } from './core/exchange.ts';
export type { AttemptOutcome, FailureKind } from './core/outcome.ts';
export type { MirrorStats, LiveMirrors } from './policies/mirror.ts';
export { ClusterState } from './outbound/cluster-state.ts';
export type { ClusterContext, ClusterTransport } from './outbound/cluster-state.ts';
export { RetryBudget as RetryBudgetState } from './policies/retry-budget.ts';
export { OutlierDetector } from './policies/outlier.ts';
export type { OutlierEvent, OutlierHost } from './policies/outlier.ts';
export { HostSet, HostState } from './routing/balancer/host.ts';
export { createPicker } from './routing/balancer/picker.ts';
export type { Picker, PickRequest, PickerContext } from './routing/balancer/picker.ts';
export { RequestLimiter, poolLimits } from './outbound/limits.ts';
export type { PoolLimits, SlotWaiter } from './outbound/limits.ts';
export { resolveOutlierSettings } from './policies/outlier-settings.ts';
export type { ResolvedOutlierSettings } from './policies/outlier-settings.ts';
export type { OutlierOptions } from './policies/outlier.ts';
