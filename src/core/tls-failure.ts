/**
 * TLS handshake failures of outbound connections, and their reason in words. Envoy counts a
 * failed handshake as a connect failure (flag `UF`, retried on `connect-failure` and `reset`,
 * charged to outlier detection as a local-origin connect failure) and words it
 * `…reset reason: remote connection failure, transport failure reason: TLS_error: …`; meshlet does the
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
  /**
   * The connection failed after the request was sent on it (a TLS 1.3 server closing it without a
   * word): the server may have read the request, so it is a connection termination, retried only
   * where a reset is (Envoy: the handshake had completed), never as a connect failure.
   */
  readonly requestSent: boolean;
  constructor(reason: string, cause?: unknown, requestSent = false) {
    super(`TLS handshake failed: ${reason}`, cause === undefined ? undefined : { cause });
    this.name = 'TlsHandshakeError';
    this.reason = reason;
    this.requestSent = requestSent;
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

/** OpenSSL's verification results (Node's error codes) that mean the chain leads to no trusted root. */
export const UNKNOWN_CA_CODES: ReadonlySet<string> = new Set(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_SIGNATURE_FAILURE']);

/**
 * OpenSSL's verification results of the server's certificate (Node's error codes), in words;
 * `trust` names the roots the chain had to lead to.
 */
export function certificateProblem(code: string, trust: string): string | undefined {
  if (UNKNOWN_CA_CODES.has(code)) return `the server's certificate is signed by an unknown CA: not one of ${trust} (${code})`;
  switch (code) {
    case 'CERT_HAS_EXPIRED':
      return `the server's certificate has expired (${code})`;
    case 'CERT_NOT_YET_VALID':
      return `the server's certificate is not valid yet (${code})`;
    case 'CERT_REVOKED':
      return `the server's certificate is revoked by caCrl (${code})`;
    case 'CERT_UNTRUSTED':
    case 'INVALID_CA':
    case 'INVALID_PURPOSE':
      return `the server's certificate chain is not acceptable (${code})`;
    default:
      return undefined;
  }
}

/**
 * The roots an `https://` call without a DestinationRule `tls` block is verified against: the
 * app's own TLS, made by undici's connector with Node's default CA store.
 */
const APP_TLS_TRUST = "Node's default CA certificates (an https:// call without a DestinationRule tls block)";

/** Node's refusal of a certificate that does not name the host (`ERR_TLS_CERT_ALTNAME_INVALID`), in words. */
function nameReason(e: Error): string {
  const { host, reason } = e as { host?: unknown; reason?: unknown };
  return `the server's certificate does not name ${typeof host === 'string' ? host : 'the host'}: ${typeof reason === 'string' ? reason : e.message}`;
}

/**
 * The TLS reason of a transport error, or undefined when it is not a TLS failure: a
 * {@link TlsHandshakeError}, an alert the server sent (also after the handshake looked done:
 * TLS 1.3 servers check the client certificate then), or Node's refusal of the server's
 * certificate on a connection undici's own connector made (the app's `https://`), found on the
 * error or its causes.
 */
export function tlsFailureReason(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof TlsHandshakeError) return e.reason;
    const code = String((e as { code?: unknown }).code ?? '');
    const r = alertReason(code, e.message) ?? certificateProblem(code, APP_TLS_TRUST);
    if (r !== undefined) return r;
    if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return nameReason(e);
  }
  return undefined;
}
