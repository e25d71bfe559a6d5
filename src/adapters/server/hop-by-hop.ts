/**
 * Hop-by-hop headers on the server side, as Envoy's inbound connection manager treats them
 * between the caller and the app (`ConnectionManagerUtility::mutateRequestHeaders` and
 * `mutateResponseHeaders`), with the one list of them (core/hop-by-hop.ts):
 *
 * - a request reaches the app without `connection`, `keep-alive`, `proxy-connection` and
 *   `upgrade`, and with `te` cut down to `trailers` (gone when it does not offer them) — unless
 *   it asks for an upgrade, whose `connection`, `upgrade` and `te` Envoy forwards as they are
 *   (its `keep-alive` and `proxy-connection` still go);
 * - the app's response goes out without the `connection`, `keep-alive`, `proxy-connection`,
 *   `transfer-encoding` and `upgrade` the app set (a 101 keeps its `connection` and `upgrade`).
 *   node:http frames it on its own then, as Envoy's codec does: `content-length` or chunked, and
 *   its own `connection`/`keep-alive` for the caller's connection — an app's `connection: close`
 *   closed only the sidecar's connection to the app, never the caller's.
 *
 * Node's parser has acted on the request's own (keep-alive, the body's framing) before the mesh
 * runs. Telemetry reads what is left: access logs, /tap and `request_bytes` never see them.
 *
 * A request's `rawHeaders` lose them first, before anyone reads them (the phases' view is built
 * from them); its `req.headers` object may lose them later ({@link stripRequestHopByHop}'s
 * `later`), just before the app is handed the request: most requests the phases change have it
 * rebuilt from the view then (a consumed token), and a copy made before would be thrown away.
 *
 * @module
 */
import type { IncomingMessage } from 'node:http';
import { isHopByHopName, REQUEST_HOP_BY_HOP, removeHopByHop } from '../../core/hop-by-hop.ts';
import { rawHeadersChanged } from './raw-count.ts';

/** What leaves a request: the hop-by-hop headers and `te` (put back as `trailers` when it offers them). */
const REQUEST_AND_TE: readonly string[] = [...REQUEST_HOP_BY_HOP, 'te'];

/** What leaves an upgrade request (Envoy's mutateRequestHeaders keeps an upgrade's `connection` and `upgrade`, and its `te`). */
const UPGRADE_REQUEST: readonly string[] = REQUEST_HOP_BY_HOP.filter((n) => n !== 'connection' && n !== 'upgrade');

/**
 * Takes the hop-by-hop headers off an HTTP/1 request before anyone reads it (HTTP/2 carries none
 * but `te: trailers`): off `rawHeaders`, and off `req.headers` unless `later` — the adapter then
 * calls {@link finishRequestHopByHop} (or gives the request headers rebuilt from its view) before
 * the app, or anyone but the phases' view, reads them.
 */
export function stripRequestHopByHop(req: IncomingMessage, later = false): void {
  if (req.httpVersionMajor !== 1) return;
  const raw = req.rawHeaders;
  let found = false;
  for (let i = 0; i < raw.length && !found; i += 2) found = isHopByHopName(raw[i], REQUEST_AND_TE);
  if (!found) return;
  const h = req.headers;
  const upgrade = isUpgrade(h);
  const names = upgrade ? UPGRADE_REQUEST : REQUEST_AND_TE;
  let w = 0;
  for (let r = 0; r + 1 < raw.length; r += 2) {
    if (isHopByHopName(raw[r], names)) continue;
    raw[w++] = raw[r] as string;
    raw[w++] = raw[r + 1] as string;
  }
  if (w === raw.length) return;
  raw.length = w;
  if (!upgrade && offersTrailers(h.te)) raw.push('te', 'trailers');
  rawHeadersChanged(req);
  if (!later) finishRequestHopByHop(req);
}

/** Takes the hop-by-hop headers off `req.headers` (a copy without them) when {@link stripRequestHopByHop} left them there. */
export function finishRequestHopByHop(req: IncomingMessage | undefined): void {
  if (req?.httpVersionMajor !== 1) return;
  const h = req.headers;
  if (h.connection === undefined && h['keep-alive'] === undefined && h['proxy-connection'] === undefined && h.upgrade === undefined && h.te === undefined) return;
  if (isUpgrade(h)) {
    if (h['keep-alive'] !== undefined || h['proxy-connection'] !== undefined) (req as { headers: unknown }).headers = removeHopByHop(h as Record<string, unknown>, undefined, UPGRADE_REQUEST);
    return;
  }
  const headers = removeHopByHop(h as Record<string, unknown>, undefined, REQUEST_AND_TE);
  // `te: trailers` survives (gRPC servers insist on it), any other transfer coding offered goes.
  if (offersTrailers(h.te)) headers.te = 'trailers';
  (req as { headers: unknown }).headers = headers;
}

/** An upgrade (Connection names it, Upgrade says to what): Envoy forwards both as they are, and leaves `te` alone. */
function isUpgrade(h: IncomingMessage['headers']): boolean {
  return h.upgrade !== undefined && typeof h.connection === 'string' && /(^|,)\s*upgrade\s*(,|$)/i.test(h.connection);
}

function offersTrailers(te: unknown): boolean {
  return typeof te === 'string' && te.split(',').some((c) => (c.split(';')[0] as string).trim().toLowerCase() === 'trailers');
}
