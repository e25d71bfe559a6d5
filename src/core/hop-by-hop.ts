/**
 * Hop-by-hop headers: the ones that describe one connection, not the message, and that Envoy's
 * connection manager takes off what it forwards (`ConnectionManagerUtility::mutateRequestHeaders`
 * and `mutateResponseHeaders`). One list and one remover, for every adapter: the undici transport
 * (an upstream's response before the app sees it) and the server adapters (a request before the
 * app sees it, the app's response before it goes out).
 *
 * @module
 */
import type { Headers } from './handler.ts';

/**
 * Removed from a response (and, but for `transfer-encoding`, from a request): `connection`,
 * `keep-alive`, `transfer-encoding`, `proxy-connection`, and `upgrade` on a message that is no
 * upgrade.
 */
export const HOP_BY_HOP: readonly string[] = ['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade'];

/**
 * Removed from a request before the app sees it. `transfer-encoding` stays: Node's parser has
 * de-chunked the body already, frameworks read the header to know a body comes (type-is's
 * `hasBody`), and the sidecar's own HTTP/1.1 connection to the app says `chunked` again for a
 * body of no announced length.
 */
export const REQUEST_HOP_BY_HOP: readonly string[] = ['connection', 'keep-alive', 'proxy-connection', 'upgrade'];

/**
 * Removed from an upgrade's request and its answer (101): Envoy's connection manager keeps their
 * `connection` and `upgrade` (what the upgrade is) and takes off the rest.
 */
export const UPGRADE_HOP_BY_HOP: readonly string[] = ['keep-alive', 'transfer-encoding', 'proxy-connection'];

/** Whether a `connection` header (one value or several) lists the `upgrade` token, in any case (Envoy's `Utility::isUpgrade`). */
export function namesUpgrade(connection: unknown): boolean {
  const values = Array.isArray(connection) ? connection : [connection];
  return values.some((v) => typeof v === 'string' && v.split(',').some((t) => t.trim().toLowerCase() === 'upgrade'));
}

/**
 * Removes the hop-by-hop headers `names` (default {@link HOP_BY_HOP}) — Envoy's connection
 * manager takes them off what it forwards. Returns a copy of the header object without them (a
 * Node peer sends `connection` and `keep-alive` on every message: `delete` would leave a slow
 * dictionary object that costs more per message than the copy), and removes them in place from
 * the message's own raw list (name, value, …; names as bytes or text, any case) when there is one.
 */
export function removeHopByHop<H extends Headers | Record<string, unknown>>(headers: H, raw: unknown, names: readonly string[] = HOP_BY_HOP): H {
  const out = {} as Record<string, unknown>;
  for (const k in headers) if (!names.includes(k)) out[k] = headers[k];
  if (!Array.isArray(raw)) return out as H;
  let w = 0;
  for (let r = 0; r + 1 < raw.length; r += 2) {
    if (isHopByHopName(raw[r], names)) continue;
    raw[w++] = raw[r];
    raw[w++] = raw[r + 1];
  }
  raw.length = w;
  return out as H;
}

/** Whether a raw header name (bytes or text, any case) is one of `names`, compared without allocating. */
export function isHopByHopName(name: unknown, names: readonly string[] = HOP_BY_HOP): boolean {
  const len = (name as { length?: unknown }).length;
  for (const n of names) {
    if (n.length !== len) continue;
    let same = true;
    for (let i = 0; i < len && same; i++) {
      const c = typeof name === 'string' ? name.charCodeAt(i) : (name as Uint8Array)[i] ?? 0;
      same = (c >= 65 && c <= 90 ? c + 32 : c) === n.charCodeAt(i);
    }
    if (same) return true;
  }
  return false;
}
