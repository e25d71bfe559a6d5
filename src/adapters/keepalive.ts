/**
 * TCP keepalive on the sockets the mesh opens, as a DestinationRule's `tcp.tcpKeepalive` asks
 * (Envoy's `upstream_connection_options.tcp_keepalive`): probes start after `time` idle, every
 * `interval`, and the connection is dropped after `probes` unanswered ones. Node sets the
 * interval and count from v24.19 (`socket.setKeepAlive(enable, delay, interval, count)`); an
 * older Node ignores them (the validator says so).
 *
 * @module
 */
import { Socket } from 'node:net';
import { buildConnector } from 'undici';
import type { TcpKeepalive } from '../routing/cluster-settings.ts';

/** True when this Node sets a socket's keepalive interval and probe count (v24.19 and later). */
export const KEEPALIVE_PROBES_SETTABLE = Socket.prototype.setKeepAlive.length >= 4;

/** Turns keepalive on with the rule's values; an unset time leaves the operating system's idle time, an unset interval or count Node's (1 s, 10). */
export function applyKeepalive(socket: Socket, k: TcpKeepalive): void {
  socket.setKeepAlive(true, k.timeMs ?? 0, k.intervalMs, k.probes);
}

/**
 * An undici connector (undici's own: plaintext, prior-knowledge HTTP/2 when `h2`, or TLS with
 * `servername` for an `https:` origin) whose sockets get the rule's keepalive: undici's connector
 * sets only the idle time, so the interval and count are set on the socket it made.
 */
export function keepaliveConnector(connectTimeoutMs: number, h2: boolean, k: TcpKeepalive, servername?: string): buildConnector.connector {
  const base = buildConnector({ allowH2: h2, useH2c: h2, timeout: connectTimeoutMs, keepAlive: true, keepAliveInitialDelay: k.timeMs ?? 0, ...(servername === undefined ? {} : { servername }) } as buildConnector.BuildOptions);
  return (opts, callback) =>
    base(opts, (...args) => {
      const socket = args[1];
      if (socket !== null && socket !== undefined) applyKeepalive(socket as Socket, k);
      callback(...args);
    });
}
