/**
 * A warning when the app calls a mesh service with node:http — axios's default adapter, `got`,
 * `node-fetch`, `http.request` — rather than through the mesh: behind a sidecar such a call was
 * captured by iptables and got the service's routing, retries, mTLS and policies; in-process it
 * silently gets none of them. Nothing is patched: node:http publishes each request it starts on
 * its `http.client.request.start` diagnostics channel, and the mesh listens there.
 *
 * Said once per authority (`reviews:9080`), when the host the request connects to is a virtual
 * host of the mesh's route table at that moment; a host that is not is remembered until the route
 * table changes, so the cost is a Set lookup or two per node:http request.
 *
 * @module
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';
import type { RouteTable } from '../routing/route-table.ts';

const CHANNEL = 'http.client.request.start';

/** Authorities remembered per set (warned about; looked up and not a service): beyond it, a miss is looked up again each time. */
const MAX_AUTHORITIES = 1024;

/**
 * The User-Agent of the OpenTelemetry SDK's OTLP/HTTP exporters (`@opentelemetry/otlp-exporter-base`'s
 * node:http transport, http-transport-utils: `OTel-OTLP-Exporter-JavaScript/<version>`, after the
 * exporter's own `userAgent` option when one is given).
 */
const OTLP_USER_AGENT = 'OTel-OTLP-Exporter-JavaScript/';

/**
 * Whether a request is an OTLP export of the OpenTelemetry SDK (http/protobuf, http/json): the
 * telemetry pipeline docs/telemetry.md sets up, not a call of the app's — a collector that is a
 * mesh service is not reported for it (the app's own node:http calls there still are).
 */
function isOtlpExporter(request: ClientRequest): boolean {
  const ua = request.getHeader('user-agent');
  return typeof ua === 'string' && ua.includes(OTLP_USER_AGENT);
}

/** Starts watching node:http's outbound requests; returns the function that stops it. */
export function watchNodeHttpBypass(routes: () => RouteTable, warn: (message: string) => void): () => void {
  // Authorities warned about (once each), and those that named no service of the route table
  // they were looked up in — forgotten when the table changes, so a service that joins the mesh
  // later (a reload, the control plane's first config) is still noticed.
  const warned = new Set<string>();
  const misses = new Set<string>();
  let table: RouteTable | undefined;
  const onStart = (message: unknown): void => {
    const request = (message as { request?: ClientRequest } | undefined)?.request;
    if (request === undefined) return;
    // The host the request connects to — as a sidecar captures by destination, never by a Host
    // header naming another (a test's request to 127.0.0.1 with `Host: reviews`) —, with the port
    // of the Host header node:http wrote for it (ClientRequest has no port of its own).
    const host = request.host;
    const h = request.getHeader('host');
    const authority = typeof h === 'string' && (h === host || h.startsWith(`${host}:`)) ? h : host;
    if (typeof authority !== 'string' || warned.has(authority)) return;
    const current = routes();
    if (current !== table) {
      table = current;
      misses.clear();
    }
    if (misses.has(authority)) return;
    const vhost = current.virtualHost(authority, request.protocol === 'https:' ? 'https' : 'http');
    if (vhost === undefined) {
      if (misses.size < MAX_AUTHORITIES) misses.add(authority);
      return;
    }
    if (warned.size >= MAX_AUTHORITIES || isOtlpExporter(request)) return;
    warned.add(authority);
    warn(
      `meshlet: an outbound request to ${authority} was made with node:http (axios's default adapter, got, node-fetch and http.request use it), which does not go through the mesh: ${vhost.name} is a service of the mesh, and this call gets none of its routing, retries, timeouts, outlier detection, mTLS or telemetry (behind an Istio sidecar it would have). Send it through the mesh: mesh.fetch, fetch or undici with { dispatcher: mesh.dispatcher }, axios (≥ 1.7) with { adapter: 'fetch', fetchOptions: { dispatcher: mesh.dispatcher } } — see docs/outbound.md, "Which HTTP clients go through the mesh". Said once per host`,
    );
  };
  subscribe(CHANNEL, onStart);
  return () => unsubscribe(CHANNEL, onStart);
}
