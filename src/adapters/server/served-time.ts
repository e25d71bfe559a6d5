/**
 * When the service time of a served response counts from (`x-envoy-upstream-service-time`, written
 * by on-head.ts): as Envoy's router, from the request's end — `downstream_request_complete_time_`
 * — and not at all on a premature response, one whose head comes before the request has all come
 * (source/common/router/router.cc `Filter::onUpstreamHeaders`: "Only send upstream service time if
 * we received the complete request and this is not a premature response").
 *
 * - A request without a body (its head says so; HTTP/2: its stream ended with its headers) is
 *   complete when the mesh hands it to the app.
 * - One with a body the app reads to its end: from its `'end'` (one shared listener, no closure).
 * - One whose body came whole but the app did not read it (`complete`: HTTP/1.1's parser saw its
 *   end; HTTP/2: the caller closed its side), or that the app answers in the very turn it was
 *   handed over — node:http has not parsed the rest of the packet the head came in yet, and a
 *   sidecar would have had it whole —: from the hand-over.
 * - Otherwise (the body still coming): none.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** When the request was handed to the app (`performance.now()`). */
const kAdmittedAt = Symbol('meshlet.admittedAt');
/** When a request with a body was read to its end (`performance.now()`); absent until then. */
const kCompleteAt = Symbol('meshlet.completeAt');
/** The turn a request with a body still coming was handed over in. */
const kTurn = Symbol('meshlet.admittedTurn');

interface H2StreamLike {
  readonly endAfterHeaders?: boolean;
  readonly state?: { readonly remoteClose?: number } | undefined;
}
type Req = IncomingMessage & { [kCompleteAt]?: number; [kTurn]?: number; readonly stream?: H2StreamLike };
type Res = ServerResponse & { [kAdmittedAt]?: number; readonly req?: Req };

/** The current turn of the event loop: moves on once the synchronous code running now (and its microtasks) is done. */
let turn = 0;
let turnEnds = false;
function currentTurn(): number {
  if (!turnEnds) {
    turnEnds = true;
    queueMicrotask(() => {
      turn++;
      turnEnds = false;
    });
  }
  return turn;
}

/** A request's `'end'` listener. */
function completed(this: Req): void {
  this[kCompleteAt] = performance.now();
}

/** A request whose head said it has no body. */
function bodiless(req: Req): boolean {
  if (req.stream !== undefined) return req.stream.endAfterHeaders === true;
  const h = req.headers;
  return h['transfer-encoding'] === undefined && (h['content-length'] === undefined || h['content-length'] === '0');
}

/** The whole request has come (HTTP/1.1: its parser saw its end; HTTP/2: the caller closed its side of the stream). */
function received(req: Req): boolean {
  if (req.stream === undefined) return req.complete;
  try {
    return req.stream.state?.remoteClose === 1 || req.complete;
  } catch {
    return req.complete;
  }
}

/** The request is the app's now: its service time may count from here. */
export function markAdmitted(res: ServerResponse): void {
  const r = res as Res;
  r[kAdmittedAt] = performance.now();
  const req = r.req;
  if (req !== undefined && !bodiless(req) && !req.complete) {
    req[kTurn] = currentTurn();
    req.once('end', completed);
  }
}

/** When the service time of `res` counts from; undefined for a premature response. */
export function serviceStartOf(res: ServerResponse): number | undefined {
  const r = res as Res;
  const admitted = r[kAdmittedAt] ?? 0;
  const req = r.req;
  if (req === undefined || bodiless(req)) return admitted;
  const end = req[kCompleteAt];
  if (end !== undefined) return Math.max(admitted, end);
  return req[kTurn] === turn || received(req) ? admitted : undefined;
}
