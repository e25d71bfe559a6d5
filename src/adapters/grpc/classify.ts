/**
 * The gRPC transport's failures: a call whose stream ended without the server's status (reset,
 * refused, dropped with its connection; h2-call.ts) or whose connection could not be made
 * (conn.ts) fails with a {@link GrpcCallError} of the kind Envoy would see — `connect-failure`,
 * `reset` (connection termination), `remote-reset`, `refused-stream`, `protocol` — so that
 * retries (`connect-failure`, `reset`, `refused-stream`) and outlier detection see the same kinds
 * as on the HTTP path. The status grpc-js would have reported for it is kept for the caller.
 *
 * @module
 */
import type { Metadata } from '@grpc/grpc-js';
import type { FailureKind } from '../../core/outcome.ts';

/** A call that failed on the wire (no answer from the server): the status grpc-js gives for it, and what kind of failure it was. */
export class GrpcCallError extends Error {
  /** The gRPC status the caller gets (grpc-js's for the same failure). */
  readonly grpcCode: number;
  readonly details: string;
  readonly metadata: Metadata | undefined;
  /** How the pipeline counts it (retries, outlier detection). */
  readonly kind: FailureKind;
  /** `cause`: the error behind it (a socket's; the TLS connector's, which says why TLS failed). */
  constructor(kind: FailureKind, grpcCode: number, details: string, metadata?: Metadata, cause?: Error) {
    super(details, cause === undefined ? undefined : { cause });
    this.name = 'GrpcCallError';
    this.kind = kind;
    this.grpcCode = grpcCode;
    this.details = details;
    this.metadata = metadata;
  }
}

/** Classifies an error the gRPC transport reported (the transport's `classify`). */
export function classifyGrpcError(err: Error): FailureKind {
  if (err instanceof GrpcCallError) return err.kind;
  if (err.name === 'AbortError') return 'cancelled';
  return 'reset';
}
