/**
 * `GET /tap` on a mesh's admin endpoint: the requests of this mesh as they happen, both
 * directions, as Linkerd's `tap` shows a proxy's — a `req` record when a request starts (outbound:
 * when it goes to its first endpoint, so its route, cluster, endpoint and TLS are known; or when it
 * ends without one: a direct response, no route, a fault) and an `end` record when it ends.
 *
 * The records hold what routing and the connection say — never a header value, a body, a query
 * string (tokens travel in queries) or key material. The observation channels are subscribed only
 * while a tap client is connected: without one, calls pay nothing for it (`mesh-tap-stream.ts`
 * holds each client's filters, rate and buffer).
 *
 * @module
 */
import type { Channel } from 'node:diagnostics_channel';
import type { ServerResponse } from 'node:http';
import { formatHostPort } from './core/host-port.ts';
import {
  type AttemptEndMessage,
  type AttemptStartMessage,
  type CallEndMessage,
  type CallStartMessage,
  channels,
  type InboundEndMessage,
  type InboundStartMessage,
  type WorkloadIdentity,
} from './core/observe.ts';
import type { Mesh } from './mesh.ts';
import { type CallResponseMessage, type InboundResponseMessage, responseChannels } from './core/observe-response.ts';
import { LocalAddresses } from './mesh-tap-local.ts';
import type { ClusterState } from './outbound/cluster-state.ts';
import type { HostState } from './routing/balancer/host.ts';
import { type TapEnd, type TapFilter, type TapRequest, type TapResponse, TapStream } from './mesh-tap-stream.ts';

/** What the tap reads of a mesh beyond its channels. */
export interface TapSource {
  readonly mesh: Mesh;
  /** MeshConfig `trustDomain`. */
  readonly trustDomain: string;
  /** The workload's own address (`createMesh({ sourceIp })`), when configured: every outbound record's `src`; else the local end of the call's connection. */
  readonly sourceIp: string | undefined;
}

/** What a call said when it entered the mesh (before rewrites), kept until its `req` record is made. */
interface Entered {
  readonly protocol: string;
  readonly method: string;
  readonly authority: string;
  readonly path: string;
}

/** The exchange of an outbound call, as far as the tap reads it. */
interface TappedExchange {
  /** A mirror copy (it has no call:start or call:end: its one attempt is its request). */
  readonly mirror?: boolean;
  readonly protocol?: string;
  readonly method?: string;
  readonly authority?: string;
  readonly path?: string;
  readonly scheme?: string;
  readonly route?: { readonly name?: string } | undefined;
  readonly cluster?: { readonly name?: string } | undefined;
  readonly host?: unknown;
}

/** Most tap clients at once; another is answered 503 (each costs every call a little while it is connected). */
export const MAX_TAP_CLIENTS = 16;

/** An endpoint's TLS as last decided, with what it was decided from (a new config, endpoint or certificate decides again). */
interface TlsMemo {
  /** The config in use (its PeerAuthentications and DestinationRules decide). */
  readonly snapshot: unknown;
  readonly cluster: unknown;
  readonly endpoint: unknown;
  readonly credentials: unknown;
  readonly tls: 'mtls' | 'tls' | 'none';
}

/** `path` without its query string or fragment. */
export function withoutQuery(path: string): string {
  const i = path.search(/[?#]/);
  return i < 0 ? path : path.slice(0, i);
}

/** A mesh's tap: its clients, and its channel subscriptions while it has any. */
export class MeshTap {
  readonly #source: TapSource;
  readonly #streams = new Set<TapStream>();
  readonly #subscriptions: [Channel, (m: unknown) => void][] = [];
  /** Outbound calls seen entering, until their `req` record is made. */
  readonly #entered = new WeakMap<object, Entered>();
  /** Outbound calls whose `req` record was made, with the `src` it said. */
  readonly #started = new WeakMap<object, string | undefined>();
  /** The local ends of undici's connections, by endpoint (outbound `src` without `sourceIp`). */
  readonly #local = new LocalAddresses();
  /** Each endpoint's TLS, decided once per config, endpoint and certificate rather than per call. */
  readonly #tls = new WeakMap<object, TlsMemo>();
  #closed = false;

  constructor(source: TapSource) {
    this.#source = source;
  }

  /** Whether the channels are subscribed (a client is connected). */
  get subscribed(): boolean {
    return this.#subscriptions.length > 0;
  }

  /** Serves a `/tap` client on `res` until it goes away or the mesh closes. */
  open(res: ServerResponse, filter: TapFilter, maxRps: number): void {
    res.statusCode = 200;
    res.setHeader('content-type', 'application/x-ndjson; charset=utf-8');
    res.setHeader('cache-control', 'no-cache, max-age=0');
    res.setHeader('x-content-type-options', 'nosniff');
    if (this.#closed) {
      res.end(`${JSON.stringify({ type: 'closed', reason: 'the mesh is closing' })}\n`);
      return;
    }
    if (this.#streams.size >= MAX_TAP_CLIENTS) {
      res.statusCode = 503;
      res.setHeader('content-type', 'text/plain; charset=utf-8');
      res.end(`admin: /tap: ${MAX_TAP_CLIENTS} tap clients are connected already; close one first\n`);
      return;
    }
    const mesh = this.#source.mesh;
    const stream = new TapStream(res, filter, maxRps, mesh.outbound.clock);
    this.#streams.add(stream);
    if (!this.subscribed) this.#subscribe();
    res.once('close', () => {
      stream.stop();
      this.#streams.delete(stream);
      if (this.#streams.size === 0) this.#unsubscribe();
    });
    // Nagle off: each record goes out as it is written.
    res.socket?.setNoDelay(true);
    stream.start(`${mesh.identity.workloadName ?? mesh.identity.service}.${mesh.identity.namespace}`);
  }

  /** Ends every client's stream (the mesh is closing) and stops observing; resolves once they are written out. */
  async close(reason: string): Promise<void> {
    this.#closed = true;
    const streams = [...this.#streams];
    this.#streams.clear();
    this.#unsubscribe();
    await Promise.all(streams.map((s) => s.finish(reason)));
  }

  #subscribe(): void {
    this.#local.start();
    const id = this.#source.mesh.identity;
    const mine = (m: { workload: WorkloadIdentity | undefined }): boolean => m.workload === id;
    this.#on(channels.callStart, (m: CallStartMessage) => {
      if (mine(m)) this.#entered.set(m.call, { protocol: m.protocol, method: m.method, authority: m.authority, path: m.path });
    });
    this.#on(channels.attemptStart, (m: AttemptStartMessage) => {
      if (!mine(m) || this.#started.has(m.call)) return;
      const copy = m.call as TappedExchange;
      // A mirror copy: what it sends (the primary's request, no `-shadow` host as Istio configures it) is its request.
      if (copy.mirror === true) this.#entered.set(m.call, { protocol: copy.protocol ?? 'http1', method: copy.method ?? '', authority: copy.authority ?? '', path: copy.path ?? '' });
      this.#outboundRequest(m.call, m.cluster, m.endpoint);
    });
    // A mirror copy ends with its attempt.
    this.#on(channels.attemptEnd, (m: AttemptEndMessage) => {
      if (!mine(m) || (m.call as TappedExchange).mirror !== true || !this.#started.has(m.call)) return;
      this.#started.delete(m.call);
      const e: TapEnd = {
        direction: 'out',
        status: m.status,
        grpcStatus: (m.call as TappedExchange).protocol === 'grpc' && m.grpcStatus >= 0 ? m.grpcStatus : undefined,
        flags: m.failure === undefined ? '-' : mirrorFlag(m.failure),
        latencyMs: micros(m.durationMs),
        attempts: 1,
      };
      for (const s of this.#streams) s.end(m.call, e);
    });
    this.#on(responseChannels.call, (m: CallResponseMessage) => {
      if (!mine(m)) return;
      // A reply the mesh made before any attempt (a direct response, a fault): its `req` now.
      if (!this.#started.has(m.call)) this.#outboundRequest(m.call, (m.call as TappedExchange).cluster?.name, m.endpoint);
      const said = this.#started.get(m.call);
      const src = this.#source.sourceIp ?? m.localAddress ?? this.#local.of(m.endpoint);
      const p: TapResponse = {
        direction: 'out',
        status: m.status,
        grpcStatus: m.grpcStatus >= 0 ? m.grpcStatus : undefined,
        latencyUs: Math.round(m.latencyMs * 1000),
        srcAddress: src !== said ? src : undefined,
        local: m.local,
        headers: names(m.headers),
      };
      for (const s of this.#streams) s.response(m.call, p);
    });
    this.#on(channels.callEnd, (m: CallEndMessage) => {
      if (!mine(m)) return;
      if (!this.#started.has(m.call)) this.#outboundRequest(m.call, m.cluster, m.endpoint, m);
      this.#started.delete(m.call);
      const e: TapEnd = {
        direction: 'out',
        status: m.status,
        grpcStatus: m.protocol === 'grpc' && m.grpcStatus >= 0 ? m.grpcStatus : undefined,
        flags: m.flags === '' ? '-' : m.flags,
        latencyMs: micros(m.durationMs),
        attempts: m.attempts,
        requestBytes: m.requestBytes,
        responseBytes: m.responseBytes,
      };
      for (const s of this.#streams) s.end(m.call, e);
    });
    this.#on(channels.inboundStart, (m: InboundStartMessage) => {
      if (!mine(m)) return;
      const r: TapRequest = {
        direction: 'in',
        protocol: m.protocol,
        method: m.method,
        scheme: m.scheme,
        authority: m.authority,
        path: withoutQuery(m.path),
        cluster: `inbound|${m.localPort}||`,
        srcAddress: formatHostPort(m.remoteAddress, m.remotePort),
        dstAddress: m.localAddress === undefined ? undefined : formatHostPort(m.localAddress, m.localPort),
        dstPrincipal: m.scheme === 'https' ? this.#source.mesh.credentials.current?.spiffeId : undefined,
        tls: m.scheme === 'https',
      };
      for (const s of this.#streams) s.request(m.request, r);
    });
    this.#on(responseChannels.inbound, (m: InboundResponseMessage) => {
      if (!mine(m)) return;
      const p: TapResponse = {
        direction: 'in',
        status: m.status,
        grpcStatus: m.grpcStatus >= 0 ? m.grpcStatus : undefined,
        latencyUs: Math.round(m.latencyMs * 1000),
        headers: m.headerNames.length === 0 ? undefined : m.headerNames,
      };
      for (const s of this.#streams) s.response(m.request, p);
    });
    this.#on(channels.inboundEnd, (m: InboundEndMessage) => {
      if (!mine(m)) return;
      const principal = m.peer?.principal;
      const e: TapEnd = {
        direction: 'in',
        status: m.status,
        grpcStatus: m.protocol === 'grpc' && m.grpcStatus >= 0 ? m.grpcStatus : undefined,
        flags: m.flags === '' ? '-' : m.flags,
        latencyMs: micros(m.durationMs),
        requestBytes: m.requestBytes,
        responseBytes: m.responseBytes,
        details: m.details === '' ? undefined : m.details,
        srcPrincipal: principal === undefined || principal === '' ? undefined : principal,
      };
      for (const s of this.#streams) s.end(m.request, e);
    });
  }

  /** The `req` record of an outbound call, at its first attempt (or at its end, `ended`, when it made none). */
  #outboundRequest(call: object, clusterName: string | undefined, endpoint: string | undefined, ended?: CallEndMessage): void {
    const src = this.#source.sourceIp ?? this.#local.of(endpoint);
    this.#started.set(call, src);
    const entered = this.#entered.get(call) ?? ended;
    this.#entered.delete(call);
    if (entered === undefined) return; // it entered before the tap started
    const ex = call as TappedExchange;
    const cs = ex.cluster as ClusterState | undefined;
    const host = ex.host as HostState | undefined;
    const tls = this.#upstreamTls(ex, cs, host);
    const local = this.#source.mesh.credentials.current?.spiffeId;
    const ep = host?.endpoint;
    const r: TapRequest = {
      direction: 'out',
      protocol: entered.protocol,
      method: entered.method,
      scheme: ex.scheme ?? 'http',
      authority: entered.authority,
      path: withoutQuery(entered.path),
      route: ended === undefined ? ex.route?.name : ended.route,
      cluster: clusterName,
      srcAddress: src,
      srcPrincipal: tls === 'mtls' ? local : undefined,
      dstAddress: endpoint,
      dstPrincipal: tls === 'mtls' && ep !== undefined ? `spiffe://${this.#source.trustDomain}/ns/${ep.namespace}/sa/${ep.serviceAccount}` : undefined,
      dstService: cs?.cluster.host ?? ended?.destinationService,
      tls: tls !== 'none',
      mirror: ex.mirror === true ? true : undefined,
    };
    for (const s of this.#streams) s.request(call, r);
  }

  /** How the call's connection to its endpoint is secured, as the transport decides it (DestinationRule `tls`, auto-mTLS). */
  #upstreamTls(ex: TappedExchange, cs: ClusterState | undefined, host: HostState | undefined): 'mtls' | 'tls' | 'none' {
    if (cs !== undefined && host !== undefined && !cs.passthrough) {
      const credentials = this.#source.mesh.credentials.current;
      const snapshot = this.#source.mesh.snapshot;
      let memo = this.#tls.get(host);
      if (memo === undefined || memo.snapshot !== snapshot || memo.cluster !== cs.cluster || memo.endpoint !== host.endpoint || memo.credentials !== credentials) {
        const d = this.#source.mesh.parts.transport.tlsDecision(cs, host.endpoint);
        memo = { snapshot, cluster: cs.cluster, endpoint: host.endpoint, credentials, tls: d.failure !== undefined || d.mode === 'DISABLE' ? 'none' : d.mode === 'ISTIO_MUTUAL' ? 'mtls' : 'tls' };
        this.#tls.set(host, memo);
      }
      if (memo.tls !== 'none') return memo.tls;
    }
    return ex.scheme === 'https' ? 'tls' : 'none';
  }

  #on<T>(ch: Channel, fn: (m: T) => void): void {
    const f = fn as (m: unknown) => void;
    ch.subscribe(f);
    this.#subscriptions.push([ch, f]);
  }

  #unsubscribe(): void {
    this.#local.stop();
    for (const [ch, f] of this.#subscriptions) ch.unsubscribe(f);
    this.#subscriptions.length = 0;
  }
}

/** Envoy's response flag for a mirror copy's attempt that got no answer. */
function mirrorFlag(failure: string): string {
  if (failure === 'connect-failure') return 'UF';
  if (failure === 'reset' || failure === 'remote-reset' || failure === 'refused-stream') return 'UC';
  if (failure === 'protocol') return 'UPE';
  // Its timeout (the route's) ended it, or the mesh closing did.
  if (failure === 'cancelled') return 'UT';
  return '-';
}

/** The names of a head's headers (never their values), or undefined when it has none. */
function names(h: Readonly<Record<string, unknown>>): string[] | undefined {
  const n = Object.keys(h).filter((k) => h[k] !== undefined);
  return n.length === 0 ? undefined : n;
}

/** Milliseconds to the microsecond. */
function micros(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
