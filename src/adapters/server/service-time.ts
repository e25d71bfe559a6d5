/**
 * `x-envoy-upstream-service-time` on served responses (on-head.ts writes it): when the request
 * ended, and the header's value at the head.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { serviceTimeText } from '../../core/upstream-service-time.ts';
import { AdmittedInfo } from '../../inbound/admitted-info.ts';

interface H2StreamLike {
  readonly endAfterHeaders?: boolean;
  readonly state?: { readonly remoteClose?: number } | undefined;
}
type Req = IncomingMessage & { readonly stream?: H2StreamLike };

/**
 * Envoy's router times the header from the end of the downstream request
 * (`downstream_request_complete_time_`, set in `Filter::onRequestComplete` when the request's
 * last data came) and writes none before it — "only send upstream service time if we received
 * the complete request and this is not a premature response" (`onUpstreamHeaders`). A request
 * with nothing more to come when it is handed to the app (no body; or all of it here already,
 * as the router gets a body the filters held when they let it go on) ends now. One whose body is
 * still coming ends with its last data: the request's `'end'`, one listener shared by all, only
 * on such requests. (An app answering in the very turn it was handed such a request answers
 * before node:http has parsed the rest of the packet its head came in, so a small body sent with
 * the head is not seen yet: that answer is taken as premature and has none — where a sidecar,
 * which had the packet whole, writes it. Taken the other way, an app refusing an upload at once
 * would have its own value replaced, which Envoy never does.)
 */
export function requestTimed(req: IncomingMessage | undefined): void {
  if (req === undefined) return;
  const now = performance.now();
  if (req.complete || bodiless(req as Req)) AdmittedInfo.timeAt(req.meshlet, now);
  else {
    AdmittedInfo.timeAt(req.meshlet, -1 - now);
    req.on('end', requestEnded);
  }
}

function requestEnded(this: IncomingMessage): void {
  if (AdmittedInfo.timedAt(this.meshlet) < 0) AdmittedInfo.timeAt(this.meshlet, performance.now());
}

/**
 * Whether a request has no body by its head: HTTP/1 without `transfer-encoding` and with no
 * `content-length` or `0` (node's parser reads it so); HTTP/2 whose stream ended with its headers.
 */
function bodiless(req: Req): boolean {
  if (req.httpVersionMajor >= 2) return req.stream?.endAfterHeaders === true;
  const h = req.headers;
  return h['transfer-encoding'] === undefined && (h['content-length'] === undefined || h['content-length'] === '0');
}

/** The whole request has come (HTTP/1.1: its parser saw its end; HTTP/2: the caller closed its side of the stream). */
function received(req: Req): boolean {
  if (req.complete) return true;
  if (req.stream === undefined) return false;
  try {
    return req.stream.state?.remoteClose === 1;
  } catch {
    return false;
  }
}

/**
 * The header's value for a head written now, or undefined when Envoy's router would write none:
 * the request not complete yet (a premature response). A request complete but whose end the app
 * has not read (it answers without reading the body, or has not read it to its end yet) is
 * timed from its hand-off.
 */
export function serviceTime(res: ServerResponse): string | undefined {
  const req = (res as { req?: Req }).req;
  let at = AdmittedInfo.timedAt(req?.meshlet);
  if (Number.isNaN(at)) return undefined;
  if (at < 0) {
    if (req === undefined || !received(req)) return undefined;
    at = -1 - at;
  }
  return serviceTimeText(Math.max(0, Math.floor(performance.now() - at)));
}
