/**
 * `CONNECT` on an HTTP/2 server of the app's own (`mesh.protect(http2.createServer(…))`): node:http2
 * hands it to the server's `'connect'` listeners with a request and a response (not a socket, as
 * node:http does), so it is judged as any HTTP/2 request is — and answered, when refused, with an
 * HTTP/2 response — with its method, host and target as Envoy's HTTP/2 codec gives them to the
 * filters:
 *
 * - an extended CONNECT (RFC 8441, `:protocol`: WebSockets over HTTP/2) is an upgrade: Envoy turns
 *   it into HTTP/1's form before any filter runs (source/common/http/utility.cc,
 *   `Utility::transformUpgradeRequestFromH2toH1`: `:method` GET, `upgrade: <:protocol>`,
 *   `connection: upgrade`, `:protocol` removed; called from http2/codec_impl.cc on a server
 *   stream's headers). It is judged so, on its `:path` (normalized, a consumed `access_token`
 *   removed, as the listener then reads it); the listener still gets the request as sent
 *   (`CONNECT`, `:protocol`), as its WebSocket library needs it;
 * - a plain CONNECT has no `:path`: its target is `:authority` (RFC 9113 §8.5), the host judged.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Headers } from '../../core/handler.ts';
import type { InboundGuard } from '../../inbound/guard.ts';
import { setHeaderInPlace } from './headers.ts';
import { first, type MeshRequest, serveNode } from './node.ts';

/** Judges an HTTP/2 `CONNECT` and calls `next` (the app's `'connect'` listeners) only when it is admitted. */
export function serveH2Connect(guard: InboundGuard, req: IncomingMessage, res: ServerResponse, next: () => void): void {
  const protocol = first(req.headers[':protocol']);
  if (protocol === undefined) {
    const authority = first(req.headers[':authority']) ?? '';
    // The listener reads the target where node puts it (req.authority): req.url is not rewritten.
    serveNode(guard, req as MeshRequest, res, next, false, undefined, { method: 'CONNECT', target: authority });
    return;
  }
  const sent = { upgrade: req.headers.upgrade, connection: req.headers.connection };
  const view = (h: Headers): void => {
    h[':method'] = 'GET';
    delete h[':protocol'];
    h.upgrade = protocol;
    h.connection = 'upgrade';
  };
  // Headers rebuilt from the view (the phases changed one) get the request's own form back.
  const asSent = (): void => {
    if (req.headers[':protocol'] === undefined) setHeaderInPlace(req, ':protocol', protocol);
    if (req.headers[':method'] !== undefined) setHeaderInPlace(req, ':method', 'CONNECT');
    for (const k of ['upgrade', 'connection'] as const) {
      const v = sent[k];
      if (req.headers[k] !== v) setHeaderInPlace(req, k, v === undefined ? null : String(v));
    }
    next();
  };
  serveNode(guard, req as MeshRequest, res, asSent, true, undefined, { method: 'GET', view });
}
