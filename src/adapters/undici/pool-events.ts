/**
 * A cluster pool's connection events (undici's `connect`, `connectionError`, `disconnect`) on
 * `meshlet:upstream:connection`, while someone subscribes (the admin endpoint's `/stats`:
 * `upstream_cx_total`, `upstream_cx_connect_timeout`, `upstream_cx_destroy*`). Listening costs a
 * check per connection event, nothing per request.
 *
 * @module
 */
import type { EventEmitter } from 'node:events';
import { upstreamConnectionChannel as ch, type UpstreamConnectionMessage } from '../../core/observe-connections.ts';

/** Errors of a connection the upstream closed or reset (undici's `other side closed`, a reset). */
const REMOTE = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);

/** `pool`, its connection events published for cluster `cs` (its `name`). */
export function observedPool<T extends EventEmitter>(pool: T, cs: { readonly name: string }): T {
  const cluster = cs.name;
  pool.on('connect', () => {
    if (ch.hasSubscribers) ch.publish({ cluster, owner: cs, event: 'connect', timeout: false, remote: false } satisfies UpstreamConnectionMessage);
  });
  pool.on('connectionError', (_o: unknown, _t: unknown, err: { code?: string } | undefined) => {
    if (ch.hasSubscribers) ch.publish({ cluster, owner: cs, event: 'error', timeout: err?.code === 'UND_ERR_CONNECT_TIMEOUT', remote: false } satisfies UpstreamConnectionMessage);
  });
  pool.on('disconnect', (_o: unknown, _t: unknown, err: { code?: string } | undefined) => {
    if (ch.hasSubscribers) ch.publish({ cluster, owner: cs, event: 'disconnect', timeout: false, remote: err?.code !== undefined && REMOTE.has(err.code) } satisfies UpstreamConnectionMessage);
  });
  return pool;
}
