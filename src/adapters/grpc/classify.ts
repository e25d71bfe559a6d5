/**
 * What a grpc-js status that no server sent means. grpc-js reports its own failures as
 * statuses too (a refused connection is UNAVAILABLE "No connection established", a reset
 * stream INTERNAL "Received RST_STREAM …", a dropped connection UNAVAILABLE "Connection
 * dropped"); the mesh must tell them from a server's answer, as Envoy tells a reset from a
 * response, so that retries (`connect-failure`, `reset`, `refused-stream`) and outlier
 * detection see the same kinds as on the HTTP path.
 *
 * A server's trailers-only answer carries the response headers (grpc-js keeps their
 * `content-type` in the status metadata); a status grpc-js made up carries none.
 *
 * @module
 */
import type { Metadata } from '@grpc/grpc-js';
import type { FailureKind } from '../../core/outcome.ts';
import { certificateProblem, TlsHandshakeError } from '../../core/tls-failure.ts';

/** A call that failed in grpc-js (no answer from the server): the status grpc-js gave, and what kind of failure it was. */
export class GrpcCallError extends Error {
  /** The gRPC status grpc-js reported. */
  readonly grpcCode: number;
  readonly details: string;
  readonly metadata: Metadata | undefined;
  /** How the pipeline counts it (retries, outlier detection). */
  readonly kind: FailureKind;
  /** `trust`: the roots the connection's TLS verified the server against, in words (the plan's), when it had TLS. */
  constructor(kind: FailureKind, grpcCode: number, details: string, metadata?: Metadata, trust?: string) {
    const tls = kind === 'connect-failure' || kind === 'reset' ? tlsCauseOf(details, trust) : undefined;
    super(details, tls === undefined ? undefined : { cause: tls });
    this.name = 'GrpcCallError';
    this.kind = kind;
    this.grpcCode = grpcCode;
    this.details = details;
    this.metadata = metadata;
  }
}

/**
 * OpenSSL's words for a server certificate that failed verification (`X509_verify_cert_error_string`,
 * the message of Node's verify error) and Node's code for each. grpc-js keeps only the message
 * ("Last error: Error: certificate has expired"), so the code is read back from it.
 */
const VERIFY_ERRORS: ReadonlyMap<string, string> = new Map([
  ['certificate has expired', 'CERT_HAS_EXPIRED'],
  ['certificate is not yet valid', 'CERT_NOT_YET_VALID'],
  ['unable to verify the first certificate', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
  ['unable to get issuer certificate', 'UNABLE_TO_GET_ISSUER_CERT'],
  ['unable to get local issuer certificate', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY'],
  ['self-signed certificate in certificate chain', 'SELF_SIGNED_CERT_IN_CHAIN'],
  ['self signed certificate in certificate chain', 'SELF_SIGNED_CERT_IN_CHAIN'],
  ['self-signed certificate', 'DEPTH_ZERO_SELF_SIGNED_CERT'],
  ['self signed certificate', 'DEPTH_ZERO_SELF_SIGNED_CERT'],
  ['certificate signature failure', 'CERT_SIGNATURE_FAILURE'],
  ['certificate revoked', 'CERT_REVOKED'],
  ['certificate not trusted', 'CERT_UNTRUSTED'],
  ['invalid CA certificate', 'INVALID_CA'],
  ['unsupported certificate purpose', 'INVALID_PURPOSE'],
]);

/** grpc-js 1.14's last error of a connection it could not make (`Subchannel`: "No connection established. Last error: <error>. Resolution note: …", some with the time after it). */
const LAST_ERROR = /^No connection established\. Last error: (?:Error: )?(.*?)(?: \(\d{4}-\d\d-\d\dT[^)]*\))?\. Resolution note:/s;

/**
 * The TLS failure behind a connection grpc-js could not make, from its text (grpc-js keeps only
 * the last error's message: "No connection established. Last error: <name>: <message>. Resolution
 * note: …"): the mesh's own server check (a {@link TlsHandshakeError}: "server identity … is not
 * one of the destination's identities"), an alert the server sent ("tlsv13 alert certificate
 * required"), or Node's refusal of the server's certificate chain ("certificate has expired",
 * checked against `trust`, the roots in words), so the caller's error names why, as an HTTP call's does.
 */
export function tlsCauseOf(details: string, trust = 'the trusted roots'): Error | undefined {
  const own = /TlsHandshakeError: TLS handshake failed: (.*?)(?:\. Resolution note:.*)?$/s.exec(details);
  if (own !== null) return new TlsHandshakeError(own[1] as string);
  const alert = /\b(?:ssl|tlsv1[0-3]?) alert ([a-z ]+?)(?::|$)/i.exec(details);
  if (alert !== null) {
    const e = new Error(details) as Error & { code?: string };
    e.code = `ERR_SSL_${alert[0].replace(/:$/, '').trim().toUpperCase().replace(/ /g, '_')}`;
    return e;
  }
  const code = VERIFY_ERRORS.get(LAST_ERROR.exec(details)?.[1] ?? '');
  const problem = code === undefined ? undefined : certificateProblem(code, trust);
  return problem === undefined ? undefined : new TlsHandshakeError(problem);
}

/** True when a status that ended a call with no response head was sent by the server (trailers-only). */
export function isServerTrailersOnly(metadata: Metadata): boolean {
  return metadata.get('content-type').length > 0;
}

/**
 * grpc-js's last error for a connection that was made — TCP connected, and the TLS handshake done
 * when there is TLS — and then closed or reset by the server before its HTTP/2 settings (grpc-js
 * 1.14's `Http2SubchannelConnector#createSession`: a close without an error is "Failed to connect",
 * a socket already closed "Connection closed before starting HTTP/2 handshake", a socket error its
 * message, none of them prefixed "Error:" as the TCP connect's and the TLS handshake's are).
 * Envoy counts such a connection as made, and its close as the stream's reset reason "connection
 * termination" (flag `UC`), e.g. a plaintext caller a STRICT server closes.
 */
const CLOSED_AFTER_CONNECT = /^No connection established\. Last error: (?:Failed to connect|Connection closed before starting HTTP\/2 handshake|(?:read|write) (?:ECONNRESET|EPIPE))\b/;

/**
 * grpc-js 1.14's texts for a stream the server reset with RST_STREAM CANCEL (when the connection
 * did not drop), ENHANCE_YOUR_CALM and INADEQUATE_SECURITY; its other codes read "Received
 * RST_STREAM with code N" (below; "… triggered by internal client error" is a reset of grpc-js's own).
 */
const REMOTE_RESET_TEXTS = new Set(['Call cancelled', 'Bandwidth exhausted or memory limit exceeded', 'Protocol not secure enough']);
/** grpc-js's text for the server's RST_STREAM with another non-zero code (code 0 is a stream that ended without a status: not a reset). */
const REMOTE_RST = /^Received RST_STREAM with code [1-9]\d*(?: \(Internal server error\))?$/;

/**
 * The kind of a status grpc-js made up, from its text (grpc-js 1.14's wording, pinned by a
 * test): a refused or failed connection, a connection the server closed once it was made, a
 * refused stream, a stream the server reset (RST_STREAM: Envoy's `remote reset`), or a
 * connection that broke (`connection termination`).
 */
export function failureKindOf(code: number, details: string): FailureKind {
  if (code === 14 && details.startsWith('No connection established')) return CLOSED_AFTER_CONNECT.test(details) ? 'reset' : 'connect-failure';
  // The name did not resolve (a passthrough call to a host DNS does not know): no connection was made.
  if (code === 14 && details.startsWith('Name resolution failed')) return 'connect-failure';
  if (details === 'Stream refused by server') return 'refused-stream';
  if (REMOTE_RESET_TEXTS.has(details) || REMOTE_RST.test(details)) return 'remote-reset';
  return 'reset';
}

/**
 * True when a status that came after the response head was made up by grpc-js (the stream or
 * connection broke mid-call) rather than sent in trailers by the server.
 */
export function isLocalAfterHead(code: number, details: string, metadata: Metadata): boolean {
  if (code === 0 || Object.keys(metadata.toHttp2Headers()).length > 0) return false;
  return details === 'Connection dropped' || details === 'Call cancelled' || details.startsWith('Received RST_STREAM') || details === 'Stream refused by server';
}

/** Classifies an error the gRPC transport reported (the transport's `classify`). */
export function classifyGrpcError(err: Error): FailureKind {
  if (err instanceof GrpcCallError) return err.kind;
  if (err.name === 'AbortError') return 'cancelled';
  return 'reset';
}
