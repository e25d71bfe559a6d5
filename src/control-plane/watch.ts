/**
 * One watch at a time on `GET /v1/watch`: reads the SSE stream, validates each `config` and
 * `endpoints` event, compiles the result and hands it over to be swapped in atomically, ACKs
 * or NACKs every version it received, detects a dead stream by missed heartbeats, and
 * reconnects with full-jitter backoff over the control-plane URLs.
 *
 * After `hello` the events the server announced (a version differing from ours) are awaited
 * and applied together, so a mesh never routes on new config with old endpoints or the other
 * way round. An invalid event is NACKed with its printed issues and the last good state stays.
 *
 * @module
 */
import type { Clock, Timer } from '../core/clock.ts';
import { ConfigError, type MeshletError } from '../core/errors.ts';
import { IssueList } from '../config/issues.ts';
import type { Snapshot, WorkloadInfo } from '../routing/compile.ts';
import type { UrlRotation } from './backoff.ts';
import { type ControlPlaneHttp, controlPlaneError, statusError } from './http.ts';
import {
  ACK_PATH,
  type AckRequest,
  type ConfigEvent,
  type EndpointsEvent,
  eventId,
  formatLabels,
  HEARTBEAT_MISSES,
  type HelloEvent,
  parseEventId,
  WATCH_PATH,
} from './protocol.ts';
import { SseParser, type SseEvent } from './sse.ts';
import { type CheckOptions, checkConfigAsync, checkWorkloads, compileStateAsync, EMPTY_STATE, type GoodState, parseEventAsync, reasons } from './state.ts';

/** What a watch reports. */
export interface WatchListener {
  /** A stream is up (`hello` received). */
  connected(url: string, hello: HelloEvent): void;
  /** A new good state, compiled; install `snapshot` now. */
  applied(state: GoodState, snapshot: Snapshot, url: string): void;
  /** A received version was invalid and NACKed; the last good state stays. */
  rejected(kind: 'config' | 'endpoints', version: string, issues: IssueList, error: ConfigError, url: string): void;
  /** A connection attempt failed or a stream ended; `wasConnected` when it had got as far as `hello`. */
  failed(error: MeshletError, info: { readonly url: string; readonly wasConnected: boolean; readonly roundFailed: boolean; readonly cause: unknown }): void;
}

/** Options of {@link Watch}. */
export interface WatchOptions {
  readonly http: ControlPlaneHttp;
  readonly rotation: UrlRotation;
  readonly workload: Required<WorkloadInfo>;
  readonly check: CheckOptions;
  readonly clock: Clock;
  /** Longest wait for the response headers and `hello`. */
  readonly connectTimeoutMs: number;
  readonly listener: WatchListener;
}

type Kind = 'config' | 'endpoints';

interface Staged {
  config?: { version: string; value: GoodState['resources']; wire: GoodState['wireResources']; findings: GoodState['findings'] };
  endpoints?: { version: string; value: GoodState['workloads']; wire: GoodState['wireWorkloads'] };
}

/** The watch loop; {@link Watch.start} once, {@link Watch.close} at the end. */
export class Watch {
  readonly #o: WatchOptions;
  #state: GoodState = EMPTY_STATE;
  #closed = false;
  #abort: AbortController | undefined;
  #sleepTimer: Timer | undefined;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  readonly #posts = new Set<Promise<void>>();
  /** ACKs/NACKs not sent yet (they go out after the current I/O callbacks, see #post). */
  #outbox: { url: string; body: AckRequest }[] = [];
  // Per stream:
  #connection = '';
  #pending = new Set<Kind>();
  #staged: Staged = {};

  constructor(o: WatchOptions) {
    this.#o = o;
  }

  /** The last good state (what the next connection says it has in `Last-Event-ID`). */
  get state(): GoodState {
    return this.#state;
  }

  /** Seeds the state (from the cache) before or while running. */
  seed(state: GoodState): void {
    this.#state = state;
  }

  /** Starts the loop (once). */
  start(): void {
    this.#loop ??= this.#run();
  }

  async #run(): Promise<void> {
    const rotation = this.#o.rotation;
    while (!this.#closed) {
      const url = rotation.current;
      const { error, wasConnected } = await this.#stream(url);
      if (this.#closed) return;
      const delay = rotation.next();
      this.#o.listener.failed(controlPlaneError(url, error), { url, wasConnected, roundFailed: rotation.roundFailed, cause: error });
      if (this.#closed) return;
      if (delay > 0) await this.#sleep(delay);
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#sleepTimer = this.#o.clock.setTimer(resolve, ms);
    });
  }

  /** One stream on `url`; resolves with why it ended. */
  async #stream(url: string): Promise<{ error: unknown; wasConnected: boolean }> {
    const { clock, http, workload } = this.#o;
    const ac = new AbortController();
    this.#abort = ac;
    this.#connection = '';
    this.#pending = new Set();
    this.#staged = {};
    let connected = false;
    let last = clock.now();
    let limit = this.#o.connectTimeoutMs;
    let timer: Timer | undefined;
    // Events are handled one after the other, each checked and compiled in slices that let the
    // event loop run (a large config takes hundreds of ms); the stream is read meanwhile.
    let work: Promise<void> = Promise.resolve();
    const queue = (fn: () => Promise<void>): void => {
      work = work.then(() => (this.#closed ? undefined : fn())).catch((err: unknown) => ac.abort(err));
    };
    const arm = (ms: number) => {
      timer = clock.setTimer(() => {
        const idle = clock.now() - last;
        if (idle < limit) return arm(limit - idle);
        ac.abort(new Error(connected ? `no data for ${limit} ms (${HEARTBEAT_MISSES} heartbeats missed)` : `no hello within ${limit} ms`));
      }, ms);
    };
    arm(limit);
    try {
      const query = new URLSearchParams({ service: workload.service, namespace: workload.namespace, labels: formatLabels(workload.labels) });
      const extra: Record<string, string> = { accept: 'text/event-stream', 'cache-control': 'no-cache' };
      if (this.#state.configVersion !== '' || this.#state.endpointsVersion !== '') extra['last-event-id'] = eventId(this.#state.configVersion, this.#state.endpointsVersion);
      const res = await http.agent.request({
        origin: url,
        path: `${WATCH_PATH}?${query}`,
        method: 'GET',
        headers: http.headers(extra),
        signal: ac.signal,
        headersTimeout: 0,
        bodyTimeout: 0,
      });
      if (res.statusCode !== 200) throw statusError(res.statusCode, await res.body.text());
      const parser = new SseParser({
        onEvent: (e) => {
          if (this.#closed) return;
          if (e.event === 'hello') {
            const hello = this.#hello(e, url);
            connected = true;
            limit = HEARTBEAT_MISSES * hello.heartbeatMs;
            timer?.clear();
            arm(limit);
          } else queue(() => this.#event(e, url));
        },
        onComment: () => queue(() => this.#flush(url)),
      });
      for await (const chunk of res.body) {
        last = clock.now();
        parser.push(chunk as Uint8Array);
      }
      throw new Error('the server ended the stream');
    } catch (e) {
      const reason: unknown = ac.signal.aborted ? ac.signal.reason : e;
      return { error: reason, wasConnected: connected };
    } finally {
      timer?.clear();
      if (!ac.signal.aborted) ac.abort();
      // Events received before the stream ended are still applied, in order, before a reconnect.
      await work;
    }
  }

  #hello(e: SseEvent, url: string): HelloEvent {
    const hello = JSON.parse(e.data) as HelloEvent;
    if (typeof hello?.connection !== 'string' || !(hello.heartbeatMs > 0)) throw new Error(`malformed hello: ${e.data.slice(0, 200)}`);
    this.#connection = hello.connection;
    if (hello.configVersion !== this.#state.configVersion) this.#pending.add('config');
    if (hello.endpointsVersion !== this.#state.endpointsVersion) this.#pending.add('endpoints');
    this.#o.rotation.succeeded();
    this.#o.listener.connected(url, hello);
    return hello;
  }

  async #event(e: SseEvent, url: string): Promise<void> {
    if (e.event !== 'config' && e.event !== 'endpoints') return; // unknown events: newer servers
    const kind: Kind = e.event;
    let body: ConfigEvent | EndpointsEvent;
    try {
      body = (await parseEventAsync(e.data)) as ConfigEvent | EndpointsEvent;
      if (typeof body?.version !== 'string') throw new Error('no version');
    } catch (err) {
      const ids = parseEventId(e.id);
      const version = kind === 'config' ? ids.configVersion : ids.endpointsVersion;
      this.#nack(url, kind, version, undefined, [`malformed ${kind} event: ${String(err)}`]);
      return;
    }
    this.#pending.delete(kind);
    const current = kind === 'config' ? this.#state.configVersion : this.#state.endpointsVersion;
    if (body.version === current && this.#staged[kind] === undefined) {
      this.#ack(url, kind, body.version);
    } else if (kind === 'config') {
      const wire = (body as ConfigEvent).resources;
      const checked = await checkConfigAsync(wire, `control-plane config ${body.version}`, this.#o.check, e.data);
      if (this.#closed) return;
      if (checked.ok) this.#staged.config = { version: body.version, value: checked.value, wire, findings: checked.findings };
      else this.#nack(url, kind, body.version, checked.issues, reasons(checked.issues));
    } else {
      const wire = (body as EndpointsEvent).workloads;
      const checked = checkWorkloads(wire, `control-plane endpoints ${body.version}`, this.#o.check);
      if (checked.ok) this.#staged.endpoints = { version: body.version, value: checked.value, wire };
      else this.#nack(url, kind, body.version, checked.issues, reasons(checked.issues));
    }
    if (this.#pending.size === 0) await this.#flush(url);
  }

  /** Compiles and hands over what is staged (when nothing more was announced). */
  async #flush(url: string): Promise<void> {
    this.#pending.clear();
    const { config, endpoints } = this.#staged;
    if (config === undefined && endpoints === undefined) return;
    this.#staged = {};
    const s = this.#state;
    const next: GoodState = {
      configVersion: config?.version ?? s.configVersion,
      resources: config?.value ?? s.resources,
      wireResources: config?.wire ?? s.wireResources,
      endpointsVersion: endpoints?.version ?? s.endpointsVersion,
      workloads: endpoints?.value ?? s.workloads,
      wireWorkloads: endpoints?.wire ?? s.wireWorkloads,
      findings: config?.findings ?? s.findings,
    };
    let snapshot: Snapshot;
    try {
      snapshot = await compileStateAsync(next, this.#o.workload);
    } catch (e) {
      const why = [`compiling failed: ${e instanceof Error ? e.message : String(e)}`];
      if (config !== undefined) this.#nack(url, 'config', config.version, undefined, why);
      if (endpoints !== undefined) this.#nack(url, 'endpoints', endpoints.version, undefined, why);
      return;
    }
    if (this.#closed) return;
    this.#state = next;
    this.#o.listener.applied(next, snapshot, url);
    if (config !== undefined) this.#ack(url, 'config', config.version);
    if (endpoints !== undefined) this.#ack(url, 'endpoints', endpoints.version);
  }

  #nack(url: string, kind: Kind, version: string, checked: IssueList | undefined, why: string[]): void {
    let issues = checked;
    if (issues === undefined) {
      issues = new IssueList();
      for (const w of why) issues.file(`control-plane ${kind} ${version}`, undefined, 'error', w);
    }
    this.#post(url, { connection: this.#connection, kind, version, status: 'NACK', reasons: why });
    this.#o.listener.rejected(kind, version, issues, new ConfigError(issues.all), url);
  }

  #ack(url: string, kind: Kind, version: string): void {
    this.#post(url, { connection: this.#connection, kind, version, status: 'ACK' });
  }

  /**
   * Sends an ACK/NACK once the I/O callbacks that are running are done (setImmediate): the
   * change is in use already, and a process whose meshes all receive the same push (tests,
   * several meshes in one process) applies it in every mesh before any of them talks back.
   */
  #post(url: string, body: AckRequest): void {
    if (this.#connection === '' || this.#closed) return;
    if (this.#outbox.length === 0) setImmediate(() => this.#sendOutbox());
    this.#outbox.push({ url, body });
  }

  #sendOutbox(): void {
    const out = this.#outbox;
    this.#outbox = [];
    for (const { url, body } of out) {
      // An ACK that does not arrive only makes the status stale; the stream itself is what matters.
      const p = this.#o.http.call(url, { method: 'POST', path: ACK_PATH, body }).then(
        () => undefined,
        () => undefined,
      );
      this.#posts.add(p);
      void p.finally(() => this.#posts.delete(p));
    }
  }

  /** Lets ACKs/NACKs in flight finish (up to 1 s; the server takes them only while the stream is open), then stops the stream and the loop. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#sendOutbox();
    if (this.#posts.size > 0) {
      let timer: Timer | undefined;
      await Promise.race([Promise.all(this.#posts), new Promise<void>((r) => (timer = this.#o.clock.setTimer(r, 1000, true)))]);
      timer?.clear();
    }
    this.#abort?.abort(new Error('closed'));
    this.#sleepTimer?.clear();
    this.#wake?.();
    await this.#loop;
  }
}
