/**
 * meshlet's engine internals, for diagnostics, benchmarks and experiments: the outbound
 * pipeline and its Exchange, per-cluster state, pickers, outlier detection, limits, the route
 * table's matchers, the registry and DestinationRule merging.
 *
 * **Unstable.** `import … from 'meshlet/internals'` may change in any release, minor or patch.
 * Applications use the main entry (`import … from 'meshlet'`), which is the public API.
 *
 * @packageDocumentation
 */
import './core/require-node.ts';
export { readSources, ParseCache } from './config/load.ts';
export { resolveHost, hostMatches } from './config/hosts.ts';
export { ServiceRegistry } from './config/registry.ts';
export type { Endpoint, Service, ServiceAlias, Workload } from './config/registry.ts';
export { convertProtocol } from './config/protocol.ts';
export type { IstioProtocol } from './config/protocol.ts';
export { augmentLabels } from './config/topology.ts';
export { DestinationRuleIndex, effectivePolicy, findDestinationRule } from './config/destination-policy.ts';
export type { ClientWorkload, DestinationRuleIndexOptions, MergedDestinationRule } from './config/destination-policy.ts';
export { RouteTable, matchRoute, pickTarget, MAX_DRAW } from './routing/route-table.ts';
export { RequestMatcher } from './routing/request-matcher.ts';
export type { MatchScratch } from './routing/request-matcher.ts';
export { compileRe2 } from './config/regex.ts';
export type { Re2 } from './config/regex.ts';
export { Outbound } from './outbound/pipeline.ts';
export type { OutboundOptions } from './outbound/pipeline.ts';
export type { MeshDispatcherOptions } from './adapters/undici/dispatcher.ts';
export { DeadlineQueue } from './core/deadlines.ts';
export type { DeadlineNode } from './core/deadlines.ts';
export { Exchange } from './core/exchange.ts';
export { stack } from './core/layer.ts';
export type { Controller, Headers as MeshHeaders, ResponseHandler, Waiter, ResponseHeaderOps } from './core/exchange.ts';
export type { Dispatch, Layer } from './core/layer.ts';
export type { AttemptOutcome, FailureKind } from './core/outcome.ts';
export type { MirrorStats, LiveMirrors } from './policies/mirror.ts';
export { ClusterState } from './outbound/cluster-state.ts';
export type { ClusterContext, ClusterTransport } from './outbound/cluster-state.ts';
export { RetryBudget as RetryBudgetState } from './policies/retry-budget.ts';
export { OutlierDetector } from './policies/outlier.ts';
export type { OutlierEvent, OutlierHost, OutlierOptions } from './policies/outlier.ts';
export { HostSet, HostState } from './routing/balancer/host.ts';
export { createPicker } from './routing/balancer/picker.ts';
export type { Picker, PickRequest, PickerContext } from './routing/balancer/picker.ts';
export { RequestLimiter, poolLimits } from './policies/limits.ts';
export type { PoolLimits, SlotWaiter } from './policies/limits.ts';
export { resolveOutlierSettings } from './routing/outlier-settings.ts';
export type { ResolvedOutlierSettings } from './routing/outlier-settings.ts';
