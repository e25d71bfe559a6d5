/**
 * Connections of the app's own server (`mesh.express()`, `mesh.fastify()`, `mesh.handler()` on a
 * server the mesh did not make) on `meshlet:inbound:connection`, for the admin endpoint's `/stats`:
 * the mesh sees such a connection only through its requests, so it is counted (`served`, over TLS
 * or not) at its first request while `/stats` listens, and `served-close` when it closes — Envoy's
 * `http.<prefix>;.downstream_cx_total`, `downstream_cx_active`, `downstream_cx_ssl_*`. The listener's
 * stats (`listener.*`, `ssl.handshake` …) stay the mesh servers' own: a connection that never sent
 * a request, or a handshake that failed, never reaches the mesh here.
 *
 * @module
 */
import type { Socket } from 'node:net';
import { inboundConnectionChannel as ch, type InboundConnectionMessage } from '../../core/observe-connections.ts';
import type { WorkloadIdentity } from '../../core/observe.ts';

/** Connections already counted, per workload (one app server may serve several meshes' handlers). */
const counted = new WeakMap<WorkloadIdentity, WeakSet<object>>();

/** Counts `socket` for `workload` if it is not yet (call only while {@link ch} has subscribers). */
export function countOwnServerConnection(socket: Socket, workload: WorkloadIdentity): void {
  let seen = counted.get(workload);
  if (seen === undefined) {
    seen = new WeakSet();
    counted.set(workload, seen);
  }
  if (seen.has(socket)) return;
  seen.add(socket);
  const localPort = socket.localPort ?? 0;
  const tls = (socket as { encrypted?: boolean }).encrypted === true;
  ch.publish({ workload, localPort, event: 'served', tls, noCertificate: false } satisfies InboundConnectionMessage);
  socket.once('close', () => {
    if (ch.hasSubscribers) ch.publish({ workload, localPort, event: 'served-close', tls, noCertificate: false } satisfies InboundConnectionMessage);
  });
}
