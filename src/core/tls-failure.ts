/**
 * TLS handshake failures of outbound connections, and their reason in words. Envoy counts a
 * failed handshake as a connect failure (flag `UF`, retried on `connect-failure` and `reset`,
 * charged to outlier detection as a local-origin connect failure) and words it
 * `…reset reason: connection failure, transport failure reason: TLS_error: …`; meshlet does the
 * same with a reason a person can act on ("the server's certificate has expired", "server
 * identity spiffe://… is not one of the destination's identities […]").
 *
 * @module
 */

/** The error a TLS connection attempt fails with: `reason` says why, `cause` is Node's own error. */
export class TlsHandshakeError extends Error {
  /** A stable code for matching (`err.code`). */
  readonly code = 'MESHLET_TLS_HANDSHAKE';
  /** Why, in words. */
  readonly reason: string;
  constructor(reason: string, cause?: unknown) {
    super(`TLS handshake failed: ${reason}`, cause === undefined ? undefined : { cause });
    this.name = 'TlsHandshakeError';
    this.reason = reason;
  }
}

/** Alerts a server sends (Node's `ERR_SSL_…` codes, OpenSSL's alert names) and what they mean for a client. */
const ALERTS: ReadonlyArray<[RegExp, string]> = [
  [/CERTIFICATE_REQUIRED|PEER_DID_NOT_RETURN_A_CERTIFICATE/, 'the server requires a client certificate and refused the connection without one'],
  [/ALERT_UNKNOWN_CA/, "the server does not trust this workload's certificate (signed by a CA it does not know)"],
  [/ALERT_CERTIFICATE_EXPIRED/, "the server refused this workload's certificate as expired"],
  [/ALERT_BAD_CERTIFICATE|ALERT_UNSUPPORTED_CERTIFICATE|ALERT_CERTIFICATE_UNKNOWN|ALERT_ACCESS_DENIED/, "the server refused this workload's certificate"],
  [/NO_APPLICATION_PROTOCOL/, 'the server accepts none of the ALPN protocols offered'],
  [/WRONG_VERSION_NUMBER|HTTP_REQUEST|PACKET_LENGTH_TOO_LONG/, 'the server did not answer with TLS (is it a plaintext port?)'],
  [/HANDSHAKE_FAILURE/, 'the server refused the handshake (no cipher, version or certificate in common)'],
];

function alertReason(code: string, message: string): string | undefined {
  if (!code.startsWith('ERR_SSL_')) return undefined;
  for (const [re, text] of ALERTS) if (re.test(code)) return `${text} (${code})`;
  return `${message} (${code})`;
}

/**
 * The TLS reason of a transport error, or undefined when it is not a TLS failure: a
 * {@link TlsHandshakeError}, or an alert the server sent after the handshake looked done (TLS
 * 1.3 servers check the client certificate then), found on the error or its causes.
 */
export function tlsFailureReason(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof TlsHandshakeError) return e.reason;
    const r = alertReason(String((e as { code?: unknown }).code ?? ''), e.message);
    if (r !== undefined) return r;
  }
  return undefined;
}
