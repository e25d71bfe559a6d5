/**
 * The SSE push hub behind `GET /v1/watch`: one stream per connected workload. Each stream
 * gets `hello`, then `config` and `endpoints` for the parts the client does not have yet
 * (its `Last-Event-ID`), then every change as soon as the store or registry reports it.
 *
 * Endpoints are per namespace ({@link EndpointView}: the registered workloads the services visible
 * to it select). A registry change is pushed to a stream as an `endpoints-delta` event (only what
 * changed) when the client asked for them and holds the version the delta starts from; otherwise
 * as a full `endpoints` event. One shared interval writes `: ping` to every stream. A stream whose
 * client has not read what was written gets nothing more until it drains, then the latest state
 * only; one whose unsent data still grows past a bound is dropped, and its client reconnects. A workload identity may hold at most `maxWatchesPerWorkload` streams (429 beyond).
 *
 * With a CA, each stream also gets a `trust-bundle` event (the roots to trust) after `hello` and
 * whenever the bundle changes (a root rotation); clients that do not know the event ignore it.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { eventId, type HelloEvent, type MeshConfigEvent, parseEventId, type TrustBundleEvent, type WatchQuery } from '../control-plane/protocol.ts';
import { EndpointView, type ViewChange } from './endpoint-views.ts';
import { ControlPlaneError } from './errors.ts';
import { PayloadCache } from './filter.ts';
import type { ServerLogger } from './logger.ts';
import type { ControlPlaneMetrics, PushType } from './metrics/control-plane-metrics.ts';
import type { StatusBoard } from './status.ts';
import type { ConfigStore, RegistryChange, RegistryStore } from './store.ts';

/** Options of {@link PushHub}. */
export interface PushHubOptions {
  readonly store: ConfigStore;
  readonly registry: RegistryStore;
  readonly board: StatusBoard;
  /** Names this replica in `hello` and in connection ids. */
  readonly serverId: string;
  /** Interval of `: ping` comments. */
  readonly heartbeatMs: number;
  /** Root namespace for policy filtering. */
  readonly rootNamespace: string;
  /** Unsent bytes after which a stream is dropped. @defaultValue 8 MiB */
  readonly maxBufferedBytes?: number;
  /** Streams one workload identity (`namespace/service`) may have open. @defaultValue unlimited */
  readonly maxStreamsPerWorkload?: number;
  /** The trust bundle to push (the CA's); none without a CA. */
  readonly trustBundle?: () => TrustBundleEvent;
  /** The MeshConfig to push (`--mesh-config`; `{}` without one); none: no `mesh-config` event. */
  readonly meshConfig?: () => MeshConfigEvent;
  readonly logger?: ServerLogger;
  /** Counts pushes and how long changes took to be written. */
  readonly metrics?: ControlPlaneMetrics;
}

/** How one stream is served, besides its query. */
export interface StreamOptions {
  /** The client applies `endpoints-delta` events. */
  readonly delta: boolean;
  /** Query labels the token does not prove (told in `hello`). */
  readonly ignoredLabels?: readonly string[];
}

interface Stream {
  readonly id: string;
  readonly query: WatchQuery;
  readonly res: ServerResponse;
  readonly delta: boolean;
  readonly identity: string;
  /** The versions the client has (from its Last-Event-ID, then from what was written). */
  config: string;
  endpoints: string;
  /** The trust bundle version written to it ('' before any). */
  bundle: string;
  /** The MeshConfig version written to it ('' before any). */
  meshConfig: string;
  /** A change was held back while the client had not read what was written: the latest state goes at 'drain'. */
  behind: boolean;
}

const PING = Buffer.from(': ping\n\n');
const TRAILER = Buffer.from('\n\n');

/**
 * The client has not read what was written: the response's unsent bytes (its own and its
 * socket's) at its high-water mark — Node's own test for 'drain', read from the counters, not
 * from `writableNeedDrain`, which Node 22 can leave set for good (and 'drain' never emitted)
 * after a corked write that filled the socket (nodejs/node#60432): a stream held back on it
 * got no event nor ping again.
 */
function stalled(res: ServerResponse): boolean {
  return res.writableLength >= (res.writableHighWaterMark || 16 * 1024);
}

/** Fans config and endpoint changes out to watch streams. */
export class PushHub {
  readonly #o: PushHubOptions;
  readonly #streams = new Map<string, Stream>();
  readonly #cache: PayloadCache;
  /** Endpoint views of the namespaces that have streams, with how many. */
  readonly #views = new Map<string, { view: EndpointView; streams: number }>();
  /** Open streams per workload identity. */
  readonly #perIdentity = new Map<string, number>();
  readonly #maxBuffered: number;
  readonly #heartbeat: NodeJS.Timeout;
  readonly #idPrefix = randomBytes(3).toString('hex');
  #counter = 0;
  #closed = false;
  /** The bundle event's text, made once per version. */
  #bundleEvent: { version: string; text: string } | undefined;

  constructor(options: PushHubOptions) {
    this.#o = options;
    this.#cache = new PayloadCache(options.rootNamespace);
    this.#maxBuffered = options.maxBufferedBytes ?? 8 * 1024 * 1024;
    options.store.onChange((state) => {
      const at = this.#o.metrics?.configChanged(state.version);
      for (const s of this.#streams.values()) this.#sendConfig(s, at);
      const records = () => this.#o.registry.list();
      this.#distribute((view) => view.reconfigure(state.resources, records), at);
    });
    options.registry.onChange((change: RegistryChange | undefined) => {
      const records = () => this.#o.registry.list();
      this.#distribute((view) => view.apply(change ?? { kind: 'reset' }, records), this.#o.metrics?.now());
    });
    this.#heartbeat = setInterval(() => {
      for (const s of this.#streams.values()) {
        if (stalled(s.res)) continue;
        // A stream held back whose client has read everything since (its 'drain' may not have come).
        if (s.behind) this.#catchUp(s);
        else this.#write(s, [PING]);
      }
    }, options.heartbeatMs);
    this.#heartbeat.unref();
  }

  /** Streams open now. */
  get size(): number {
    return this.#streams.size;
  }

  /**
   * Serves one `GET /v1/watch` (the caller has authenticated it and settled the query: the labels
   * are the ones the token proves). Throws a `LIMIT_EXCEEDED` {@link ControlPlaneError} before
   * answering when the identity has as many streams as it may.
   */
  open(req: IncomingMessage, res: ServerResponse, query: WatchQuery, peer: string, options: StreamOptions = { delta: false }): void {
    if (this.#closed) {
      res.writeHead(503).end();
      return;
    }
    const identity = `${query.namespace}/${query.service}`;
    const open = this.#perIdentity.get(identity) ?? 0;
    const max = this.#o.maxStreamsPerWorkload;
    if (max !== undefined && open >= max) {
      throw new ControlPlaneError(
        'LIMIT_EXCEEDED',
        `watch: workload ${identity} already has ${max} watch streams open on this server, the limit (maxWatchesPerWorkload, --max-watches-per-workload)`,
      );
    }
    const last = parseEventId(req.headers['last-event-id'] as string | undefined);
    const id = `${this.#o.serverId}-${this.#idPrefix}-${++this.#counter}`;
    const s: Stream = { id, query, res, delta: options.delta, identity, config: last.configVersion, endpoints: last.endpointsVersion, bundle: '', meshConfig: '', behind: false };
    req.socket.setNoDelay(true);
    req.socket.setKeepAlive(true);
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
      connection: 'close',
    });
    this.#streams.set(id, s);
    this.#o.metrics?.opened(id);
    this.#perIdentity.set(identity, open + 1);
    const view = this.#view(query.namespace);
    this.#o.board.connect({ connection: id, service: query.service, namespace: query.namespace, labels: query.labels, peer });
    // What the client resumed with and is current is not written again: it was sent (and applied) before.
    if (s.config !== '' && s.config === this.#o.store.current().version) this.#o.board.resumed(id, 'config', s.config);
    if (s.endpoints !== '' && s.endpoints === view.version) this.#o.board.resumed(id, 'endpoints', s.endpoints);
    res.on('close', () => {
      this.#o.metrics?.closed(id);
      if (!this.#streams.delete(id)) return;
      const n = (this.#perIdentity.get(identity) ?? 1) - 1;
      if (n <= 0) this.#perIdentity.delete(identity);
      else this.#perIdentity.set(identity, n);
      const v = this.#views.get(query.namespace);
      if (v !== undefined && --v.streams <= 0) this.#views.delete(query.namespace);
      this.#o.board.disconnect(id);
    });
    // What was held back while the client was not reading: only the latest state, once it reads.
    res.on('drain', () => this.#catchUp(s));
    const hello: HelloEvent = {
      connection: id,
      server: this.#o.serverId,
      configVersion: this.#o.store.current().version,
      endpointsVersion: view.version,
      heartbeatMs: this.#o.heartbeatMs,
      labels: query.labels,
      ...(options.ignoredLabels === undefined || options.ignoredLabels.length === 0 ? {} : { ignoredLabels: options.ignoredLabels }),
    };
    this.#write(s, [`event: hello\ndata: ${JSON.stringify(hello)}\n\n`]);
    // Before the config: the first config a mesh compiles is compiled with it.
    this.#sendMeshConfig(s);
    this.#sendBundle(s);
    this.#sendConfig(s);
    this.#sendFullEndpoints(s, view);
  }

  /** The trust bundle changed (a rotation here or on another replica): pushes it to every stream. */
  trustBundleChanged(): void {
    const at = this.#o.metrics?.now();
    for (const s of this.#streams.values()) this.#sendBundle(s, at);
  }

  /** The MeshConfig changed: pushes it to every stream (each a push, timed from now, as istiod's forced full push on a MeshConfig change). */
  meshConfigChanged(): void {
    const at = this.#o.metrics?.now();
    for (const s of this.#streams.values()) this.#sendMeshConfig(s, at);
  }

  #sendMeshConfig(s: Stream, changedAt?: number): void {
    const mc = this.#o.meshConfig?.();
    if (mc === undefined || s.meshConfig === mc.version) return;
    const text = `event: mesh-config\ndata: ${JSON.stringify(mc)}\n\n`;
    if (this.#write(s, [text])) {
      s.meshConfig = mc.version;
      this.#pushed('mesh-config', [text], changedAt);
    }
  }

  #sendBundle(s: Stream, changedAt?: number): void {
    const bundle = this.#o.trustBundle?.();
    if (bundle === undefined || s.bundle === bundle.version) return;
    if (this.#bundleEvent?.version !== bundle.version) {
      this.#bundleEvent = { version: bundle.version, text: `event: trust-bundle\ndata: ${JSON.stringify({ version: bundle.version, roots: bundle.roots } satisfies TrustBundleEvent)}\n\n` };
    }
    if (this.#write(s, [this.#bundleEvent.text])) {
      s.bundle = bundle.version;
      this.#pushed('trust-bundle', [this.#bundleEvent.text], changedAt);
    }
  }

  /** Ends every stream and keeps serving: the token signing key changed, and each client must authenticate again. */
  endStreams(): void {
    for (const s of [...this.#streams.values()]) s.res.end();
  }

  /** Ends every stream (clients reconnect, possibly to another replica) and stops the heartbeat. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#heartbeat);
    for (const s of this.#streams.values()) s.res.end();
    this.#streams.clear();
  }

  /** The view of `namespace`, made (and counted) for a new stream. */
  #view(namespace: string): EndpointView {
    let v = this.#views.get(namespace);
    if (v === undefined) {
      v = { view: new EndpointView(namespace, this.#o.store.current().resources, this.#o.registry.list()), streams: 0 };
      this.#views.set(namespace, v);
    }
    v.streams++;
    return v.view;
  }

  /** Applies a change to every open view and writes what changed to the streams of its namespace. */
  #distribute(change: (view: EndpointView) => ViewChange | undefined, at?: number): void {
    const changes = new Map<string, ViewChange>();
    for (const [ns, { view }] of this.#views) {
      const c = change(view);
      if (c !== undefined) changes.set(ns, c);
    }
    if (changes.size === 0) return;
    const m = this.#o.metrics;
    if (m !== undefined) for (const c of changes.values()) m.endpointsChanged(c.version, at);
    for (const s of this.#streams.values()) {
      const c = changes.get(s.query.namespace);
      if (c === undefined) continue;
      if (s.delta && s.endpoints === c.base) {
        const chunks = [`event: endpoints-delta\nid: ${eventId(s.config, c.version)}\ndata: `, c.delta, TRAILER];
        if (this.#write(s, chunks)) {
          this.#sentEndpoints(s, c.version);
          this.#pushed('endpoints-delta', chunks, at);
        }
      } else this.#sendFullEndpoints(s, this.#views.get(s.query.namespace)!.view, at);
    }
  }

  #sendConfig(s: Stream, changedAt?: number): void {
    const state = this.#o.store.current();
    if (s.config === state.version) return;
    const data = this.#cache.config(state, s.query);
    const chunks = [`event: config\nid: ${eventId(state.version, s.endpoints)}\ndata: `, data, TRAILER];
    if (this.#write(s, chunks)) {
      s.config = state.version;
      this.#o.board.sent(s.id, 'config', state.version);
      this.#pushed('config', chunks, changedAt);
    }
  }

  #sendFullEndpoints(s: Stream, view: EndpointView, changedAt?: number): void {
    const version = view.version;
    if (s.endpoints === version) return;
    const chunks = [`event: endpoints\nid: ${eventId(s.config, version)}\ndata: `, view.full(), TRAILER];
    if (this.#write(s, chunks)) {
      this.#sentEndpoints(s, version);
      this.#pushed('endpoints', chunks, changedAt);
    }
  }

  /** Counts a push (and, when a change made it, how long after the change it was written). */
  #pushed(type: PushType, chunks: readonly (string | Buffer)[], changedAt: number | undefined): void {
    const m = this.#o.metrics;
    if (m === undefined) return;
    let bytes = 0;
    for (const c of chunks) bytes += typeof c === 'string' ? Buffer.byteLength(c) : c.length;
    m.pushed(type, bytes, changedAt);
  }

  #sentEndpoints(s: Stream, version: string): void {
    s.endpoints = version;
    this.#o.board.sent(s.id, 'endpoints', version);
  }

  /** Sends a held-back stream the latest state, once its client has read what was written. */
  #catchUp(s: Stream): void {
    if (!s.behind || !this.#streams.has(s.id) || stalled(s.res)) return;
    s.behind = false;
    this.#sendMeshConfig(s);
    this.#sendBundle(s);
    this.#sendConfig(s);
    const v = this.#views.get(s.query.namespace);
    if (v !== undefined) this.#sendFullEndpoints(s, v.view);
  }

  /**
   * Writes an event. While the client has not read what was written before (the response needs
   * 'drain'), a change is held back instead — the stream's versions stay, and at 'drain' it is sent
   * the latest state, not every version in between (istiod merges the pushes queued for a
   * connection the same way: pilot/pkg/xds/pushqueue.go `Enqueue`). A stream whose unsent bytes
   * still pass the bound (one huge event) is dropped.
   */
  #write(s: Stream, chunks: readonly (string | Buffer)[]): boolean {
    const { res } = s;
    if (res.destroyed || res.writableEnded) return false;
    // A response's writableLength already includes its socket's (Node's OutgoingMessage): adding
    // the socket's again counted every unsent byte twice, and dropped streams after one 4 MiB event.
    const pending = res.writableLength;
    if (pending > this.#maxBuffered) {
      this.#o.logger?.warn(`dropping watch stream ${s.id} (${s.query.namespace}/${s.query.service}): ${pending} bytes unsent; the client will reconnect`);
      res.destroy();
      return false;
    }
    if (stalled(res)) {
      s.behind = true;
      return false;
    }
    // One chunk of the chunked response and one socket write per event.
    res.cork();
    for (const c of chunks) res.write(c);
    res.uncork();
    return true;
  }
}
