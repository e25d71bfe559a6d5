/**
 * node:http's `IncomingMessage` builds `req.headersDistinct` (and `req.headers`) lazily from
 * `rawHeaders`, reading as many entries as its parser counted (its internal `kHeadersCount`), not
 * `rawHeaders.length`. When the mesh changes a request's `rawHeaders` (hop-by-hop headers taken
 * off, `x-request-id` added, headers rebuilt from the phases' view), that count is set to the new
 * length: left as parsed, `req.headersDistinct` read past the list's end and threw a TypeError in
 * the app (a request that came with `Connection: keep-alive`), or missed the headers the mesh added.
 *
 * @module
 */
import type { IncomingMessage } from 'node:http';

/** The count's key on node:http's requests (null: this Node keeps none that is found). */
let countKey: symbol | null | undefined;

/** Tells node:http's lazy header getters how long `req.rawHeaders` is now (after the mesh changed it). */
export function rawHeadersChanged(req: IncomingMessage): void {
  // HTTP/2's compatibility request has no own rawHeaders (nor the count): its getters read the stream's.
  if (!Object.hasOwn(req, 'rawHeaders')) return;
  if (countKey === undefined) countKey = Object.getOwnPropertySymbols(req).find((s) => s.description === 'kHeadersCount') ?? null;
  if (countKey !== null) (req as unknown as Record<symbol, number>)[countKey] = req.rawHeaders.length;
}
