/**
 * What a mesh's tracer (`MeshTracing`, `tracer.ts`) is given, and what it keeps per side,
 * per call and per served request.
 *
 * @module
 */
import type { Span } from '@opentelemetry/api';
import type { Random } from '../../core/clock.ts';
import type { Headers } from '../../core/handler.ts';
import type { WorkloadIdentity } from '../../core/observe.ts';
import type { TracingOptions, TracingSpec } from './config.ts';
import type { CompiledTags } from './tags.ts';

/** What the mesh's tracer needs of its mesh. */
export interface MeshTracingOptions {
  readonly workload: WorkloadIdentity;
  readonly random: Random;
  readonly rootNamespace: string;
  /** This workload's IP (`node_id`, `peer.address` of outbound spans). */
  readonly sourceIp: string;
  /** `region/zone/subzone`: the zone is the `zone` tag. */
  readonly locality: string;
  readonly trustDomain: string;
  /** Serving as a gateway (`numTrustedProxies` set): a caller's `x-envoy-decorator-operation` is not trusted. */
  readonly edge?: boolean;
  /** The app's calls are internal requests (`trustEnvoyRequestHeaders`): their `x-envoy-force-trace` is honoured. */
  readonly trustEnvoyRequestHeaders?: boolean;
  readonly options: TracingOptions | undefined;
  readonly warn: (m: string) => void;
}

/** One side's (client or server) merged tracing spec and compiled custom tags. */
export interface SideState {
  readonly spec: TracingSpec;
  readonly tags: CompiledTags;
}

/** A traced outbound call, from `call:start` to `call:end`. */
export interface CallState {
  readonly span: Span;
  readonly recording: boolean;
  readonly headers: Headers;
  readonly requestId: string | undefined;
  readonly attempts: Map<number, Span>;
  /** The call's context is written into its requests (not `disableContextPropagation`): each attempt then writes its own. */
  readonly propagates: boolean;
}

/** A served request's recorded span, from `inbound:start` to `inbound:end`. */
export interface InboundState {
  readonly span: Span;
  readonly recording: boolean;
  readonly requestId: string;
}
