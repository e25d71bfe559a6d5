/**
 * Maps undici and socket errors to the protocol-neutral failure kinds retry policy and outlier
 * detection use.
 *
 * @module
 */
import type { FailureKind } from '../../core/outcome.ts';
import { TlsHandshakeError, tlsFailureReason } from '../../core/tls-failure.ts';

const CONNECT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EADDRNOTAVAIL',
  'ENOENT', // unix socket path missing
]);

const PROTOCOL_CODES = new Set(['HPE_INVALID_CONSTANT', 'HPE_INVALID_VERSION', 'HPE_INVALID_STATUS', 'HPE_INVALID_HEADER_TOKEN', 'HPE_CR_EXPECTED', 'HPE_LF_EXPECTED', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH']);

/** Classifies an error from undici (or the socket under it). */
export function classifyUndiciError(err: Error, call?: { readonly options: unknown; flag(f: string): void }): FailureKind {
  if (err.name === 'AbortError' || (err as { code?: string }).code === 'UND_ERR_ABORTED') return 'cancelled';
  const code = (err as { code?: string }).code ?? '';
  if (call !== undefined && callerTimeout(code, call.options as { headersTimeout?: unknown; bodyTimeout?: unknown } | undefined)) {
    // The caller's own headersTimeout or bodyTimeout (undici request options, given to each attempt) is its own deadline, as its
    // AbortSignal is: the caller gave up (DC, as Envoy flags a downstream reset), not the upstream's failure to
    // charge to outlier detection or retry; the caller gets its error as plain undici reports it.
    call.flag('DC');
    return 'local';
  }
  // undici refused the request as given (a header value with CR/LF, a bad method, a body that does not match its own content-length, …).
  if (code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED' || code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') return 'local';
  if (CONNECT_CODES.has(code)) return 'connect-failure';
  // A connection closed without a word once the request was on it: perhaps a refused certificate, perhaps a server that
  // read the request and died. Envoy's handshake had completed (reset reason: connection termination): not a connect failure.
  if (err instanceof TlsHandshakeError && err.requestSent) return 'reset';
  // A failed TLS handshake is a connect failure (Envoy), also when the server's alert arrives after it looked done.
  // So is Node's refusal of the server's certificate on a connection undici's own connector made (the app's https://).
  if (err instanceof TlsHandshakeError || code.startsWith('ERR_SSL_') || ((err as { cause?: { code?: unknown } }).cause?.code ?? '').toString().startsWith('ERR_SSL_') || tlsFailureReason(err) !== undefined) return 'connect-failure';
  const cause = (err as { cause?: { code?: string } }).cause;
  if (cause !== undefined && CONNECT_CODES.has(cause.code ?? '')) return 'connect-failure';
  if (code.startsWith('HPE_') || PROTOCOL_CODES.has(code) || err.name === 'HTTPParserError') return 'protocol';
  if (/REFUSED_STREAM/.test(err.message) || code === 'ERR_HTTP2_STREAM_ERROR' && /REFUSED/.test(err.message)) return 'refused-stream';
  if (code === 'ERR_HTTP2_GOAWAY_SESSION') return 'refused-stream';
  // undici fails a request whose stream a GOAWAY left unprocessed (its id above the frame's last stream id) with this
  // error when it cannot replay the body itself (a stream; it replays a GET or a Buffer). The server never saw that
  // stream: nghttp2 closes it REFUSED_STREAM (session_close_stream_on_goaway), which Envoy's codec reports as
  // RemoteRefusedStreamReset, retried under Istio's default `refused-stream` — not a connection termination.
  if ((code === 'UND_ERR_INFO' || code === 'UND_ERR_SOCKET') && err.message.startsWith('HTTP/2: "GOAWAY" frame received')) return 'refused-stream';
  // Node's error for a stream the peer closed with RST_STREAM (a local reset is an abort, above).
  if (code === 'ERR_HTTP2_STREAM_ERROR') return 'remote-reset';
  return 'reset';
}

/** An undici timeout the caller set itself (not a pool default). */
function callerTimeout(code: string, options: { headersTimeout?: unknown; bodyTimeout?: unknown } | undefined): boolean {
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return options?.headersTimeout !== undefined;
  return code === 'UND_ERR_BODY_TIMEOUT' && options?.bodyTimeout !== undefined;
}
