/**
 * Failed TLS handshakes on the control plane's TLS port, handled as Go's net/http (istiod's
 * server) handles them: a plaintext HTTP request gets `400 Bad Request` with "Client sent an HTTP
 * request to an HTTPS server." (so `curl http://…` says what is wrong instead of hanging up), and
 * every failure is logged — which peer, and OpenSSL's reason — at most once a minute per peer
 * address and reason, so a scanner or a misconfigured client cannot flood the log.
 *
 * @module
 */
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Clock } from '../core/clock.ts';
import { formatHostPort } from '../core/host-port.ts';
import type { ServerLogger } from './logger.ts';

/** Go net/http's answer to plaintext HTTP on a TLS port (`server.go`, `tlsRecordHeaderLooksLikeHTTP`). */
export const HTTP_TO_HTTPS_ANSWER = 'HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n';

/** One line per peer address and reason per this long. */
export const HANDSHAKE_LOG_WINDOW_MS = 60_000;

/** Most (address, reason) pairs remembered in a window; past it, further failures are counted and summed up in the next line logged. */
const MAX_KEYS = 1024;

/** What a reason means for the operator, when meshlet can tell. */
function hint(code: string | undefined, rootCert: string): string {
  switch (code) {
    case 'ERR_SSL_HTTP_REQUEST':
      return ' (answered 400: use https://)';
    case 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA':
    case 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE':
    case 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN':
      return `: the client does not trust this server's certificate (give it ${rootCert}, or the CA of --tls-cert: --control-plane-ca, curl --cacert)`;
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'ERR_SSL_PACKET_LENGTH_TOO_LONG':
      return ': the client did not speak TLS';
    case 'ECONNRESET':
      return ': the client went away during the handshake';
    default:
      return '';
  }
}

/**
 * Watches `server`'s failed handshakes: answers plaintext HTTP as Go does and logs each failure
 * (rate-limited on `clock`); `rootCert` is the trust bundle's path, named to a client that does not
 * trust the certificate. Returns how many failures were not logged (for tests).
 */
export function watchHandshakes(server: HttpsServer, clock: Clock, logger: ServerLogger, rootCert = 'root-cert.pem of the data dir'): { readonly suppressed: () => number } {
  /** When each (address, reason) was last logged, on `clock`. */
  const logged = new Map<string, number>();
  let suppressed = 0;
  let unsaid = 0;
  // The peer, read when it connected: a socket the client already closed no longer knows it.
  const peers = new WeakMap<Socket, { readonly address: string | undefined; readonly port: number | undefined }>();
  server.on('connection', (s: Socket) => {
    peers.set(s, { address: s.remoteAddress, port: s.remotePort });
  });
  server.on('tlsClientError', (err: NodeJS.ErrnoException & { reason?: string }, socket: TLSSocket) => {
    // The TCP socket under the TLS one (Node keeps it as `_parent`): the plaintext answer is written there, in the clear.
    const raw = (socket as TLSSocket & { _parent?: Socket })._parent;
    const peer0 = raw === undefined ? undefined : peers.get(raw);
    const address = peer0?.address ?? raw?.remoteAddress ?? socket.remoteAddress ?? 'unknown';
    const port = peer0?.port ?? raw?.remotePort ?? socket.remotePort;
    const code = err.code;
    if (code === 'ERR_SSL_HTTP_REQUEST' && raw !== undefined && raw.writable) raw.end(HTTP_TO_HTTPS_ANSWER);
    else socket.destroy();
    const reason = err.reason ?? code ?? err.message;
    const now = clock.now();
    const key = `${address}|${reason}`;
    const last = logged.get(key);
    if (last !== undefined && now - last < HANDSHAKE_LOG_WINDOW_MS) {
      suppressed++;
      unsaid++;
      return;
    }
    if (logged.size >= MAX_KEYS) {
      for (const [k, t] of logged) if (now - t >= HANDSHAKE_LOG_WINDOW_MS) logged.delete(k);
      if (logged.size >= MAX_KEYS) {
        suppressed++;
        unsaid++;
        return;
      }
    }
    logged.set(key, now);
    const more = unsaid === 0 ? '' : ` (${unsaid} other failed handshake${unsaid === 1 ? '' : 's'} not logged since the last line: at most one line per client address and reason per ${HANDSHAKE_LOG_WINDOW_MS / 1000} s)`;
    unsaid = 0;
    const peer = formatHostPort(address, port ?? '');
    logger.warn(`TLS handshake error from ${peer}: ${reason}${code !== undefined && code !== reason ? ` (${code})` : ''}${hint(code, rootCert)}${more}`);
  });
  return { suppressed: () => suppressed };
}
