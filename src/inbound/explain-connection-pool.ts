/**
 * The inbound connection pool part of an inbound explanation: which `connectionPool` applies to
 * the request's port and where it comes from (the running mesh's counters are not known here).
 *
 * @module
 */
import type { AnyResource } from '../config/resource.ts';
import { UNLIMITED } from '../policies/limits.ts';
import { CompiledInboundPools, type InboundPoolWorkload } from './connection-pool-compile.ts';

/**
 * The inbound connection pool that applies to a request's port, as `mesh.explainInbound()`
 * shows it.
 * @category Server
 */
export interface InboundPoolExplanation {
  /** `inbound|<port>||`. */
  readonly cluster: string;
  /** Where the settings come from (`Sidecar ns/name ingress[0] (port 8080)`, `DestinationRule ns/name portLevelSettings (port 80)`, …); undefined when none applies. */
  readonly source: string | undefined;
  /** The service whose DestinationRule was looked up, and the service port that reaches the local port. */
  readonly service: { readonly host: string; readonly port: number };
  /** Requests in flight at most (min(maxConnections, http2MaxRequests) for HTTP/1.1, http2MaxRequests for gRPC and HTTP/2 ports); undefined: unlimited. */
  readonly maxActive: { readonly http1: number | undefined; readonly grpc: number | undefined };
  /** Requests waiting at most (http1MaxPendingRequests); undefined: unlimited. */
  readonly maxPending: number | undefined;
}

/** The pool of `port` for an explanation; `assumes` gets the line a limited pool adds to the verdict. */
export function explainInboundPool(resources: readonly AnyResource[], workload: InboundPoolWorkload, rootNamespace: string, port: number, grpc: boolean, assumes: string[]): InboundPoolExplanation {
  const pools = new CompiledInboundPools(resources, workload, rootNamespace);
  const p = pools.forPort(port);
  const n = (v: number) => (v === UNLIMITED ? undefined : v);
  const h1 = pools.limitsFor(port, false);
  const h2 = pools.limitsFor(port, true);
  const x: InboundPoolExplanation = { cluster: p.cluster, source: p.source, service: p.service, maxActive: { http1: n(h1.maxActive), grpc: n(h2.maxActive) }, maxPending: n(h1.maxPending) };
  const active = grpc ? x.maxActive.grpc : x.maxActive.http1;
  if (active !== undefined || x.maxPending !== undefined) {
    assumes.push(
      `a slot is free in ${p.cluster} (${active === undefined ? 'no limit on requests in flight' : `${active} in flight at most`}, ${x.maxPending === undefined ? 'any number waiting' : `${x.maxPending} waiting at most`}; ${p.source}); else the request waits for one, or is answered 503 UO`,
    );
  }
  return x;
}

