/**
 * A warning when the app calls a mesh service with node:http — axios's default adapter, `got`,
 * `node-fetch`, `http.request` — rather than through the mesh: behind a sidecar such a call was
 * captured by iptables and got the service's routing, retries, mTLS and policies; in-process it
 * silently gets none of them. Nothing is patched: node:http publishes each request it starts on
 * its `http.client.request.start` diagnostics channel, and the mesh listens there.
 *
 * Said once per authority (`reviews:9080`), when the host the request connects to is a virtual
 * host of the mesh's route table at that moment; other hosts are looked at once each too (up to
 * {@link MAX_AUTHORITIES}), so the cost is one Set lookup per node:http request.
 *
 * @module
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';
import type { RouteTable } from '../routing/route-table.ts';

const CHANNEL = 'http.client.request.start';

/** Authorities looked at, at most: an app calling ever new hosts stops being watched after this many. */
const MAX_AUTHORITIES = 1024;

/** Starts watching node:http's outbound requests; returns the function that stops it. */
export function watchNodeHttpBypass(routes: () => RouteTable, warn: (message: string) => void): () => void {
  const seen = new Set<string>();
  const onStart = (message: unknown): void => {
    const request = (message as { request?: ClientRequest } | undefined)?.request;
    if (request === undefined || seen.size >= MAX_AUTHORITIES) return;
    // The host the request connects to — as a sidecar captures by destination, never by a Host
    // header naming another (a test's request to 127.0.0.1 with `Host: reviews`) —, with the port
    // of the Host header node:http wrote for it (ClientRequest has no port of its own).
    const host = request.host;
    const h = request.getHeader('host');
    const authority = typeof h === 'string' && (h === host || h.startsWith(`${host}:`)) ? h : host;
    if (typeof authority !== 'string' || seen.has(authority)) return;
    seen.add(authority);
    const vhost = routes().virtualHost(authority, request.protocol === 'https:' ? 'https' : 'http');
    if (vhost === undefined) return;
    warn(
      `meshlet: an outbound request to ${authority} was made with node:http (axios's default adapter, got, node-fetch and http.request use it), which does not go through the mesh: ${vhost.name} is a service of the mesh, and this call gets none of its routing, retries, timeouts, outlier detection, mTLS or telemetry (behind an Istio sidecar it would have). Send it through the mesh: mesh.fetch, fetch or undici with { dispatcher: mesh.dispatcher }, axios (≥ 1.7) with { adapter: 'fetch', fetchOptions: { dispatcher: mesh.dispatcher } } — see docs/outbound.md, "Which HTTP clients go through the mesh". Said once per host`,
    );
  };
  subscribe(CHANNEL, onStart);
  return () => unsubscribe(CHANNEL, onStart);
}
