/**
 * What the pipeline needs from a transport — the adapter part that puts an attempt on the wire.
 * A mesh has one per kind of call (`http`: undici, for fetch and undici callers; `grpc`:
 * grpc-js channels), keyed by the name an Exchange carries in `transport`; every transport sends
 * through the same clusters, so one cluster's limiter, outlier detector and retry budget are
 * shared by every protocol that reaches it.
 *
 * @module
 */
import type { Exchange } from '../core/exchange.ts';
import type { Dispatch } from '../core/layer.ts';
import type { FailureKind } from '../core/outcome.ts';
import type { ClusterState } from './cluster-state.ts';

/** One transport of the mesh. */
export interface CallTransport {
  /** Sends an attempt to `ex.host` of `ex.cluster` (or the original address when the cluster passes through). */
  readonly dispatch: Dispatch;
  /** Sends a call for a host outside the mesh to the address its URL names (Istio's PassthroughCluster). */
  readonly passthrough: Dispatch;
  /** Classifies this transport's own failures (connect failure, reset, protocol error, a local one …). */
  classify(err: Error, ex: Exchange): FailureKind;
  /** A cluster's settings changed: rebuild what this transport keeps for it (pools). */
  refresh?(cs: ClusterState): void;
}

/** The mesh's transports by name. */
export type Transports = Readonly<Record<string, CallTransport>>;

/** The transport an exchange names (an adapter bug when it names none). */
export function transportOf(transports: Transports, name: string): CallTransport {
  const t = Object.hasOwn(transports, name) ? transports[name] : undefined;
  if (t === undefined) throw new Error(`meshlet: no transport "${name}" (the mesh has ${Object.keys(transports).join(', ')})`);
  return t;
}
