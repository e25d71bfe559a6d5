/**
 * undici connectors for TLS to upstreams: DestinationRule `SIMPLE` / `MUTUAL` origination and
 * Istio mutual TLS (`ISTIO_MUTUAL`, auto-mTLS). undici's own connector fixes the ALPN list
 * (`http/1.1`, `h2`) and checks the server's name only; this one sends the SNI and ALPN the plan
 * says (Istio's in-mesh list for mTLS: `istio-http/1.1`, `istio`, `http/1.1`, or `istio-h2`,
 * `istio`, `h2`), verifies what the plan says (the host name, the rule's `subjectAltNames`, the
 * destination's SPIFFE identities, or only the chain), and words every failure
 * ({@link TlsHandshakeError}).
 *
 * @module
 */
import { isIP } from 'node:net';
import { checkServerIdentity, connect, type ConnectionOptions, type PeerCertificate, type SecureContext, type TLSSocket } from 'node:tls';
import { errors } from 'undici';
import type { Clock } from '../../core/clock.ts';
import { ErrorRewritingHandler } from '../../core/error-rewriting-handler.ts';
import { certificateProblem, TlsHandshakeError, tlsFailureReason } from '../../core/tls-failure.ts';
import type { TcpKeepalive } from '../../routing/cluster-settings.ts';
import { validityProblem } from '../../security/identity/peer-validity.ts';
import { parseSpiffeUri, SPIFFE_PREFIX, uriSans } from '../../security/identity/spiffe.ts';
import { applyKeepalive } from '../keepalive.ts';
import { formatHostPort } from '../../core/host-port.ts';

/** What to check of the server's certificate once its chain verified. */
export type TlsVerify =
  /** `insecureSkipVerify`: nothing (not even the chain). */
  | { readonly kind: 'none' }
  /** The chain only (SIMPLE/MUTUAL with an explicit `sni` and no `subjectAltNames`, as Istio configures Envoy). */
  | { readonly kind: 'chain' }
  /** The certificate names this host (undefined: the host connected to). */
  | { readonly kind: 'hostname'; readonly hostname: string | undefined }
  /** One of the certificate's SANs (DNS, URI, IP, email) is one of these. */
  | { readonly kind: 'sans'; readonly sans: readonly string[] }
  /** The certificate's SPIFFE ID is one of the destination's identities (empty: any). */
  | { readonly kind: 'identity'; readonly identities: readonly string[]; readonly trustDomains: readonly string[] };

/** How connections of one pool are made. */
export interface TlsPlan {
  readonly mode: 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL';
  /** The SNI; undefined: the host connected to (never an IP address). */
  readonly servername: string | undefined;
  /** Trusted roots, client certificate and key, CRL. */
  readonly context: SecureContext;
  readonly verify: TlsVerify;
  readonly alpn: readonly string[];
  /** The cluster speaks HTTP/2: the negotiated connection is used as HTTP/2 unless the server chose `http/1.1`. */
  readonly h2: boolean;
  /** The roots in words, for errors (`the mesh's trust bundle`, `caCertificates /etc/ca.pem`). */
  readonly trust: string;
  /** Equal plans make equal connections (a pool is kept while its plan's key is unchanged). */
  readonly key: string;
  /**
   * ISTIO_MUTUAL: undefined when the plan's certificate may be presented, else the context of
   * the certificate that replaces an expired one (waiting up to `waitMs` for its renewal).
   */
  readonly renewed?: (waitMs: number) => Promise<SecureContext | undefined> | undefined;
}

/** Istio's ALPN for in-mesh mTLS (the istio.alpn filter's override), with the standard protocol last. */
export const ISTIO_ALPN_HTTP11: readonly string[] = Object.freeze(['istio-http/1.1', 'istio', 'http/1.1']);
/** Istio's ALPN for in-mesh mTLS to an HTTP/2 cluster. */
export const ISTIO_ALPN_H2: readonly string[] = Object.freeze(['istio-h2', 'istio', 'h2']);

/** Node's and the server's failures of a connection attempt, as a {@link TlsHandshakeError} (other errors as they are). */
function handshakeError(err: Error, plan: TlsPlan, host: string): Error {
  if (err instanceof TlsHandshakeError) return err;
  const code = String((err as { code?: unknown }).code ?? '');
  const v = certificateProblem(code, plan.trust);
  if (v !== undefined) return new TlsHandshakeError(v, err);
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return new TlsHandshakeError(`the server's certificate does not name ${host}: ${(err as { reason?: string }).reason ?? err.message}`, err);
  const alert = tlsFailureReason(err);
  if (alert !== undefined) return new TlsHandshakeError(alert, err);
  if (code === 'ECONNRESET' || code === 'EPIPE' || /socket disconnected before secure TLS connection/i.test(err.message)) {
    return new TlsHandshakeError(`the server closed the connection during the TLS handshake (${code === '' ? err.message : code})`, err);
  }
  return err;
}

/** `DNS:a, URI:b, IP Address:c` → values. */
function allSans(subjectaltname: string | undefined): string[] {
  if (subjectaltname === undefined || subjectaltname === '') return [];
  const out: string[] = [];
  const re = /(?:^|, )([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)/g;
  for (let m = re.exec(subjectaltname); m !== null; m = re.exec(subjectaltname)) {
    const v = m[2] as string;
    out.push(v.startsWith('"') ? (JSON.parse(v) as string) : v);
  }
  return out;
}

/** A certificate's DNS SAN `*.example.com` matches `api.example.com` (one label), as Envoy's DNS matcher does. */
function sanMatches(certSan: string, wanted: string): boolean {
  if (certSan === wanted) return true;
  if (!certSan.startsWith('*.')) return false;
  const dot = wanted.indexOf('.');
  return dot > 0 && wanted.slice(dot).toLowerCase() === certSan.slice(1).toLowerCase();
}

const list = (xs: readonly string[]): string => `[${xs.join(', ')}]`;

/** A DNS entry in Node's `subjectaltname` text (`DNS:a.example, URI:spiffe://…, IP Address:10.0.0.1`). */
const DNS_SAN = /(?:^|, )DNS:/;

/** Checks the server's certificate (its chain already verified) as the plan says; an error says why not. */
export function checkServer(plan: TlsPlan, host: string, cert: PeerCertificate): Error | undefined {
  const v = plan.verify;
  switch (v.kind) {
    case 'none':
    case 'chain':
      return undefined;
    case 'hostname': {
      const name = v.hostname ?? host;
      // Envoy's auto_san_validation matches SANs only (DefaultCertValidator::verifySubjectAltName: no
      // subjectAltName extension, no match); Node's check would fall back to the subject's CN.
      // A SAN extension with only URI or email entries (an Istio workload certificate) is no better:
      // Node would still read the CN, Envoy's auto SAN matcher is a DNS one.
      // For a name, a DNS entry (with only an IP entry Node would read the CN too); for an IP
      // address Node reads IP entries only.
      if (isIP(name) === 0 && !DNS_SAN.test(cert.subjectaltname ?? '')) return new TlsHandshakeError(`the server's certificate does not name ${name}: it has no DNS subjectAltName (a name only in the subject CN is not accepted, as Envoy does not)`);
      const err = checkServerIdentity(name, cert);
      return err === undefined ? undefined : new TlsHandshakeError(`the server's certificate does not name ${name}: ${(err as { reason?: string }).reason ?? err.message}`, err);
    }
    case 'sans': {
      const have = allSans(cert.subjectaltname);
      if (have.some((h) => v.sans.some((w) => sanMatches(h, w)))) return undefined;
      return new TlsHandshakeError(`the server's certificate names none of the subjectAltNames ${list(v.sans)} (it has ${have.length === 0 ? 'no SANs' : list(have)})`);
    }
    case 'identity': {
      // An X.509-SVID is never a CA certificate: its holder could sign any identity.
      if ((cert as { ca?: boolean }).ca === true) return new TlsHandshakeError("the server's certificate is a CA certificate (CA:TRUE), not a workload certificate");
      if (v.identities.length === 0) return undefined;
      const ids = uriSans(cert.subjectaltname).filter((u) => u.startsWith(SPIFFE_PREFIX));
      if (ids.some((id) => v.identities.includes(id))) return undefined;
      if (ids.length === 0) return new TlsHandshakeError(`the server's certificate has no SPIFFE identity (SANs: ${cert.subjectaltname || 'none'}); the destination's identities are ${list(v.identities)}`);
      const id = ids[0] as string;
      const td = parseSpiffeUri(id)?.trustDomain;
      const domain = td !== undefined && !v.trustDomains.includes(td) ? ` (trust domain ${td} is not ${v.trustDomains.join(' or ')})` : '';
      return new TlsHandshakeError(`server identity ${id} is not one of the destination's identities ${list(v.identities)}${domain}`);
    }
  }
}

/**
 * A resumed session skips verification (Node calls neither OpenSSL's checks nor
 * `checkServerIdentity` then): it was verified by the same plan when it was made, but the
 * server's certificate may have expired since. Undefined when the connection may be used.
 */
export function resumedSessionProblem(plan: Pick<TlsPlan, 'verify'>, socket: { isSessionReused(): boolean; getPeerCertificate(): PeerCertificate }, now: number): Error | undefined {
  if (plan.verify.kind === 'none' || !socket.isSessionReused()) return undefined;
  const outOfDate = validityProblem(socket.getPeerCertificate(), now);
  return outOfDate === undefined ? undefined : new TlsHandshakeError(`the server's ${outOfDate}`);
}

/** The connect options undici gives a connector. */
/** The SNI Envoy's auto_sni takes from a Host header: its host without the port; '' for an IP address (no SNI). */
export function sniOfAuthority(authority: string): string {
  const host = authority.startsWith('[') ? '' : authority.replace(/:\d*$/, '');
  return host === '' || isIP(host) !== 0 ? '' : host;
}

interface ConnectOptions {
  readonly hostname: string;
  /** undici's name for the connection: the request's `servername`, else derived from its Host header ('' for an IP address). */
  readonly servername?: string | null;
  readonly host?: string;
  readonly port: string | number;
  readonly localAddress?: string | null;
  readonly httpSocket?: unknown;
}

type Callback = (err: Error | null, socket: TLSSocket | null) => void;

/** Most sessions kept per connector (per host name) for resumption. */
const MAX_SESSIONS = 100;

/**
 * An undici `connect` function for one plan: TLS with the plan's SNI, ALPN, roots and
 * certificate; a verification failure, a refused handshake or a connect timeout fails the
 * attempt with the reason. Sessions are resumed per host name (a plan's certificate and checks
 * are fixed, so a resumed session is one this plan verified). `keepalive`: the cluster's
 * `tcpKeepalive` (without it, undici's: probes after 60 s idle). `name`: the DNS name the
 * endpoint's address was resolved from (STRICT_DNS), named and verified in place of the address
 * when neither the plan nor the request's Host gives a name. The connect timeout runs on the
 * mesh's `clock`, as every mesh timeout does.
 */
export function tlsConnector(
  plan: TlsPlan,
  connectTimeoutMs: number,
  clock: Clock,
  keepalive?: TcpKeepalive,
  name?: string,
): (opts: ConnectOptions, callback: Callback) => TLSSocket | undefined {
  const sessions = new Map<string, Buffer>();
  const open = connectOne(plan, { connectTimeoutMs, clock }, sessions, keepalive, name);
  return (opts, callback) => {
    // The workload certificate expired (the process was frozen past its renewal): wait for the
    // renewal, bounded by the connect timeout, rather than present it and be refused.
    const renewal = plan.renewed?.(connectTimeoutMs);
    if (renewal === undefined) return open(opts, callback, plan.context);
    void renewal.then((context) => open(opts, callback, context ?? plan.context));
    return undefined;
  };
}

/** Opens one connection of `plan` with `context` (the plan's, or a renewed certificate's: then no session of the old one is resumed). */
function connectOne(
  plan: TlsPlan,
  { connectTimeoutMs, clock }: { connectTimeoutMs: number; clock: Clock },
  sessions: Map<string, Buffer>,
  keepalive: TcpKeepalive | undefined,
  name: string | undefined,
): (opts: ConnectOptions, callback: Callback, context: SecureContext) => TLSSocket {
  return (opts, callback, context) => {
    const hostname = opts.hostname.startsWith('[') ? opts.hostname.slice(1, -1) : opts.hostname;
    const port = Number(opts.port) || 443;
    // The plan's SNI, else (auto_sni) the one undici derived from the request's Host header (none for an IP), else the host
    // connected to — for an address resolved from a DNS name (`name`), that name.
    const named = plan.servername ?? (opts.servername === undefined || opts.servername === null || opts.servername === '' ? undefined : opts.servername);
    const sni = named ?? name ?? (isIP(hostname) === 0 ? hostname : undefined);
    const sessionKey = `${sni ?? ''}|${hostname}:${port}`;
    let done = false;
    const socket = connect({
      host: hostname,
      port,
      servername: sni !== undefined && isIP(sni) === 0 ? sni : undefined,
      secureContext: context,
      ALPNProtocols: plan.alpn as string[],
      rejectUnauthorized: plan.verify.kind !== 'none',
      checkServerIdentity: (_host, cert) => checkServer(plan, sni ?? hostname, cert),
      session: context === plan.context ? sessions.get(sessionKey) : undefined,
      highWaterMark: 16384,
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    } as ConnectionOptions);
    socket.setNoDelay(true);
    // TCP keepalive: the DestinationRule's, else as undici sets it on its own connections.
    if (keepalive === undefined) socket.setKeepAlive(true, 60_000);
    else applyKeepalive(socket, keepalive);
    const finish = (err: Error | null): void => {
      if (done) return;
      done = true;
      timer.clear();
      if (err !== null) {
        socket.destroy();
        callback(err, null);
      } else callback(null, socket);
    };
    const timer = clock.setTimer(() => finish(new errors.ConnectTimeoutError(`Connect Timeout Error (attempted address: ${formatHostPort(hostname, port)}, timeout: ${connectTimeoutMs}ms)`)), connectTimeoutMs);
    socket.on('session', (s: Buffer) => {
      if (context !== plan.context) return;
      if (!sessions.has(sessionKey) && sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value as string);
      sessions.set(sessionKey, s);
    });
    socket.once('secureConnect', () => {
      const stale = resumedSessionProblem(plan, socket, Date.now());
      if (stale !== undefined) {
        sessions.delete(sessionKey);
        finish(stale);
        return;
      }
      // An HTTP/2 cluster speaks HTTP/2 over whatever in-mesh protocol was agreed (`istio-h2`, `istio`), as Envoy does.
      const alpn = socket.alpnProtocol;
      if (plan.h2 && alpn !== 'http/1.1') (socket as { alpnProtocol: string | false | null }).alpnProtocol = 'h2';
      else if (!plan.h2 && alpn !== false && alpn !== null && alpn !== 'http/1.1') (socket as { alpnProtocol: string | false | null }).alpnProtocol = 'http/1.1';
      finish(null);
    });
    socket.on('error', (err: Error) => finish(handshakeError(err, plan, sni ?? hostname)));
    return socket;
  };
}

/**
 * A TLS 1.3 server checks the client's certificate after the client considers the handshake
 * done, and a server that refuses it may just close the connection (Node's `requestCert` +
 * `rejectUnauthorized` does, without an alert): the client's first request then fails with
 * "other side closed" having read nothing at all. For connections that present a certificate,
 * that failure is reported as the TLS refusal it almost certainly is — but, as the request had
 * been sent, it is retried only as a connection termination is (the server may have read it).
 */
export class CertificateRefusalHandler extends ErrorRewritingHandler {
  protected rewrite(error: Error): Error {
    const e = error as { code?: string; socket?: { bytesRead?: number } };
    const refused = e.code === 'UND_ERR_SOCKET' && e.socket?.bytesRead === 0;
    // The request was sent: the server may have read it (and died), so this is not retried as a connect failure.
    return refused ? new TlsHandshakeError("the server closed the connection right after the TLS handshake without answering: it refused this workload's certificate (check that it trusts this workload's CA and identity)", error, true) : error;
  }
}
