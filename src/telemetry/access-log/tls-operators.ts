/**
 * The access-log operators of a request's TLS connections, as Envoy's
 * `source/common/formatter/stream_info_formatter.cc` defines them
 * (`StreamInfoSslConnectionInfoFormatterProvider`, `StreamInfoUpstreamSslConnectionInfoFormatterProvider`):
 * undefined (`-`, JSON `null`) for a plaintext connection and for an empty value (a certificate
 * without a subject, a peer that sent none), the SAN lists joined with `,`. `DOWNSTREAM_…`: the
 * connection the server adapters hand on (server side; the client side's downstream is the app's
 * own in-process call); `UPSTREAM_…`: the connection a call's answer came on (client side; the
 * server side's upstream is the app, called in-process).
 *
 * @module
 */
import type { RequestRecord } from '../record.ts';
import { checkTimeFormat, defaultStartTime, formatTime } from './time-format.ts';
import { type CertDetails, type TlsDetails, tlsDetailsOf } from './tls-details.ts';

type Value = string | number | undefined;
type TlsOperator = (r: RequestRecord) => Value;

/** The downstream connection's (server side) or the upstream connection's (client side) TLS details. */
const downstream = (r: RequestRecord): TlsDetails | undefined => (r.side === 'server' ? tlsDetailsOf(r.connection) : undefined);
const upstream = (r: RequestRecord): TlsDetails | undefined => (r.side === 'client' ? tlsDetailsOf(r.upstreamConnection) : undefined);
const nonEmpty = (v: string | undefined): Value => (v === undefined || v === '' ? undefined : v);
type Of = (r: RequestRecord) => TlsDetails | undefined;
const conn =
  (of: Of, f: (t: TlsDetails) => string | undefined): TlsOperator =>
  (r) => {
    const t = of(r);
    return t === undefined ? undefined : nonEmpty(f(t));
  };
const cert =
  (of: Of, which: 'peer' | 'local', f: (c: CertDetails) => string): TlsOperator =>
  (r) => {
    const c = of(r)?.[which];
    return c === undefined ? undefined : nonEmpty(f(c));
  };

/** The operators of one side's connection, named `<PREFIX>_…`. */
function connectionOperators(prefix: 'DOWNSTREAM' | 'UPSTREAM', of: Of): Record<string, TlsOperator> {
  const out: Record<string, TlsOperator> = {
    [`${prefix}_TLS_VERSION`]: conn(of, (t) => t.version),
    [`${prefix}_TLS_CIPHER`]: conn(of, (t) => t.cipher),
    [`${prefix}_TLS_SESSION_ID`]: conn(of, (t) => t.sessionId),
    [`${prefix}_PEER_SUBJECT`]: cert(of, 'peer', (c) => c.subject),
    [`${prefix}_PEER_ISSUER`]: cert(of, 'peer', (c) => c.issuer),
    [`${prefix}_PEER_CERT`]: cert(of, 'peer', (c) => c.pemUrlEncoded()),
    [`${prefix}_PEER_URI_SAN`]: cert(of, 'peer', (c) => c.uriSans.join(',')),
    [`${prefix}_PEER_DNS_SAN`]: cert(of, 'peer', (c) => c.dnsSans.join(',')),
    [`${prefix}_PEER_IP_SAN`]: cert(of, 'peer', (c) => c.ipSans.join(',')),
    [`${prefix}_LOCAL_URI_SAN`]: cert(of, 'local', (c) => c.uriSans.join(',')),
    [`${prefix}_LOCAL_DNS_SAN`]: cert(of, 'local', (c) => c.dnsSans.join(',')),
    [`${prefix}_LOCAL_IP_SAN`]: cert(of, 'local', (c) => c.ipSans.join(',')),
  };
  return out;
}

const peerUriSan = cert(downstream, 'peer', (c) => c.uriSans.join(','));

/** The connections' TLS operators without arguments (Envoy has the `DOWNSTREAM_` ones the `UPSTREAM_` side lacks: subject of the local certificate, fingerprints, serial, e-mail SANs). */
export const TLS_OPERATORS: Readonly<Record<string, TlsOperator>> = Object.assign(Object.create(null), {
  ...connectionOperators('DOWNSTREAM', downstream),
  ...connectionOperators('UPSTREAM', upstream),
  DOWNSTREAM_PEER_FINGERPRINT_256: cert(downstream, 'peer', (c) => c.fingerprint256),
  DOWNSTREAM_PEER_FINGERPRINT_1: cert(downstream, 'peer', (c) => c.fingerprint1),
  DOWNSTREAM_PEER_SERIAL: cert(downstream, 'peer', (c) => c.serial),
  DOWNSTREAM_PEER_EMAIL_SAN: cert(downstream, 'peer', (c) => c.emailSans.join(',')),
  DOWNSTREAM_LOCAL_EMAIL_SAN: cert(downstream, 'local', (c) => c.emailSans.join(',')),
  DOWNSTREAM_LOCAL_SUBJECT: cert(downstream, 'local', (c) => c.subject),
  // The verified SPIFFE ID when the connection is not at hand (a gRPC server bound with `bindAsync`: grpc-js holds the connection).
  DOWNSTREAM_PEER_URI_SAN: (r: RequestRecord) => (r.side === 'server' && tlsDetailsOf(r.connection) === undefined ? r.peerPrincipal : peerUriSan(r)),
});

/**
 * `%DOWNSTREAM_PEER_CERT_V_START(format)%`, `…_V_END`, `%UPSTREAM_PEER_CERT_V_START(format)%`, `…_V_END`: the peer certificate's validity,
 * formatted as `%START_TIME%` is (Envoy's `SystemTimeFormatter`). Returns undefined for other names;
 * throws with the problem of a bad format.
 */
export function certTimeOperator(name: string, arg: string | undefined): TlsOperator | undefined {
  const m = /^(DOWNSTREAM|UPSTREAM)_PEER_CERT_V_(START|END)$/.exec(name);
  if (m === null) return undefined;
  const of = m[1] === 'DOWNSTREAM' ? downstream : upstream;
  const format = arg ?? '';
  if (format !== '') {
    const problem = checkTimeFormat(format);
    if (problem !== undefined) throw new Error(`%${name}(${format})%: ${problem}`);
  }
  const end = m[2] === 'END';
  return (r) => {
    const c = of(r)?.peer;
    if (c === undefined) return undefined;
    const ms = end ? c.validToMs : c.validFromMs;
    return format === '' ? defaultStartTime(ms) : formatTime(ms, format);
  };
}
