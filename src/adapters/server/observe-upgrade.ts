/**
 * The observation of an upgrade request (WebSocket) on the servers the mesh makes: node:http hands
 * it to the app's `'upgrade'` listeners with the raw socket and no `ServerResponse`, so the
 * request's end is its connection's close and its status is what the app (or the mesh's denial)
 * wrote first on the socket. As Envoy reports an upgraded stream: one request, published
 * (`meshlet:inbound:end`: Istio's metrics, the access log, the server span) when the upgraded
 * connection closes, with the status of the handshake's answer (`101` for an accepted WebSocket),
 * its whole duration, and the bytes of the whole connection both ways.
 *
 * The status is read from the first write on the socket (a `ws` server writes the 101 head, or its
 * refusal, in one); the socket's `write` and `end` are wrapped until then, and only for observed
 * upgrades; that head is the request's response head (`meshlet:inbound:response`, /tap's `rsp`).
 * Nothing here runs without subscribers.
 *
 * @module
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Clock } from '../../core/clock.ts';
import type { Headers } from '../../core/handler.ts';
import { channels, type InboundEndMessage, type InboundStartMessage } from '../../core/observe.ts';
import { type InboundResponseMessage, responseChannels } from '../../core/observe-response.ts';
import type { ConnectionInfo, Judgement } from '../../inbound/guard.ts';
import type { Denial, InboundRequest } from '../../inbound/pipeline.ts';
import { authzPolicyOf, DOWNSTREAM_DISCONNECT, denialOutcome, headBytes, type InboundObserver, startMessage, VIA_UPSTREAM } from './observe-inbound.ts';

type ResponseHeaders = NonNullable<InboundEndMessage['responseHeaders']>;

/** The status and header lines of an HTTP/1.x response head at the start of `chunk` (`status` 0 when it is not one). */
export function parseHead(chunk: unknown): { status: number; headers: ResponseHeaders } {
  const text = typeof chunk === 'string' ? chunk.slice(0, 8192) : chunk instanceof Uint8Array ? Buffer.from(chunk.buffer, chunk.byteOffset, Math.min(chunk.byteLength, 8192)).toString('latin1') : '';
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  if (m === null) return { status: 0, headers: {} };
  const headers: Record<string, string | string[]> = {};
  const end = text.indexOf('\r\n\r\n');
  const lines = (end === -1 ? text : text.slice(0, end)).split('\r\n');
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const k = line.slice(0, colon).trim().toLowerCase();
    const v = line.slice(colon + 1).trim();
    const had = headers[k];
    headers[k] = had === undefined ? v : Array.isArray(had) ? [...had, v] : [had, v];
  }
  return { status: Number(m[1]), headers };
}

/** One observed upgrade request, from its start to its connection's close. */
export class UpgradeObservation {
  readonly start: InboundStartMessage;
  readonly #req: IncomingMessage;
  readonly #socket: Duplex;
  readonly #clock: Clock;
  readonly #conn: ConnectionInfo;
  readonly #startedAt: number;
  readonly #read0: number;
  readonly #written0: number;
  readonly #headBytes: number;
  #names: number;
  #judged: InboundRequest | undefined;
  #denial: Denial | undefined;
  #status = 0;
  #responseHeaders: ResponseHeaders | undefined;
  #ended = false;

  constructor(o: InboundObserver, req: IncomingMessage, socket: Duplex, headers: Headers, method: string, authority: string, path: string, conn: ConnectionInfo) {
    this.#req = req;
    this.#socket = socket;
    this.#clock = o.clock;
    this.#conn = conn;
    this.#startedAt = o.clock.now();
    const s = socket as Partial<Socket>;
    // From here on the connection carries this request alone (bytes node:http read past its head
    // before handing it over, a client's frames sent ahead of the 101, are not counted).
    this.#read0 = s.bytesRead ?? 0;
    this.#written0 = s.bytesWritten ?? 0;
    this.#headBytes = headBytes(req);
    this.#names = Object.keys(headers).length;
    this.start = startMessage(o, req, 'http1', method, authority, path, headers, conn);
    this.#watchHead();
    socket.once('close', () => this.#end());
  }

  /** Publishes the start (subscribers may set `wrap` and add headers). */
  publish(): void {
    if (channels.inboundStart.hasSubscribers) channels.inboundStart.publish(this.start);
  }

  /** True when a subscriber added request headers (an x-request-id): the app is then handed them. */
  get added(): boolean {
    return this.start.changedHeaders !== undefined || Object.keys(this.start.headers).length !== this.#names;
  }

  /** True when a subscriber wrapped the rest of the request (then run it through {@link run}). */
  get wraps(): boolean {
    return this.start.wrap !== undefined;
  }

  /** Runs `fn` inside what subscribers wrapped around the request (or as is). */
  run(fn: () => void): void {
    const w = this.start.wrap;
    if (w === undefined) fn();
    else w(fn);
  }

  judged(j: Judgement): void {
    this.#judged = j.request;
    if (!j.serve) this.#denial = j.denial;
  }

  denied(d: Denial): void {
    this.#denial = d;
  }

  /** Reads the status (and headers) of the first thing written on the socket: the answer to the upgrade. */
  #watchHead(): void {
    const socket = this.#socket as Duplex & { write: Duplex['write']; end: Duplex['end'] };
    const ownWrite = Object.hasOwn(socket, 'write');
    const ownEnd = Object.hasOwn(socket, 'end');
    const write = socket.write;
    const end = socket.end;
    const restore = () => {
      if (ownWrite) socket.write = write;
      else delete (socket as { write?: unknown }).write;
      if (ownEnd) socket.end = end;
      else delete (socket as { end?: unknown }).end;
    };
    const seen = (chunk: unknown) => {
      restore();
      const { status, headers } = parseHead(chunk);
      this.#status = status;
      this.#responseHeaders = headers;
      if (status !== 0 && responseChannels.inbound.hasSubscribers) {
        const latencyMs = this.#clock.now() - this.#startedAt;
        responseChannels.inbound.publish({ workload: this.start.workload, request: this.#req, protocol: 'http1', status, grpcStatus: -1, headerNames: Object.keys(headers), latencyMs } satisfies InboundResponseMessage);
      }
    };
    socket.write = function (this: Duplex, chunk: unknown, ...rest: unknown[]) {
      seen(chunk);
      return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as Duplex['write'];
    socket.end = function (this: Duplex, chunk?: unknown, ...rest: unknown[]) {
      if (chunk !== undefined && typeof chunk !== 'function') seen(chunk);
      else restore();
      return (end as (...a: unknown[]) => Duplex).call(this, chunk, ...rest);
    } as Duplex['end'];
    socket.once('close', restore);
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    const ch = channels.inboundEnd;
    if (!ch.hasSubscribers) return;
    const s = this.start;
    const j = this.#judged;
    const d = this.#denial;
    const status = d?.closeConnection === true ? 0 : this.#status;
    let flags = '';
    let details = VIA_UPSTREAM;
    if (d !== undefined) ({ flags, details } = denialOutcome(d, j));
    else if (status === 0) {
      flags = 'DC';
      details = DOWNSTREAM_DISCONNECT;
    }
    const sock = this.#socket as Partial<Socket>;
    const peer = j?.peer ?? this.#conn.peer;
    const endedAt = this.#clock.now();
    const m: InboundEndMessage = {
      workload: s.workload,
      request: this.#req,
      protocol: s.protocol,
      method: s.method,
      scheme: s.scheme,
      authority: s.authority,
      path: j?.path ?? s.path,
      headers: j?.headers ?? s.headers,
      status,
      grpcStatus: -1,
      flags,
      details,
      deniedBy: d?.phase,
      deniedBefore: d?.before,
      requestBytes: this.#headBytes + Math.max(0, (sock.bytesRead ?? 0) - this.#read0),
      responseBytes: Math.max(0, (sock.bytesWritten ?? 0) - this.#written0),
      durationMs: endedAt - this.#startedAt,
      endedAt,
      mtls: peer !== undefined,
      peer,
      requestPrincipal: j?.requestPrincipal,
      authzPolicy: authzPolicyOf(j?.authz),
      remoteAddress: s.remoteAddress,
      remotePort: s.remotePort,
      localAddress: s.localAddress,
      localPort: s.localPort,
      sni: j?.sni ?? this.#conn.sni,
      connection: this.#conn.connection,
      responseHeaders: this.#responseHeaders ?? {},
      error: undefined,
    };
    ch.publish(m);
  }
}

/** Starts observing an upgrade request when someone listens (`undefined` otherwise). */
export function observeUpgrade(observer: InboundObserver | undefined, req: IncomingMessage, socket: Duplex, headers: Headers, method: string, authority: string, path: string, conn: ConnectionInfo): UpgradeObservation | undefined {
  if (observer === undefined || !(channels.inboundStart.hasSubscribers || channels.inboundEnd.hasSubscribers || responseChannels.inbound.hasSubscribers)) return undefined;
  const o = new UpgradeObservation(observer, req, socket, headers, method, authority, path, conn);
  o.publish();
  return o;
}
