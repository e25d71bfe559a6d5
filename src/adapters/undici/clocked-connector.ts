/**
 * An undici connector whose TLS connects time out on the mesh clock, as the TLS connector's do
 * (tls-connector.ts): undici's own connector (plaintext, prior-knowledge HTTP/2, or TLS to an
 * `https:` origin — the app's own TLS), and for an `https:` origin its own timer off and the
 * connect failed with undici's `ConnectTimeoutError` when TCP and the handshake are not done
 * within `timeoutMs` — the failure the mesh reports as 503 `UF`, `reset reason: connection
 * timeout`. A plaintext connect keeps undici's own timer with the same `timeoutMs` (in real time,
 * as every plaintext HTTP connect of the mesh: it arms no timer on the mesh clock).
 *
 * @module
 */
import { buildConnector, errors } from 'undici';
import type { Clock } from '../../core/clock.ts';
import { formatHostPort } from '../../core/host-port.ts';
import type { TcpKeepalive } from '../../routing/cluster-settings.ts';
import { keepaliveConnector } from '../keepalive.ts';

/**
 * undici's connector for a cluster (`h2`: HTTP/2 — true: prior knowledge over plaintext, false:
 * HTTP/1.1 only, undefined: undici's default, HTTP/2 offered over TLS only; `keepalive`: the
 * DestinationRule's `tcp.tcpKeepalive`; `servername`: the SNI of an `https:` origin, else the one
 * undici derives from the Host header) with its connect timeout, `timeoutMs`: on `clock` for TLS.
 */
export function clockedConnector(timeoutMs: number, clock: Clock, h2: boolean | undefined, keepalive: TcpKeepalive | undefined, servername?: string): buildConnector.connector {
  const build = (timeout: number): buildConnector.connector =>
    keepalive !== undefined
      ? keepaliveConnector(timeout, h2, keepalive, servername)
      : buildConnector({ ...(h2 === undefined ? {} : { allowH2: h2, useH2c: h2 }), timeout, ...(servername === undefined ? {} : { servername }) } as buildConnector.BuildOptions);
  const plain = build(timeoutMs);
  // timeout 0: undici sets no timer of its own.
  const tls = build(0);
  return (opts, callback) => {
    if (opts.protocol !== 'https:') return plain(opts, callback);
    let done = false;
    let timer: { clear(): void } | undefined;
    const finish: buildConnector.Callback = (...args) => {
      if (done) return;
      done = true;
      timer?.clear();
      callback(...args);
    };
    // undici's connector returns the socket it opens (its type says void).
    const socket = tls(opts, finish) as unknown as { destroy(): void } | undefined;
    if (!done) {
      timer = clock.setTimer(() => {
        const host = opts.hostname.startsWith('[') ? opts.hostname.slice(1, -1) : opts.hostname;
        finish(new errors.ConnectTimeoutError(`Connect Timeout Error (attempted address: ${formatHostPort(host, Number(opts.port) || 443)}, timeout: ${timeoutMs}ms)`), null);
        socket?.destroy();
      }, timeoutMs);
    }
    return socket;
  };
}
