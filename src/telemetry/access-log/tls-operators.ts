/**
 * The access-log operators of a request's downstream TLS connection, as Envoy's
 * `source/common/formatter/stream_info_formatter.cc` defines them
 * (`StreamInfoSslConnectionInfoFormatterProvider`): undefined (`-`, JSON `null`) for a plaintext
 * connection and for an empty value (a certificate without a subject, a peer that sent none), the
 * SAN lists joined with `,`. Read from the connection the server adapters hand on (`tls-details.ts`),
 * so only the server side (`reporter=destination`) has them; the client side's downstream is the
 * app's own in-process call.
 *
 * @module
 */
import type { RequestRecord } from '../record.ts';
import { checkTimeFormat, defaultStartTime, formatTime } from './time-format.ts';
import { type CertDetails, type TlsDetails, tlsDetailsOf } from './tls-details.ts';

type Value = string | number | undefined;
type TlsOperator = (r: RequestRecord) => Value;

const tls = (r: RequestRecord): TlsDetails | undefined => (r.side === 'server' ? tlsDetailsOf(r.connection) : undefined);
const nonEmpty = (v: string | undefined): Value => (v === undefined || v === '' ? undefined : v);
const peer =
  (f: (c: CertDetails) => string): TlsOperator =>
  (r) => {
    const c = tls(r)?.peer;
    return c === undefined ? undefined : nonEmpty(f(c));
  };
const local =
  (f: (c: CertDetails) => string): TlsOperator =>
  (r) => {
    const c = tls(r)?.local;
    return c === undefined ? undefined : nonEmpty(f(c));
  };

/** The downstream TLS operators without arguments. */
export const TLS_OPERATORS: Readonly<Record<string, TlsOperator>> = Object.assign(Object.create(null), {
  DOWNSTREAM_TLS_VERSION: (r: RequestRecord) => nonEmpty(tls(r)?.version),
  DOWNSTREAM_TLS_CIPHER: (r: RequestRecord) => nonEmpty(tls(r)?.cipher),
  DOWNSTREAM_TLS_SESSION_ID: (r: RequestRecord) => nonEmpty(tls(r)?.sessionId),
  DOWNSTREAM_PEER_SUBJECT: peer((c) => c.subject),
  DOWNSTREAM_PEER_ISSUER: peer((c) => c.issuer),
  DOWNSTREAM_PEER_FINGERPRINT_256: peer((c) => c.fingerprint256),
  DOWNSTREAM_PEER_FINGERPRINT_1: peer((c) => c.fingerprint1),
  DOWNSTREAM_PEER_SERIAL: peer((c) => c.serial),
  DOWNSTREAM_PEER_CERT: peer((c) => c.pemUrlEncoded()),
  DOWNSTREAM_PEER_DNS_SAN: peer((c) => c.dnsSans.join(',')),
  DOWNSTREAM_PEER_IP_SAN: peer((c) => c.ipSans.join(',')),
  DOWNSTREAM_PEER_EMAIL_SAN: peer((c) => c.emailSans.join(',')),
  DOWNSTREAM_LOCAL_URI_SAN: local((c) => c.uriSans.join(',')),
  DOWNSTREAM_LOCAL_DNS_SAN: local((c) => c.dnsSans.join(',')),
  DOWNSTREAM_LOCAL_IP_SAN: local((c) => c.ipSans.join(',')),
  DOWNSTREAM_LOCAL_EMAIL_SAN: local((c) => c.emailSans.join(',')),
  DOWNSTREAM_LOCAL_SUBJECT: local((c) => c.subject),
  // The verified SPIFFE ID when the connection is not at hand (a listener the mesh did not make).
  DOWNSTREAM_PEER_URI_SAN: (r: RequestRecord) => {
    const c = tls(r)?.peer;
    return c === undefined ? r.peerPrincipal : nonEmpty(c.uriSans.join(','));
  },
});

/**
 * `%DOWNSTREAM_PEER_CERT_V_START(format)%` / `…_V_END(format)%`: the peer certificate's validity,
 * formatted as `%START_TIME%` is (Envoy's `SystemTimeFormatter`). Returns undefined for other names;
 * throws with the problem of a bad format.
 */
export function certTimeOperator(name: string, arg: string | undefined): TlsOperator | undefined {
  if (name !== 'DOWNSTREAM_PEER_CERT_V_START' && name !== 'DOWNSTREAM_PEER_CERT_V_END') return undefined;
  const format = arg ?? '';
  if (format !== '') {
    const problem = checkTimeFormat(format);
    if (problem !== undefined) throw new Error(`%${name}(${format})%: ${problem}`);
  }
  const end = name === 'DOWNSTREAM_PEER_CERT_V_END';
  return (r) => {
    const c = tls(r)?.peer;
    if (c === undefined) return undefined;
    const ms = end ? c.validToMs : c.validFromMs;
    return format === '' ? defaultStartTime(ms) : formatTime(ms, format);
  };
}
