/**
 * The one response classifier, HTTP and gRPC alike, in two stages: the response head, and the
 * end of the stream (trailers). Retries, outlier detection, the retry budget and telemetry all
 * read it, so they agree on what an answer was.
 *
 * - HTTP: the status of the head is the answer.
 * - gRPC (the request's `content-type` is `application/grpc…`): a `grpc-status` in the head
 *   (a trailers-only answer) is the answer, charged as Envoy charges it (`grpcToHttpStatus`:
 *   UNAVAILABLE counts as 503); a 200 head without one defers the answer to the trailers; a
 *   non-200 head is an HTTP answer (its gRPC status is gRPC's HTTP mapping).
 * - At the end of a deferred gRPC stream, the trailers' `grpc-status` is the answer; a stream
 *   that ends without one is an error (Envoy: "gRPC request termination without trailers is an
 *   error"), charged as 500 / UNKNOWN.
 *
 * Envoy decides retries at the head (a response the caller has started to receive is never
 * retried), so a status in real trailers is never retried — by Envoy or by meshlet. Envoy's
 * outlier detection also looks only at the head; meshlet's looks at the end of a deferred gRPC
 * stream too, so a server that fails every call with UNAVAILABLE in trailers is ejected like one
 * that answers trailers-only (docs/outbound.md, "Differences").
 *
 * @module
 */
import { grpcStatusOf, grpcToHttp, httpToGrpc } from './grpc-status.ts';

type HeaderMap = Readonly<Record<string, string | readonly string[] | undefined>>;

/**
 * What a call speaks: HTTP/1.1, HTTP/2, or gRPC (over HTTP/2). The adapter says what the caller
 * asked for; a transport that upgrades an HTTP call to HTTP/2 says so. The classifier tells
 * only gRPC from the rest; telemetry reports all three (Istio's `request_protocol`).
 */
export type Protocol = 'http1' | 'http2' | 'grpc';

/** The answer is in the trailers: the head alone does not say. */
export const DEFERRED = -1;

/**
 * The HTTP-equivalent status a response head is charged as (outlier detection, success rates),
 * or {@link DEFERRED} for a gRPC head that leaves the answer to the trailers.
 */
export function headStatus(protocol: Protocol, statusCode: number, headers: HeaderMap): number {
  if (protocol !== 'grpc' || statusCode !== 200) return statusCode;
  const g = grpcStatusOf(headers);
  return g === -1 ? DEFERRED : grpcToHttp(g);
}

/** The gRPC status a response head says, or -1 when it says none (HTTP, or deferred to trailers). */
export function headGrpcStatus(protocol: Protocol, statusCode: number, headers: HeaderMap): number {
  if (protocol !== 'grpc') return grpcStatusOf(headers);
  return statusCode === 200 ? grpcStatusOf(headers) : httpToGrpc(statusCode);
}

/** The HTTP-equivalent status of a deferred gRPC answer from its trailers (500 when they carry no status). */
export function trailerStatus(trailers: HeaderMap | undefined): number {
  const g = grpcStatusOf(trailers);
  return g === -1 ? 500 : grpcToHttp(g);
}

/** The gRPC status of a deferred answer from its trailers (UNKNOWN when they carry none). */
export function trailerGrpcStatus(trailers: HeaderMap | undefined): number {
  const g = grpcStatusOf(trailers);
  return g === -1 ? 2 : g;
}

/** True for a request whose content-type makes it a gRPC call (Envoy's `isGrpcRequestHeaders`). */
export function isGrpcContentType(contentType: string | readonly string[] | undefined): boolean {
  const v = typeof contentType === 'string' ? contentType : contentType?.[0];
  return v !== undefined && v.length >= 16 && v.charCodeAt(12) === 0x67 /* g */ && v.startsWith('application/grpc') && (v.length === 16 || v[16] === '+' || v[16] === ';');
}
