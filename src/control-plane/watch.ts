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
 * The watch asks for `endpoints-delta` events: a registry change then costs one changed entry on
 * the wire instead of the whole list. A delta that does not start from the endpoints version this
 * client has cannot be applied: the stream is ended and opened again at once (a resync: the
 * `Last-Event-ID` says what the client has, and the server sends the whole list).
 *
 * Every duration taken from the server is clamped ({@link clampWireMs}): `hello.heartbeatMs` to
 * {@link MIN_HEARTBEAT_MS}..{@link MAX_HEARTBEAT_MS}. The SSE `retry` field is ignored: the
 * reconnect delay is the client's own backoff.
 *
 * A `mesh-config` event (the control plane's MeshConfig) that changes what compiles read compiles
 * the state in use again. The stream itself — the request, reading it, telling a dead one by
 * missed heartbeats — is in `watch-stream.ts`.
 *
 * @module
 */
import { compileCurrent, type GatewayNames } from '../outbound/gateway-names.ts';
import type { Clock, Timer } from '../core/clock.ts';
import { ConfigError, type MeshletError } from '../core/errors.ts';
import { IssueList } from '../config/issues.ts';
import type { Snapshot, WorkloadInfo } from '../routing/compile.ts';
import type { UrlRotation } from './backoff.ts';
import { AckOutbox } from './ack-outbox.ts';
import { type ControlPlaneHttp, controlPlaneError } from './http.ts';
import {
  type AckRequest,
  boundNackReasons,
  clampWireMs,
  type ConfigEvent,
  type EndpointsDeltaEvent,
  type EndpointsEvent,
  eventId,
  type HelloEvent,
  MAX_HEARTBEAT_MS,
  type MeshConfigEvent,
  type TrustBundleEvent,
  MIN_HEARTBEAT_MS,
  parseEventId,
  type WireResource,
} from './protocol.ts';
import type { SseEvent } from './sse.ts';
import { type CheckOptions, checkConfigAsync, checkWorkloads, compileStateAsync, EMPTY_STATE, type GoodState, parseEventAsync, reasons, type StateCompileOptions } from './state.ts';
import { readWatchStream } from './watch-stream.ts';
import { parseTrustBundle } from './pushed-events.ts';
import { MeshConfigIntake } from './watch-mesh-config.ts';

/** What a watch reports. */
export interface WatchListener {
  /** A stream is up (`hello` received). */
  connected(url: string, hello: HelloEvent): void;
  /** A new good state, compiled; install `snapshot` now. */
  applied(state: GoodState, snapshot: Snapshot, url: string): void;
  /** A received version was invalid and NACKed; the last good state stays. */
  rejected(kind: 'config' | 'endpoints', version: string, issues: IssueList, error: ConfigError, url: string): void;
  /** A `trust-bundle` event (the roots to trust; a root rotation pushes a new one). */
  trustBundle?(bundle: TrustBundleEvent, url: string): void;
  /** A well-formed `mesh-config` event; true when the settings compiles read changed (the state in use is compiled again: {@link recompiled}). */
  meshConfig?(event: MeshConfigEvent, url: string): boolean;
  /** The state in use compiled again with changed mesh settings (its versions are unchanged); install `snapshot` now. */
  recompiled?(state: GoodState, snapshot: Snapshot): void;
  /** A connection attempt failed or a stream ended; `wasConnected` when it had got as far as `hello`. */
  failed(error: MeshletError, info: { readonly url: string; readonly wasConnected: boolean; readonly roundFailed: boolean; readonly cause: unknown }): void;
}

/** Options of {@link Watch}. */
export interface WatchOptions {
  readonly http: ControlPlaneHttp;
  readonly rotation: UrlRotation;
  readonly workload: Required<WorkloadInfo>;
  /** The mesh's settings each compile reads: its root namespace, this workload's network and MeshNetworks, the default retry policy (see `ControlPlaneSourceOptions`). */
  readonly mesh: StateCompileOptions;
  /** The mesh's gateway host names: a compile that uses one without an answer yet waits for it (bounded). */
  readonly gatewayNames?: GatewayNames | undefined;
  readonly check: CheckOptions;
  readonly clock: Clock;
  /** Longest wait for the response headers and `hello`. */
  readonly connectTimeoutMs: number;
  readonly listener: WatchListener;
  /** Where a malformed event that is not NACKed (a trust bundle) is reported. */
  readonly onWarning?: (message: string) => void;
}

type Kind = 'config' | 'endpoints';

/** Why a stream is ended to resync: a delta that does not chain onto the endpoints the client has. */
class ResyncNeeded extends Error {}

/** Longest wait before reconnecting after resyncs that keep failing to chain. */
const MAX_RESYNC_DELAY_MS = 15_000;

const refOf = (r: { metadata: { namespace?: string; name: string } }, ns: string): string => `${r.metadata.namespace ?? ns}/${r.metadata.name}`;

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
  /** ACKs/NACKs (they go out after the current I/O callbacks). */
  readonly #acks: AckOutbox;
  // Per stream:
  #connection = '';
  #pending = new Set<Kind>();
  #staged: Staged = {};
  /** Resyncs in a row without anything applied in between (paces a server whose deltas never chain). */
  #resyncs = 0;
  /** The control plane's MeshConfig on each stream. */
  readonly #meshConfig: MeshConfigIntake;

  constructor(o: WatchOptions) {
    this.#o = o;
    this.#meshConfig = new MeshConfigIntake(o.listener.meshConfig?.bind(o.listener), (m) => o.onWarning?.(m));
    this.#acks = new AckOutbox(o.http, o.clock);
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
      if (error instanceof ResyncNeeded) {
        // Not an outage: the same URL again, at once the first time.
        const delay = this.#resyncs <= 1 ? 0 : Math.min(MAX_RESYNC_DELAY_MS, 250 * 2 ** (this.#resyncs - 2));
        if (delay > 0) await this.#sleep(delay);
        continue;
      }
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
    const ac = new AbortController();
    this.#abort = ac;
    this.#connection = '';
    this.#pending = new Set();
    this.#staged = {};
    this.#meshConfig.newStream();
    // Events are handled one after the other, each checked and compiled in slices that let the
    // event loop run (a large config takes hundreds of ms); the stream is read meanwhile.
    let work: Promise<void> = Promise.resolve();
    const queue = (fn: () => Promise<void>): void => {
      work = work.then(() => (this.#closed ? undefined : fn())).catch((err: unknown) => ac.abort(err));
    };
    const s = this.#state;
    const lastEventId = s.configVersion !== '' || s.endpointsVersion !== '' ? eventId(s.configVersion, s.endpointsVersion) : '';
    try {
      return await readWatchStream(this.#o, url, lastEventId, ac, () => this.#closed, {
        hello: (e) => this.#hello(e, url).heartbeatMs,
        event: (e) => queue(() => this.#event(e, url)),
        comment: () => queue(() => this.#flush(url, true)),
      });
    } finally {
      // Events received before the stream ended are still applied, in order, before a reconnect.
      await work;
    }
  }

  #hello(e: SseEvent, url: string): HelloEvent {
    const raw = JSON.parse(e.data) as HelloEvent;
    const heartbeatMs = clampWireMs(raw?.heartbeatMs, MIN_HEARTBEAT_MS, MAX_HEARTBEAT_MS);
    if (typeof raw?.connection !== 'string' || heartbeatMs === undefined) throw new Error(`malformed hello: ${e.data.slice(0, 200)}`);
    const hello: HelloEvent = { ...raw, heartbeatMs };
    this.#connection = hello.connection;
    if (hello.configVersion !== this.#state.configVersion) this.#pending.add('config');
    if (hello.endpointsVersion !== this.#state.endpointsVersion) this.#pending.add('endpoints');
    this.#o.rotation.succeeded();
    this.#o.listener.connected(url, hello);
    return hello;
  }

  async #event(e: SseEvent, url: string): Promise<void> {
    // A server that sends no mesh-config first sends none: an older one (what an earlier one pushed is taken back).
    if (this.#meshConfig.awaited && e.event !== 'mesh-config') await this.#takeMeshConfig(undefined, url);
    if (e.event === 'endpoints-delta') {
      await this.#delta(e, url);
      return;
    }
    if (e.event === 'trust-bundle') {
      this.#trustBundle(e, url);
      return;
    }
    if (e.event === 'mesh-config') {
      await this.#takeMeshConfig(e, url);
      return;
    }
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

  /**
   * An `endpoints-delta`: applied on top of the endpoints staged or in use when its `base` is their
   * version (the new entries validated alone); otherwise the stream is ended to resync.
   */
  async #delta(e: SseEvent, url: string): Promise<void> {
    const ns = this.#o.check.defaultNamespace;
    let body: EndpointsDeltaEvent;
    try {
      body = (await parseEventAsync(e.data)) as EndpointsDeltaEvent;
      if (typeof body?.version !== 'string' || typeof body.base !== 'string' || !Array.isArray(body.workloads) || !Array.isArray(body.removed)) {
        throw new Error('version, base, workloads and removed are required');
      }
    } catch (err) {
      this.#nack(url, 'endpoints', parseEventId(e.id).endpointsVersion, undefined, [`malformed endpoints-delta event: ${String(err)}`]);
      return;
    }
    const staged = this.#staged.endpoints;
    const have = staged?.version ?? this.#state.endpointsVersion;
    if (body.version === have) return;
    if (body.base !== have) {
      this.#resyncs++;
      this.#abort?.abort(new ResyncNeeded(`endpoints delta from ${body.base} does not apply to ${have === '' ? 'no endpoints' : have}: resyncing`));
      return;
    }
    const checked = checkWorkloads(body.workloads, `control-plane endpoints ${body.version}`, this.#o.check);
    if (!checked.ok) {
      this.#nack(url, 'endpoints', body.version, checked.issues, reasons(checked.issues));
      return;
    }
    const drop = new Set<string>(body.removed.map((r) => `${r?.namespace ?? ns}/${r?.name}`));
    for (const w of body.workloads) drop.add(refOf(w, ns));
    const byRef = <T extends { metadata: { namespace?: string; name: string } }>(list: readonly T[], added: readonly T[]): T[] =>
      [...list.filter((w) => !drop.has(refOf(w, ns))), ...added].sort((a, b) => (refOf(a, ns) < refOf(b, ns) ? -1 : refOf(a, ns) > refOf(b, ns) ? 1 : 0));
    const wire: WireResource[] = byRef(staged?.wire ?? this.#state.wireWorkloads, body.workloads);
    const value = byRef(staged?.value ?? this.#state.workloads, checked.value);
    this.#staged.endpoints = { version: body.version, value, wire };
    if (this.#pending.size === 0) await this.#flush(url);
  }

  /** A `trust-bundle` event: handed over when well-formed (it is not ACKed: it is not config). */
  #trustBundle(e: SseEvent, url: string): void {
    let body: TrustBundleEvent;
    try {
      body = parseTrustBundle(e.data);
    } catch (err) {
      this.#o.onWarning?.(`control plane ${url}: ignoring a malformed trust-bundle event: ${(err as Error).message}`);
      return;
    }
    this.#o.http.trust(body); // new connections to the control plane trust its roots too (a rotation)
    this.#o.listener.trustBundle?.(body, url);
  }

  /** A `mesh-config` event, or none (`e` undefined: the server sends none); changed compile settings compile the state in use again. */
  async #takeMeshConfig(e: SseEvent | undefined, url: string): Promise<void> {
    if (!this.#meshConfig.take(e, url)) return;
    this.#o.gatewayNames?.settingsChanged(); // a compile running now (a gateway name's new addresses) is stale
    if (this.#pending.size === 0) await this.#flush(url);
  }

  /** The state in use compiled again for changed mesh settings (nothing new staged). */
  async #recompile(): Promise<void> {
    this.#meshConfig.changed = false;
    const s = this.#state;
    if (s === EMPTY_STATE) return;
    const names = this.#o.gatewayNames;
    const generation = names?.generation;
    const snapshot = await compileStateAsync(s, this.#o.workload, this.#o.mesh, names).catch((e: unknown) => {
      this.#o.onWarning?.(`compiling config ${s.configVersion} again for the control plane's new MeshConfig failed, the last snapshot keeps serving: ${e instanceof Error ? e.message : String(e)}`);
    });
    // Not when a gateway name's addresses changed meanwhile: the recompile that started is newer.
    if (snapshot !== undefined && !this.#closed && this.#state === s && names?.generation === generation) this.#o.listener.recompiled?.(s, snapshot);
  }

  /** Compiles and hands over what is staged (when nothing more was announced). */
  async #flush(url: string, comment = false): Promise<void> {
    if (comment && this.#meshConfig.awaited) await this.#takeMeshConfig(undefined, url);
    this.#pending.clear();
    const { config, endpoints } = this.#staged;
    if (config === undefined && endpoints === undefined) {
      if (this.#meshConfig.changed) await this.#recompile();
      return;
    }
    this.#staged = {};
    this.#meshConfig.changed = false;
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
      snapshot = await compileCurrent(() => compileStateAsync(next, this.#o.workload, this.#o.mesh, this.#o.gatewayNames), this.#o.gatewayNames);
    } catch (e) {
      const why = [`compiling failed: ${e instanceof Error ? e.message : String(e)}`];
      if (config !== undefined) this.#nack(url, 'config', config.version, undefined, why);
      if (endpoints !== undefined) this.#nack(url, 'endpoints', endpoints.version, undefined, why);
      return;
    }
    if (this.#closed) return;
    this.#state = next;
    this.#resyncs = 0;
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
    this.#post(url, { connection: this.#connection, kind, version, status: 'NACK', reasons: boundNackReasons(why) });
    this.#o.listener.rejected(kind, version, issues, new ConfigError(issues.all), url);
  }

  #ack(url: string, kind: Kind, version: string): void {
    this.#post(url, { connection: this.#connection, kind, version, status: 'ACK' });
  }

  #post(url: string, body: AckRequest): void {
    if (this.#connection === '' || this.#closed) return;
    this.#acks.post(url, body);
  }

  /** Lets ACKs/NACKs in flight finish (up to 1 s; the server takes them only while the stream is open), then stops the stream and the loop. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#acks.drain(1000);
    this.#abort?.abort(new Error('closed'));
    this.#sleepTimer?.clear();
    this.#wake?.();
    await this.#loop;
  }
}
