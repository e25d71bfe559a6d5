/**
 * The SSE push hub behind `GET /v1/watch`: one stream per connected workload. Each stream
 * gets `hello`, then `config` and `endpoints` for the parts the client does not have yet
 * (its `Last-Event-ID`), then every change as soon as the store reports it. One shared
 * interval writes `: ping` to every stream; a stream whose unsent data grows past a bound
 * (a client that stopped reading) is dropped, and its client reconnects.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { eventId, type HelloEvent, parseEventId, type WatchQuery } from '../control-plane/protocol.ts';
import { PayloadCache } from './filter.ts';
import type { ServerLogger } from './logger.ts';
import type { StatusBoard } from './status.ts';
import type { ConfigStore, RegistryStore } from './store.ts';

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
  readonly logger?: ServerLogger;
}

interface Stream {
  readonly id: string;
  readonly query: WatchQuery;
  readonly res: ServerResponse;
  /** The versions the client has (from its Last-Event-ID, then from what was written). */
  config: string;
  endpoints: string;
}

const PING = Buffer.from(': ping\n\n');
const TRAILER = Buffer.from('\n\n');

/** Fans config and endpoint changes out to watch streams. */
export class PushHub {
  readonly #o: PushHubOptions;
  readonly #streams = new Map<string, Stream>();
  readonly #cache: PayloadCache;
  readonly #maxBuffered: number;
  readonly #heartbeat: NodeJS.Timeout;
  readonly #idPrefix = randomBytes(3).toString('hex');
  #counter = 0;
  #closed = false;

  constructor(options: PushHubOptions) {
    this.#o = options;
    this.#cache = new PayloadCache(options.rootNamespace);
    this.#maxBuffered = options.maxBufferedBytes ?? 8 * 1024 * 1024;
    options.store.onChange(() => {
      for (const s of this.#streams.values()) this.#sendConfig(s);
    });
    options.registry.onChange(() => {
      for (const s of this.#streams.values()) this.#sendEndpoints(s);
    });
    this.#heartbeat = setInterval(() => {
      for (const s of this.#streams.values()) this.#write(s, [PING]);
    }, options.heartbeatMs);
    this.#heartbeat.unref();
  }

  /** Streams open now. */
  get size(): number {
    return this.#streams.size;
  }

  /** Serves one `GET /v1/watch` (the caller has authenticated it and parsed the query). */
  open(req: IncomingMessage, res: ServerResponse, query: WatchQuery, peer: string): void {
    if (this.#closed) {
      res.writeHead(503).end();
      return;
    }
    const last = parseEventId(req.headers['last-event-id'] as string | undefined);
    const id = `${this.#o.serverId}-${this.#idPrefix}-${++this.#counter}`;
    const s: Stream = { id, query, res, config: last.configVersion, endpoints: last.endpointsVersion };
    req.socket.setNoDelay(true);
    req.socket.setKeepAlive(true);
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
      connection: 'close',
    });
    this.#streams.set(id, s);
    this.#o.board.connect({ connection: id, service: query.service, namespace: query.namespace, labels: query.labels, peer });
    res.on('close', () => {
      this.#streams.delete(id);
      this.#o.board.disconnect(id);
    });
    const hello: HelloEvent = {
      connection: id,
      server: this.#o.serverId,
      configVersion: this.#o.store.current().version,
      endpointsVersion: this.#o.registry.version(),
      heartbeatMs: this.#o.heartbeatMs,
    };
    this.#write(s, [`event: hello\ndata: ${JSON.stringify(hello)}\n\n`]);
    this.#sendConfig(s);
    this.#sendEndpoints(s);
  }

  /** Ends every stream (clients reconnect, possibly to another replica) and stops the heartbeat. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#heartbeat);
    for (const s of this.#streams.values()) s.res.end();
    this.#streams.clear();
  }

  #sendConfig(s: Stream): void {
    const state = this.#o.store.current();
    if (s.config === state.version) return;
    const data = this.#cache.config(state, s.query);
    if (this.#write(s, [`event: config\nid: ${eventId(state.version, s.endpoints)}\ndata: `, data, TRAILER])) {
      s.config = state.version;
      this.#o.board.sent(s.id, 'config', state.version);
    }
  }

  #sendEndpoints(s: Stream): void {
    const { registry } = this.#o;
    const version = registry.version();
    if (s.endpoints === version) return;
    const data = this.#cache.endpoints(version, () => registry.list());
    if (this.#write(s, [`event: endpoints\nid: ${eventId(s.config, version)}\ndata: `, data, TRAILER])) {
      s.endpoints = version;
      this.#o.board.sent(s.id, 'endpoints', version);
    }
  }

  /** Writes an event unless the client stopped reading; then drops the stream. */
  #write(s: Stream, chunks: readonly (string | Buffer)[]): boolean {
    const { res } = s;
    if (res.destroyed || res.writableEnded) return false;
    const pending = res.writableLength + (res.socket?.writableLength ?? 0);
    if (pending > this.#maxBuffered) {
      this.#o.logger?.warn(`dropping watch stream ${s.id} (${s.query.namespace}/${s.query.service}): ${pending} bytes unsent; the client will reconnect`);
      res.destroy();
      return false;
    }
    // One chunk of the chunked response and one socket write per event.
    res.cork();
    for (const c of chunks) res.write(c);
    res.uncork();
    return true;
  }
}
