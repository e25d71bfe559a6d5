/**
 * What a mesh's access logs need captured beyond the end messages, and only while a log in use
 * needs it (the formats' operators say so when compiled: `OperatorNeed`), so the default formats
 * cost nothing more:
 * - `tls` (server side): the downstream connection's TLS details, read when a request starts
 *   (`meshlet:inbound:start`) — once per connection — as a caller that goes away before the end
 *   may take its socket, and what it says, with it;
 * - `response`: the response head's time (`meshlet:inbound:response`, `meshlet:call:response`)
 *   and, for a call, the connection that answered (`core/upstream-connections.ts`: its TLS
 *   details and local end), kept for the end message;
 * - `request`: when the request's last byte was received from the downstream and sent upstream
 *   (`core/request-times.ts`; `%REQUEST_DURATION%`, `%REQUEST_TX_DURATION%`): a served
 *   node:http request's `end` listened to when it starts with its body still to come, a call's
 *   streamed body's end listened to when it starts;
 * - `local` (client side): only the local end of the connection a call's request went out on
 *   (`core/upstream-connections.ts`), what Istio's default formats print: one string per
 *   connection, a map entry per call, no socket kept.
 *
 * @module
 */
import { type CallStartMessage, type InboundStartMessage, channels, type WorkloadIdentity } from '../../core/observe.ts';
import type { Clock } from '../../core/clock.ts';
import { ReplayableBody } from '../../core/body.ts';
import { noteRequestReceived, noteRequestSent, requestTimesOf, watchRequestTimes } from '../../core/request-times.ts';
import { responseTrailersOf, watchResponseTrailers } from '../../core/response-trailers.ts';
import { type CallResponseMessage, type InboundResponseMessage, responseChannels } from '../../core/observe-response.ts';
import type { ResponseSeen } from '../record.ts';
import type { OperatorNeed } from './operators.ts';
import { tlsDetailsOf } from './tls-details.ts';
import { upstreamConnectionOf, upstreamLocalOf, watchUpstreamConnections } from '../../core/upstream-connections.ts';

const readTlsDetails = (socket: object): void => void tlsDetailsOf(socket);

/** The channel subscriptions a mesh's logs need, switched as its config changes. */
export class LogCapture {
  readonly #workload: WorkloadIdentity;
  readonly #clock: Clock;
  #responses = new WeakMap<object, ResponseSeen>();
  #tls = false;
  /** `inbound:start` is subscribed (for `tls` or `request`). */
  #starts = false;
  #serverRequests = false;
  #clientRequests = false;
  #trailers = false;
  #clientResponses = false;
  #serverResponses = false;
  /** What of the calls' connections is watched: nothing, the local end, or the socket too. */
  #watch: 'none' | 'local' | 'socket' = 'none';

  constructor(workload: WorkloadIdentity, clock: Clock) {
    this.#workload = workload;
    this.#clock = clock;
  }

  /** Subscribes to what the logs of each side need now, and no more. */
  use(client: ReadonlySet<OperatorNeed>, server: ReadonlySet<OperatorNeed>): void {
    this.#tls = server.has('tls');
    const requests = client.has('request') || server.has('request');
    if (requests !== (this.#clientRequests || this.#serverRequests)) watchRequestTimes(requests);
    this.#serverRequests = server.has('request');
    const starts = this.#tls || this.#serverRequests;
    if (starts !== this.#starts) {
      if (starts) channels.inboundStart.subscribe(this.#onInboundStart);
      else channels.inboundStart.unsubscribe(this.#onInboundStart);
      this.#starts = starts;
    }
    const callStarts = client.has('request');
    if (callStarts !== this.#clientRequests) {
      if (callStarts) channels.callStart.subscribe(this.#onCallStart);
      else channels.callStart.unsubscribe(this.#onCallStart);
      this.#clientRequests = callStarts;
    }
    const c = client.has('response');
    if (c !== this.#clientResponses) {
      if (c) responseChannels.call.subscribe(this.#onCallResponse);
      else responseChannels.call.unsubscribe(this.#onCallResponse);
      this.#clientResponses = c;
    }
    const trailers = client.has('trailers');
    if (trailers !== this.#trailers) {
      watchResponseTrailers(trailers);
      this.#trailers = trailers;
    }
    const watch = c ? 'socket' : client.has('local') ? 'local' : 'none';
    if (watch !== this.#watch) {
      if (this.#watch !== 'none') watchUpstreamConnections(false, this.#watch === 'socket');
      // The TLS details are read when a request goes out on the connection (Envoy's router notes
      // its SSL connection at onPoolReady): a call that gets no answer (reset after the
      // handshake, a timeout) has them too, though its socket is closed by the end.
      if (watch !== 'none') watchUpstreamConnections(true, watch === 'socket', readTlsDetails);
      this.#watch = watch;
    }
    const s = server.has('response');
    if (s !== this.#serverResponses) {
      if (s) responseChannels.inbound.subscribe(this.#onInboundResponse);
      else responseChannels.inbound.unsubscribe(this.#onInboundResponse);
      this.#serverResponses = s;
    }
    if (!c && !s) this.#responses = new WeakMap();
  }

  /** The response head seen for a call or request (and forgotten), when a log needs it. */
  responseOf(callOrRequest: object): ResponseSeen | undefined {
    if (!this.#clientResponses && !this.#serverResponses) return undefined;
    const seen = this.#responses.get(callOrRequest);
    if (seen !== undefined) this.#responses.delete(callOrRequest);
    return seen;
  }

  /** A call's response trailers (and forgotten), when a log needs them. */
  trailersOf(call: object): Readonly<Record<string, string | string[] | undefined>> | undefined {
    return this.#trailers ? responseTrailersOf(call) : undefined;
  }

  /** The connection (socket) a call's request last went out on, when a log needs it (for a call that got no response head). */
  connectionOf(call: object): object | undefined {
    return this.#watch === 'socket' ? upstreamConnectionOf(call) : undefined;
  }

  /** The local end (`address:port`) of the connection a call's request last went out on, when a log needs it. */
  localOf(call: object): string | undefined {
    return this.#watch === 'none' ? undefined : upstreamLocalOf(call);
  }

  /**
   * When `callOrRequest`'s last byte was received from the downstream and sent upstream, in ms
   * since its start (and forgotten), when a log needs them. A call's whole body (none, a string,
   * bytes) came with it (0); a gRPC call's messages ended at the caller's half-close.
   */
  requestTimesOf(callOrRequest: object, side: 'client' | 'server'): { readonly receivedMs: number | undefined; readonly sentMs: number | undefined } | undefined {
    if (!(side === 'client' ? this.#clientRequests : this.#serverRequests)) return undefined;
    const t = requestTimesOf(callOrRequest);
    if (side === 'server' || t?.receivedMs !== undefined) return t;
    const ex = callOrRequest as { readonly body?: unknown; readonly startedAt?: number };
    const body = ex.body;
    let receivedMs: number | undefined = 0;
    if (body instanceof ReplayableBody) receivedMs = body.endedAt >= 0 && ex.startedAt !== undefined ? body.endedAt - ex.startedAt : undefined;
    return { receivedMs, sentMs: t?.sentMs };
  }

  readonly #onInboundStart = (m: unknown): void => {
    const s = m as InboundStartMessage;
    if (s.workload !== this.#workload) return;
    if (this.#tls) tlsDetailsOf(s.connection);
    if (this.#serverRequests) this.#watchRequestEnd(s.request);
  };

  /**
   * A served node:http request (its IncomingMessage, or HTTP/2's compatibility request): one
   * without a body ends with its head (HTTP/1: no `content-length` or 0, no `transfer-encoding`;
   * HTTP/2: END_STREAM on the HEADERS frame), else at its `end` — the app reads it as it comes, so
   * that is also when its last byte reached the app (a body the app never reads ends when Node
   * discards it, after the answer). Other requests (gRPC: the interceptor's half-close) are noted
   * by their adapters.
   */
  #watchRequestEnd(request: object): void {
    const req = request as { readonly headers?: Record<string, unknown>; readonly stream?: { readonly endAfterHeaders?: unknown }; once?: (event: string, f: () => void) => unknown };
    const h = req.headers;
    if (h === undefined || typeof req.once !== 'function') return;
    const h2End = req.stream?.endAfterHeaders;
    const whole = typeof h2End === 'boolean' ? h2End : (h['content-length'] === undefined || h['content-length'] === '0') && h['transfer-encoding'] === undefined;
    if (whole) {
      noteRequestReceived(request, 0);
      noteRequestSent(request, 0);
      return;
    }
    const clock = this.#clock;
    const startedAt = clock.now();
    req.once('end', () => {
      const ms = clock.now() - startedAt;
      noteRequestReceived(request, ms);
      noteRequestSent(request, ms);
    });
  }

  /** A call whose body the app streams: its end is when the mesh has read it (the last byte received from the app). */
  readonly #onCallStart = (m: unknown): void => {
    const s = m as CallStartMessage;
    if (s.workload !== this.#workload) return;
    const ex = s.call as { readonly body?: unknown; readonly startedAt?: number };
    const body = ex.body;
    const startedAt = ex.startedAt;
    if (!(body instanceof ReplayableBody) || !body.streaming || startedAt === undefined) return;
    const clock = this.#clock;
    body.deferUntilSent({ bodySent: () => noteRequestReceived(s.call, clock.now() - startedAt) });
  };

  readonly #onInboundResponse = (m: unknown): void => {
    const r = m as InboundResponseMessage;
    // The first head only (a 100-continue is not the response).
    if (r.workload === this.#workload && !this.#responses.has(r.request)) this.#responses.set(r.request, { latencyMs: r.latencyMs, local: false });
  };

  readonly #onCallResponse = (m: unknown): void => {
    const r = m as CallResponseMessage;
    if (r.workload !== this.#workload || this.#responses.has(r.call)) return;
    const connection = r.local === undefined ? upstreamConnectionOf(r.call) : undefined;
    // Read while the connection is open (a `connection: close` answer closes it before the call ends).
    tlsDetailsOf(connection);
    const localAddress = r.localAddress ?? (r.local === undefined ? upstreamLocalOf(r.call) : undefined);
    this.#responses.set(r.call, { latencyMs: r.latencyMs, local: r.local !== undefined, localAddress, connection });
  };

  /** Unsubscribes from everything. */
  close(): void {
    this.use(new Set(), new Set());
  }
}
