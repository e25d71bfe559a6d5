/**
 * TCP keepalive on the sockets the mesh opens, as a DestinationRule's `tcp.tcpKeepalive` asks
 * (Envoy's `upstream_connection_options.tcp_keepalive`): probes start after `time` idle, every
 * `interval`, and the connection is dropped after `probes` unanswered ones. Node sets the
 * interval and count from v24.19 (`socket.setKeepAlive(enable, delay, interval, count)`); an
 * older Node ignores them (the validator says so).
 *
 * @module
 */
import type { Socket } from 'node:net';
import { buildConnector } from 'undici';
import { OS_KEEPALIVE } from '../core/tcp-keepalive.ts';
import type { TcpKeepalive } from '../routing/cluster-settings.ts';

/** Turns keepalive on with the rule's values, the operating system's for those it does not set (as Envoy sets only the fields given). */
export function applyKeepalive(socket: Socket, k: TcpKeepalive): void {
  socket.setKeepAlive(true, k.timeMs ?? OS_KEEPALIVE.timeMs, k.intervalMs ?? OS_KEEPALIVE.intervalMs, k.probes ?? OS_KEEPALIVE.probes);
}

/**
 * An undici connector (undici's own: plaintext, prior-knowledge HTTP/2 when `h2`, or TLS with
 * `servername` for an `https:` origin; `h2` undefined: undici's defaults, HTTP/2 offered over TLS
 * only) whose sockets get the rule's keepalive: undici's connector
 * sets only the idle time, so the interval and count are set on the socket it made.
 */
export function keepaliveConnector(connectTimeoutMs: number, h2: boolean | undefined, k: TcpKeepalive, servername?: string): buildConnector.connector {
  const base = buildConnector({ ...(h2 === undefined ? {} : { allowH2: h2, useH2c: h2 }), timeout: connectTimeoutMs, keepAlive: true, keepAliveInitialDelay: k.timeMs ?? OS_KEEPALIVE.timeMs, ...(servername === undefined ? {} : { servername }) } as buildConnector.BuildOptions);
  return (opts, callback) =>
    base(opts, (...args) => {
      const socket = args[1];
      if (socket !== null && socket !== undefined) applyKeepalive(socket as Socket, k);
      callback(...args);
    });
}
