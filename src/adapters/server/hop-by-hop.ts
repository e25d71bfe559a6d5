/**
 * Hop-by-hop headers on the server side, as Envoy's inbound connection manager treats them
 * between the caller and the app (`ConnectionManagerUtility::mutateRequestHeaders` and
 * `mutateResponseHeaders`), with the one list of them (core/hop-by-hop.ts):
 *
 * - a request reaches the app without `connection`, `keep-alive`, `proxy-connection` and
 *   `upgrade`, and with `te` cut down to `trailers` (gone when it does not offer them) — unless
 *   it asks for an upgrade, whose `connection` and `upgrade` Envoy forwards as they are;
 * - the app's response goes out without the `connection`, `keep-alive`, `proxy-connection`,
 *   `transfer-encoding` and `upgrade` the app set (a 101 keeps its `connection` and `upgrade`).
 *   node:http frames it on its own then, as Envoy's codec does: `content-length` or chunked, and
 *   its own `connection`/`keep-alive` for the caller's connection — an app's `connection: close`
 *   closed only the sidecar's connection to the app, never the caller's.
 *
 * Node's parser has acted on the request's own (keep-alive, the body's framing) before the mesh
 * runs. Telemetry reads what is left: access logs, /tap and `request_bytes` never see them.
 *
 * @module
 */
import type { IncomingMessage } from 'node:http';
import { isHopByHopName, REQUEST_HOP_BY_HOP, removeHopByHop } from '../../core/hop-by-hop.ts';

/** Takes the hop-by-hop headers off an HTTP/1 request before anyone reads it (HTTP/2 carries none but `te: trailers`). */
export function stripRequestHopByHop(req: IncomingMessage): void {
  if (req.httpVersionMajor !== 1) return;
  const raw = req.rawHeaders;
  let te = false;
  let hop = false;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i] as string;
    if (n.length === 2 && n.toLowerCase() === 'te') te = true;
    else if (!hop && isHopByHopName(n, REQUEST_HOP_BY_HOP)) hop = true;
  }
  if (!hop && !te) return;
  const h = req.headers;
  // An upgrade (Connection names it, Upgrade says to what): Envoy forwards both as they are, and leaves `te` alone.
  if (h.upgrade !== undefined && typeof h.connection === 'string' && /(^|,)\s*upgrade\s*(,|$)/i.test(h.connection)) return;
  const headers = removeHopByHop(h as Record<string, unknown>, raw, REQUEST_HOP_BY_HOP);
  if (te) {
    // `te: trailers` survives (gRPC servers insist on it), any other transfer coding offered goes.
    const offered = typeof h.te === 'string' && h.te.split(',').some((c) => (c.split(';')[0] as string).trim().toLowerCase() === 'trailers');
    if (offered) headers.te = 'trailers';
    else delete headers.te;
    let w = 0;
    for (let r = 0; r + 1 < raw.length; r += 2) {
      const n = raw[r] as string;
      if (n.length === 2 && n.toLowerCase() === 'te') continue;
      raw[w++] = n;
      raw[w++] = raw[r + 1] as string;
    }
    raw.length = w;
    if (offered) raw.push('te', 'trailers');
  }
  (req as { headers: unknown }).headers = headers;
}
