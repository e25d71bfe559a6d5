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
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HOP_BY_HOP, isHopByHopName, REQUEST_HOP_BY_HOP, removeHopByHop } from '../../core/hop-by-hop.ts';

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

/** Removed from an upgrade's answer (101): all but its `connection` and `upgrade`. */
const ON_UPGRADE = HOP_BY_HOP.filter((n) => n !== 'connection' && n !== 'upgrade');

/**
 * Takes the hop-by-hop headers the app set off its response when the head is written: those it
 * set with `setHeader` and those it passed to `writeHead` (an object in any letter case, or a raw
 * list). Installed once the request is the app's, so the mesh's own answers (a denial's
 * `connection: close`) keep theirs.
 */
export function stripHopByHopOnHead(res: ServerResponse): void {
  const writeHead = res.writeHead;
  const patched = function (this: ServerResponse, status: number, ...rest: unknown[]): ServerResponse {
    res.writeHead = writeHead;
    // A 101 answers an upgrade: its connection and upgrade are the point of it.
    const names = status === 101 ? ON_UPGRADE : HOP_BY_HOP;
    for (const n of names) if (res.hasHeader(n)) res.removeHeader(n);
    const at = typeof rest[0] === 'string' ? 1 : 0;
    const given = rest[at];
    if (given !== null && typeof given === 'object') rest[at] = withoutHopByHop(given as object, names);
    return (writeHead as (this: ServerResponse, ...a: unknown[]) => ServerResponse).call(this, status, ...rest);
  };
  res.writeHead = patched as typeof res.writeHead;
}

/** `writeHead`'s headers (an object, a flat raw list, or a list of pairs) without the hop-by-hop ones: a copy, the app's own left as it was. */
function withoutHopByHop(given: object, names: readonly string[]): object {
  if (!Array.isArray(given)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(given)) if (!isHopByHopName(k, names)) out[k] = (given as Record<string, unknown>)[k];
    return out;
  }
  if (given.length > 0 && Array.isArray(given[0])) return given.filter((pair: unknown[]) => !isHopByHopName(String(pair[0]), names));
  const out: unknown[] = [];
  for (let i = 0; i + 1 < given.length; i += 2) if (!isHopByHopName(String(given[i]), names)) out.push(given[i], given[i + 1]);
  return out;
}
