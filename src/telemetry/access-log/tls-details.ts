/**
 * What a request's downstream connection says for the access-log operators Envoy reads from its
 * `Ssl::ConnectionInfo` (`%DOWNSTREAM_TLS_VERSION%`, `%DOWNSTREAM_PEER_SUBJECT%`, …) and the ALS
 * entry's `tls_properties`, and Envoy's per-process `%CONNECTION_ID%`.
 *
 * Read from the connection's TLS socket once per connection, and only when a configured log uses
 * it (the access logger asks; nothing here runs otherwise), then kept with the connection.
 *
 * Formats follow Envoy's `source/common/tls/connection_info_impl_base.cc` and `utility.cc`:
 * - version: `SSL_get_version` (`TLSv1.3`), as Node's `getProtocol()`;
 * - cipher: `SSL_CIPHER_get_name` (`TLS_AES_128_GCM_SHA256`, `ECDHE-RSA-AES128-GCM-SHA256`), as Node's
 *   `getCipher().name`; its IANA id (`SSL_CIPHER_get_protocol_id`) for the ALS entry;
 * - session id: the hex of `SSL_SESSION_get_id`, read from the session's DER (`getSession()`);
 * - subject / issuer: `X509_NAME_print_ex(…, XN_FLAG_RFC2253)` — the RDNs last first, joined with `,`;
 * - serial: `BN_bn2hex` lower-cased; fingerprint: the hex SHA-256 of the DER;
 * - certificate: the PEM, URL-encoded (`%0A` for a newline, `%2B`, `%2F`, `%3D`).
 *
 * @module
 */
import type { X509Certificate } from 'node:crypto';
import { rfc2253, sansOf, urlEncodePem } from '../../core/certificate-text.ts';

/** One certificate of a TLS connection, as the operators print it. */
export interface CertDetails {
  /** RFC 2253 subject (`CN=foo,O=bar`), '' when empty. */
  readonly subject: string;
  readonly issuer: string;
  /** Lower-case hex. */
  readonly serial: string;
  /** Lower-case hex SHA-256 and SHA-1 of the DER, no colons. */
  readonly fingerprint256: string;
  readonly fingerprint1: string;
  readonly uriSans: readonly string[];
  readonly dnsSans: readonly string[];
  readonly ipSans: readonly string[];
  readonly emailSans: readonly string[];
  /** The PEM, URL-encoded (Envoy's `urlEncodedPemEncodedPeerCertificate`); read when used. */
  readonly pemUrlEncoded: () => string;
  /** Not before / not after, ms since the epoch. */
  readonly validFromMs: number;
  readonly validToMs: number;
}

/** A downstream TLS connection, as Envoy's `Ssl::ConnectionInfo` gives it. */
export interface TlsDetails {
  /** `TLSv1.2`, `TLSv1.3`. */
  readonly version: string | undefined;
  /** OpenSSL's name (`TLS_AES_256_GCM_SHA384`, `ECDHE-RSA-AES128-GCM-SHA256`). */
  readonly cipher: string | undefined;
  /** The IANA id (`0x1302`), when meshlet knows the suite's standard name. */
  readonly cipherId: number | undefined;
  /** Lower-case hex, '' when the session has none. */
  readonly sessionId: string;
  /** The client's certificate (mTLS), when it sent one. */
  readonly peer: CertDetails | undefined;
  /** The certificate this side presented. */
  readonly local: CertDetails | undefined;
}

interface TlsSocketLike {
  readonly encrypted?: boolean;
  getProtocol(): string | null;
  getCipher(): { readonly name: string; readonly standardName?: string } | null | undefined;
  getSession(): Buffer | undefined;
  getPeerX509Certificate(): X509Certificate | undefined;
  getX509Certificate(): X509Certificate | undefined;
}

/** IANA ids of the suites Node's OpenSSL negotiates by default (RFC 8446 §B.4, RFC 5289, RFC 7905). */
const CIPHER_IDS: Readonly<Record<string, number>> = Object.freeze({
  TLS_AES_128_GCM_SHA256: 0x1301,
  TLS_AES_256_GCM_SHA384: 0x1302,
  TLS_CHACHA20_POLY1305_SHA256: 0x1303,
  TLS_AES_128_CCM_SHA256: 0x1304,
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 0xc02b,
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 0xc02c,
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 0xc02f,
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 0xc030,
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 0xcca8,
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 0xcca9,
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 0xc009,
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 0xc00a,
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 0xc013,
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 0xc014,
  TLS_RSA_WITH_AES_128_GCM_SHA256: 0x009c,
  TLS_RSA_WITH_AES_256_GCM_SHA384: 0x009d,
  TLS_RSA_WITH_AES_128_CBC_SHA: 0x002f,
  TLS_RSA_WITH_AES_256_CBC_SHA: 0x0035,
});

/** The TLS socket of a connection as the server adapters hand it on (`ConnectionInfo.connection`): the socket, an HTTP/2 session, or the gRPC listener's record of it. */
function tlsSocketOf(connection: object | undefined): TlsSocketLike | undefined {
  if (connection === undefined) return undefined;
  const c = connection as Partial<TlsSocketLike> & { readonly socket?: Partial<TlsSocketLike> };
  const s = typeof c.getPeerX509Certificate === 'function' ? c : c.socket;
  if (s === undefined || s === null || typeof s.getPeerX509Certificate !== 'function' || s.encrypted !== true) return undefined;
  return s as TlsSocketLike;
}

/** What the operators print of a certificate. */
export function certDetails(x: X509Certificate): CertDetails {
  const san = x.subjectAltName;
  return {
    subject: rfc2253(x.subject),
    issuer: rfc2253(x.issuer),
    serial: x.serialNumber.toLowerCase(),
    fingerprint256: x.fingerprint256.replace(/:/g, '').toLowerCase(),
    fingerprint1: x.fingerprint.replace(/:/g, '').toLowerCase(),
    uriSans: sansOf(san, 'URI'),
    dnsSans: sansOf(san, 'DNS'),
    ipSans: sansOf(san, 'IP Address'),
    emailSans: sansOf(san, 'email'),
    pemUrlEncoded: () => urlEncodePem(x.toString()),
    validFromMs: Date.parse(x.validFrom),
    validToMs: Date.parse(x.validTo),
  };
}

/** Reads a DER length at `i`; returns [length, offset of the content]. */
function derLength(b: Buffer, i: number): [number, number] {
  const first = b[i] as number;
  if (first < 0x80) return [first, i + 1];
  const n = first & 0x7f;
  let len = 0;
  for (let k = 0; k < n; k++) len = len * 256 + (b[i + 1 + k] as number);
  return [len, i + 1 + n];
}

/**
 * The session id of an OpenSSL session's DER (`i2d_SSL_SESSION`: SEQUENCE { version INTEGER,
 * sslVersion INTEGER, cipher OCTET STRING, sessionID OCTET STRING, … }), lower-case hex.
 */
export function sessionIdOf(der: Buffer | undefined): string {
  if (der === undefined || der.length < 2 || der[0] !== 0x30) return '';
  try {
    let [, i] = derLength(der, 1);
    for (let field = 0; field < 4; field++) {
      const tag = der[i];
      const [len, at] = derLength(der, i + 1);
      if (field === 3) return tag === 0x04 ? der.subarray(at, at + len).toString('hex') : '';
      i = at + len;
    }
  } catch {
    return '';
  }
  return '';
}

const cache = new WeakMap<object, TlsDetails | null>();

/**
 * The TLS details of a request's downstream connection (undefined: plaintext, or a connection
 * the mesh cannot see), read at the first request that needs them and kept with the connection.
 */
export function tlsDetailsOf(connection: object | undefined): TlsDetails | undefined {
  if (connection === undefined) return undefined;
  const known = cache.get(connection);
  if (known !== undefined) return known ?? undefined;
  const s = tlsSocketOf(connection);
  const version = s?.getProtocol() ?? undefined;
  // A closed socket says nothing (its handle is gone): not remembered, a later request may still see it.
  if (s === undefined || version === undefined) {
    if (s === undefined) cache.set(connection, null);
    return undefined;
  }
  const cipher = s.getCipher() ?? undefined;
  const peer = s.getPeerX509Certificate();
  const local = s.getX509Certificate();
  const d: TlsDetails = {
    version,
    cipher: cipher?.name,
    cipherId: cipher?.standardName === undefined ? undefined : CIPHER_IDS[cipher.standardName],
    sessionId: sessionIdOf(s.getSession()),
    peer: peer === undefined ? undefined : certDetails(peer),
    local: local === undefined ? undefined : certDetails(local),
  };
  cache.set(connection, d);
  return d;
}

let lastConnectionId = 0;
const connectionIds = new WeakMap<object, number>();

/**
 * Envoy's `%CONNECTION_ID%`: a per-process counter, here given to a connection when a log first
 * asks for it (Envoy numbers connections as they are accepted, so the numbers are increasing in
 * the order of their first logged request rather than of their accept).
 */
export function connectionIdOf(connection: object | undefined): number | undefined {
  if (connection === undefined) return undefined;
  let id = connectionIds.get(connection);
  if (id === undefined) {
    id = ++lastConnectionId;
    connectionIds.set(connection, id);
  }
  return id;
}
