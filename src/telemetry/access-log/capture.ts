/**
 * What a mesh's access logs need captured beyond the end messages, and only while a log in use
 * needs it (the formats' operators say so when compiled: `OperatorNeed`), so the default formats
 * cost nothing more:
 * - `tls` (server side): the downstream connection's TLS details, read when a request starts
 *   (`meshlet:inbound:start`) — once per connection — as a caller that goes away before the end
 *   may take its socket, and what it says, with it;
 * - `response`: the response head's time (`meshlet:inbound:response`, `meshlet:call:response`)
 *   and, for a call, the connection that answered (`core/upstream-connections.ts`: its TLS
 *   details and local end), kept for the end message.
 *
 * @module
 */
import { type InboundStartMessage, channels, type WorkloadIdentity } from '../../core/observe.ts';
import { type CallResponseMessage, type InboundResponseMessage, responseChannels } from '../../core/observe-response.ts';
import type { ResponseSeen } from '../record.ts';
import type { OperatorNeed } from './operators.ts';
import { tlsDetailsOf } from './tls-details.ts';
import { upstreamConnectionOf, watchUpstreamConnections } from '../../core/upstream-connections.ts';
import { formatHostPort } from '../../core/host-port.ts';

/** The channel subscriptions a mesh's logs need, switched as its config changes. */
export class LogCapture {
  readonly #workload: WorkloadIdentity;
  #responses = new WeakMap<object, ResponseSeen>();
  #tls = false;
  #clientResponses = false;
  #serverResponses = false;

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
      watchUpstreamConnections(c);
      this.#clientResponses = c;
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
    const s = connection as { readonly localAddress?: string; readonly localPort?: number } | undefined;
    const localAddress = r.localAddress ?? (s?.localAddress === undefined ? undefined : formatHostPort(s.localAddress, s.localPort ?? 0));
    this.#responses.set(r.call, { latencyMs: r.latencyMs, local: r.local !== undefined, localAddress, connection });
  };

  /** Unsubscribes from everything. */
  close(): void {
    this.use(new Set(), new Set());
  }
}
