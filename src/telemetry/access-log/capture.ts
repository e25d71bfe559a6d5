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
 * - `local` (client side): only the local end of the connection a call's request went out on
 *   (`core/upstream-connections.ts`), what Istio's default formats print: one string per
 *   connection, a map entry per call, no socket kept.
 *
 * @module
 */
import { type InboundStartMessage, channels, type WorkloadIdentity } from '../../core/observe.ts';
import { type CallResponseMessage, type InboundResponseMessage, responseChannels } from '../../core/observe-response.ts';
import type { ResponseSeen } from '../record.ts';
import type { OperatorNeed } from './operators.ts';
import { tlsDetailsOf } from './tls-details.ts';
import { upstreamConnectionOf, upstreamLocalOf, watchUpstreamConnections } from '../../core/upstream-connections.ts';

/** The channel subscriptions a mesh's logs need, switched as its config changes. */
export class LogCapture {
  readonly #workload: WorkloadIdentity;
  #responses = new WeakMap<object, ResponseSeen>();
  #tls = false;
  #clientResponses = false;
  #serverResponses = false;
  /** What of the calls' connections is watched: nothing, the local end, or the socket too. */
  #watch: 'none' | 'local' | 'socket' = 'none';

  constructor(workload: WorkloadIdentity) {
    this.#workload = workload;
  }

  /** Subscribes to what the logs of each side need now, and no more. */
  use(client: ReadonlySet<OperatorNeed>, server: ReadonlySet<OperatorNeed>): void {
    const tls = server.has('tls');
    if (tls !== this.#tls) {
      if (tls) channels.inboundStart.subscribe(this.#onInboundStart);
      else channels.inboundStart.unsubscribe(this.#onInboundStart);
      this.#tls = tls;
    }
    const c = client.has('response');
    if (c !== this.#clientResponses) {
      if (c) responseChannels.call.subscribe(this.#onCallResponse);
      else responseChannels.call.unsubscribe(this.#onCallResponse);
      this.#clientResponses = c;
    }
    const watch = c ? 'socket' : client.has('local') ? 'local' : 'none';
    if (watch !== this.#watch) {
      if (this.#watch !== 'none') watchUpstreamConnections(false, this.#watch === 'socket');
      if (watch !== 'none') watchUpstreamConnections(true, watch === 'socket');
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

  /** The local end (`address:port`) of the connection a call's request last went out on, when a log needs it. */
  localOf(call: object): string | undefined {
    return this.#watch === 'none' ? undefined : upstreamLocalOf(call);
  }

  readonly #onInboundStart = (m: unknown): void => {
    const s = m as InboundStartMessage;
    if (s.workload === this.#workload) tlsDetailsOf(s.connection);
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
