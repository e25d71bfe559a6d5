/**
 * How one attempt ended, in protocol-neutral terms: the retry policy, outlier detection and
 * telemetry all read this one shape. HTTP and gRPC adapters fill it in; they differ only in
 * where the status comes from.
 *
 * @module
 */

/** Why an attempt got no (usable) response. */
export type FailureKind =
  /** TCP connect failed or timed out (Envoy `connect-failure`, flag UF). */
  | 'connect-failure'
  /** The upstream closed or reset the connection before a response (Envoy reset reason `connection termination`, flag UC). */
  | 'reset'
  /**
   * The upstream reset the HTTP/2 stream (RST_STREAM with a code other than REFUSED_STREAM)
   * before a response (Envoy reset reason `remote reset`, flag UR). Retried on `reset`, as Envoy.
   */
  | 'remote-reset'
  /** HTTP/2 REFUSED_STREAM (Envoy `refused-stream`). */
  | 'refused-stream'
  /** The per-try timeout fired before response headers (a local reset, flag UT). */
  | 'per-try-timeout'
  /** Circuit-breaker overflow (flag UO); never retried. */
  | 'overflow'
  /** The upstream spoke invalid HTTP (flag UPE, 502). */
  | 'protocol'
  /** The caller cancelled the call. Never retried. */
  | 'cancelled'
  /**
   * The request could not be sent as the caller gave it: an invalid argument (a header value
   * with a newline, …) or the caller's own body source failing mid-upload. Envoy never charges
   * a downstream failure to the upstream: never retried, never counted by outlier detection,
   * and the caller gets its own error back, as from plain undici.
   */
  | 'local';

/** The result of one attempt, as the retry policy and outlier detection see it. */
export interface AttemptOutcome {
  /** Response status, or 0 when there was no response. */
  status: number;
  /** `grpc-status` from the response headers (trailers-only responses), or -1. */
  grpcStatus: number;
  /** Why there was no response, when there was none. */
  failure: FailureKind | undefined;
  /** False when the failure happened before any request byte was written (Envoy `reset-before-request`). */
  requestSent: boolean;
  /** Response headers (lower-cased names), when there was a response. */
  headers: Readonly<Record<string, string | string[] | undefined>> | undefined;
}
