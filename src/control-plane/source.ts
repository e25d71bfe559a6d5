/**
 * The control plane as a mesh's config source: the watch, the last-known-good cache, the
 * registrar and the startup policy, behind one object so `createMesh` stays small.
 *
 * Startup: {@link ControlPlaneSource.start} resolves with the first snapshot — live from the
 * control plane; or, once every URL failed (or the first config was rejected, or
 * `startupTimeoutMs` passed), from the cache; or, with `failOpen`, empty. Otherwise it rejects
 * with a MESHLET_ERR_CONTROL_PLANE error saying why, after closing what it opened. A 401/403
 * rejects at once: retrying with the same token cannot help; so does (unless the cache or
 * failOpen starts it) a lone http:// URL a TLS-only control plane answers with Go's 400.
 *
 * @module
 */
import { setImmediate } from 'node:timers';
import type { Timer } from '../core/clock.ts';
import { RepeatedWarning } from './repeated-warning.ts';
import { closeInOrder } from '../core/close-in-order.ts';
import { MeshletError } from '../core/errors.ts';
import type { ConfigError } from '../core/errors.ts';
import type { ConfigIssue } from '../config/issues.ts';
import type { Snapshot } from '../routing/compile.ts';
import { UrlRotation } from './backoff.ts';
import { type CachedState, SnapshotCache } from './cache.ts';
import { ControlPlaneHttp, isAuthFailure, isPlainToTlsFailure } from './http.ts';
import { ControlPlaneIdentity } from './identity.ts';
import { type HelloEvent, type MeshConfigEvent, REPORT_PATH, type WorkloadReport } from './protocol.ts';
import { type Registration, Registrar, type RegisterOptions } from './registration.ts';
import { compileStateAsync, EMPTY_STATE, type GoodState } from './state.ts';
import { startFromCache } from './cached-start.ts';
import type { ConfigAppliedEvent, ConfigOrigin, ConnectedEvent, ControlPlaneSourceOptions, DisconnectedEvent, SourceSink } from './source-types.ts';
import { Watch } from './watch.ts';

export type * from './source-types.ts';
export { controlPlaneUrls } from './urls.ts';

interface Startup {
  resolve(snapshot: Snapshot): void;
  reject(error: Error): void;
  timer: Timer;
  lastError: MeshletError | undefined;
}

/** The control-plane config source of one mesh. */
export class ControlPlaneSource {
  readonly #o: ControlPlaneSourceOptions;
  readonly #http: ControlPlaneHttp;
  readonly #watch: Watch;
  readonly #cache: SnapshotCache | undefined;
  readonly #registrar: Registrar;
  #cached: Promise<CachedState | undefined> | undefined;
  #startup: Startup | undefined;
  #sink: SourceSink | undefined;
  #pendingSnapshot: Snapshot | undefined;
  #deferred: [Parameters<SourceSink['emit']>[0], object][] = [];
  #origin: ConfigOrigin = 'none';
  #connected = false;
  #closed: Promise<void> | undefined;
  /** The ignored labels last warned about (once per set, not per reconnect). */
  #ignoredWarned = '';
  readonly #identity: ControlPlaneIdentity | undefined;
  /** The stream reports are about, and the last report sent on it. */
  #stream: { url: string; connection: string } | undefined;
  #lastReport = '';
  #reportTimer: Timer | undefined;
  /** A refused token: logged once, then summarized while it persists (each URL, each attempt). */
  readonly #authWarning: RepeatedWarning;

  constructor(o: ControlPlaneSourceOptions) {
    this.#o = o;
    this.#authWarning = new RepeatedWarning(o.clock, (m) => o.logger.warn(m));
    this.#http = new ControlPlaneHttp({ token: o.token, ca: o.ca });
    const rotation = new UrlRotation(o.urls, o.random, o.backoff);
    this.#cache = o.cacheDir === undefined ? undefined : new SnapshotCache(o.cacheDir, o.workload.namespace, o.workload.service, (m) => o.logger.warn(m));
    this.#watch = new Watch({
      http: this.#http,
      rotation,
      workload: o.workload,
      mesh: o.compileSettings ?? o,
      gatewayNames: o.gatewayNames,
      check: { defaultNamespace: o.workload.namespace, analysis: o.analysis },
      clock: o.clock,
      connectTimeoutMs: o.connectTimeoutMs ?? 5000,
      listener: {
        connected: (url, hello) => this.#onConnected(url, hello),
        applied: (state, snapshot) => this.#onApplied(state, snapshot),
        rejected: (kind, version, issues, error, url) => this.#onRejected(kind, version, issues.all, error, url),
        failed: (error, info) => this.#onFailed(error, info),
        trustBundle: (bundle) => this.#identity?.trustBundle(bundle),
        meshConfig: (e, url) => this.#onMeshConfig(e, url),
        recompiled: (_state, snapshot) => this.#install(snapshot),
      },
      onWarning: (m) => o.logger.warn(`meshlet: ${m}`),
    });
    this.#registrar = new Registrar({
      http: this.#http,
      urls: o.urls,
      clock: o.clock,
      hasToken: o.token !== undefined && o.token !== '',
      service: o.workload.service,
      namespace: o.workload.namespace,
      labels: o.workload.labels,
      acceptsMtls: o.acceptsMtls === true,
      serviceAccount: o.serviceAccount,
      workloadName: o.workloadName,
      locality: o.locality,
      network: o.networks?.network ?? '',
      timeoutMs: o.startupTimeoutMs,
      logger: o.logger,
    });
    const id = o.identity;
    this.#identity =
      id === undefined
        ? undefined
        : new ControlPlaneIdentity({
            call: (req) => this.#registrar.call(req),
            holder: id.holder,
            trustDomain: id.trustDomain,
            namespace: o.workload.namespace,
            serviceAccount: id.serviceAccount,
            explicit: id.explicit,
            required: id.required,
            hasToken: o.token !== undefined && o.token !== '',
            startupTimeoutMs: o.startupTimeoutMs,
            failOpen: o.failOpen,
            clock: o.clock,
            random: o.random,
            logger: o.logger,
            backoff: o.backoff,
            onInstalled: () => this.#report(),
          });
  }

  /**
   * Waits for the first workload certificate (with `identity`; resolves at once without): rejects
   * with a MESHLET_ERR_CONTROL_PLANE error when none came within `startupTimeoutMs` (unless
   * `failOpen`) or the token was refused.
   */
  startIdentity(): Promise<void> {
    return this.#identity?.start() ?? Promise.resolve();
  }

  /** The config did not come live (cache, failOpen): stop waiting for the first certificate (it keeps being asked for). */
  degradeIdentity(why: string): void {
    this.#identity?.degrade(why);
  }

  /** Sends the status the sink reports, on the stream's replica, when it changed (an older control plane's 404 and failures are ignored: the next change or reconnect reports again). */
  #report(): void {
    const stream = this.#stream;
    const contents = this.#sink?.report?.();
    if (stream === undefined || contents === undefined || this.#closed !== undefined) return;
    if (contents.identity === undefined && contents.inboundTls === undefined) return;
    const body: WorkloadReport = { connection: stream.connection, ...contents };
    const text = JSON.stringify(body);
    if (text === this.#lastReport) return;
    this.#lastReport = text;
    void this.#http.call(stream.url, { method: 'POST', path: REPORT_PATH, body }).catch(() => {
      if (this.#lastReport === text) this.#lastReport = '';
    });
  }

  /** The good state in use (its `configVersion` is '' before any config). */
  get state(): GoodState {
    return this.#watch.state;
  }

  /** Where the config in use came from. */
  get origin(): ConfigOrigin {
    return this.#origin;
  }

  /** Whether a watch stream is up. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Waits for the first snapshot (see the module comment). */
  start(): Promise<Snapshot> {
    return new Promise<Snapshot>((resolve, reject) => {
      // The caller awaits createMesh: this timer keeps the process alive until the start is
      // decided (reconnect sleeps do not, so without it a process with nothing else to do
      // would exit silently while the control plane is unreachable).
      const timer = this.#o.clock.setTimer(() => void this.#fallback(undefined, true), this.#o.startupTimeoutMs, true);
      this.#startup = { resolve, reject, timer, lastError: undefined };
      this.#cached = this.#cache?.read();
      this.#watch.start();
    });
  }

  /**
   * Connects the source to the mesh built from the first snapshot: later snapshots are
   * installed, and the events describing the start are emitted on the next turn (so listeners
   * added right after `await createMesh(...)` see them).
   */
  attach(sink: SourceSink): void {
    this.#sink = sink;
    if (sink.report !== undefined) {
      const every = this.#o.reportIntervalMs ?? 30_000;
      const tick = () => {
        this.#report();
        if (this.#closed === undefined) this.#reportTimer = this.#o.clock.setTimer(tick, every);
      };
      this.#reportTimer = this.#o.clock.setTimer(tick, every);
      setImmediate(() => this.#report());
    }
    if (this.#pendingSnapshot !== undefined) sink.install(this.#pendingSnapshot);
    this.#pendingSnapshot = undefined;
    const deferred = this.#deferred;
    this.#deferred = [];
    setImmediate(() => {
      if (this.#closed === undefined) for (const [name, payload] of deferred) sink.emit(name, payload);
    });
  }

  /** Registers this workload (see {@link Registrar.register}). */
  register(o: RegisterOptions): Promise<Registration> {
    return this.#registrar.register(o);
  }

  #emit(name: Parameters<SourceSink['emit']>[0], payload: object): void {
    if (this.#sink === undefined) this.#deferred.push([name, payload]);
    else this.#sink.emit(name, payload);
  }

  #install(snapshot: Snapshot): void {
    if (this.#sink === undefined) this.#pendingSnapshot = snapshot;
    else this.#sink.install(snapshot);
  }

  #settle(snapshot: Snapshot | undefined, error?: Error): void {
    const s = this.#startup;
    if (s === undefined) return;
    this.#startup = undefined;
    s.timer.clear();
    if (snapshot !== undefined) s.resolve(snapshot);
    else void this.close().then(() => s.reject(error ?? new Error('closed')));
  }

  #onConnected(url: string, hello: HelloEvent): void {
    this.#authWarning.reset();
    const ignored = hello.ignoredLabels ?? [];
    const key = ignored.join(',');
    if (ignored.length > 0 && key !== this.#ignoredWarned) {
      this.#o.logger.warn(
        `meshlet: control plane ${url}: this workload's token does not prove its label(s) ${ignored.join(', ')}, so policies that select on them are not sent to it; mint the token with them (meshlet token --service ${this.#o.workload.service} --label ${ignored.map((k) => `${k}=${this.#o.workload.labels[k] ?? ''}`).join(' --label ')})`,
      );
    }
    this.#ignoredWarned = key;
    this.#stream = { url, connection: hello.connection };
    this.#lastReport = '';
    this.#report();
    const wasOutage = !this.#connected;
    this.#connected = true;
    if (wasOutage) {
      // The control plane is back: a failing certificate renewal is tried at once, not at its backoff.
      this.#identity?.reconnected();
      this.#emit('connected', { url, server: hello.server } satisfies ConnectedEvent);
    }
    const s = this.#watch.state;
    // Already at the server's versions (e.g. started from a cache the server agrees with): live now.
    if (this.#origin !== 'control-plane' && hello.configVersion === s.configVersion && hello.endpointsVersion === s.endpointsVersion && s !== EMPTY_STATE) {
      this.#origin = 'control-plane';
      this.#emit('config', { version: s.configVersion, endpointsVersion: s.endpointsVersion, source: 'control-plane', findings: s.findings } satisfies ConfigAppliedEvent);
    }
  }

  #onApplied(state: GoodState, snapshot: Snapshot): void {
    if (this.#startup !== undefined) {
      // Endpoints alone are no start: without a config (the first was rejected) the startup policy decides (cache, failOpen, or reject).
      if (state.configVersion === '') return;
      this.#origin = 'control-plane';
      this.#settle(snapshot);
    } else {
      // Endpoints alone (no config was ever accepted, e.g. after a failOpen start) do not make the config the control plane's.
      if (state.configVersion !== '') this.#origin = 'control-plane';
      this.#install(snapshot);
    }
    this.#emit('config', { version: state.configVersion, endpointsVersion: state.endpointsVersion, source: 'control-plane', findings: state.findings } satisfies ConfigAppliedEvent);
    this.#save(state);
  }

  /** A `mesh-config` event: taken under the mesh's settings; one that is now in use is written to the cache with the state in use. */
  #onMeshConfig(e: MeshConfigEvent, url: string): boolean {
    const mc = this.#o.meshConfig;
    if (mc === undefined) return false;
    const before = mc.event;
    const recompile = mc.accept(e, url);
    const state = this.#watch.state;
    if (mc.event !== before && state !== EMPTY_STATE) this.#save(state);
    return recompile;
  }

  /** Writes the last-known-good cache: the state in use and the control plane's MeshConfig in use. */
  #save(state: GoodState): void {
    const meshConfig = this.#o.meshConfig?.event;
    void this.#cache?.write({
      configVersion: state.configVersion,
      endpointsVersion: state.endpointsVersion,
      resources: state.wireResources,
      workloads: state.wireWorkloads,
      ...(meshConfig === undefined ? {} : { meshConfig }),
    });
  }

  #onRejected(kind: string, version: string, issues: readonly ConfigIssue[], error: ConfigError, url: string): void {
    this.#o.logger.warn(`meshlet: control plane ${url}: ${kind} version ${version} rejected (NACK), the last good config keeps serving.\n${error.message}`);
    this.#emit('rejected', { issues, error });
    if (this.#startup !== undefined && kind === 'config' && this.#watch.state === EMPTY_STATE) {
      void this.#fallback(new MeshletError('MESHLET_ERR_CONTROL_PLANE', `control plane ${url}: config version ${version} rejected: ${error.message}`, { cause: error }), true);
    }
  }

  #onFailed(error: MeshletError, info: { url: string; wasConnected: boolean; roundFailed: boolean; cause: unknown }): void {
    if (this.#startup !== undefined) {
      this.#startup.lastError = error;
      if (isAuthFailure(info.cause)) this.#settle(undefined, error);
      // The only URL is http:// to a TLS-only control plane: no retry can help (cache and failOpen still apply).
      else if (this.#o.urls.length === 1 && isPlainToTlsFailure(info.cause)) void this.#fallback(error, true);
      else if (info.roundFailed) void this.#fallback(error, false);
      return;
    }
    if (this.#connected) {
      this.#connected = false;
      this.#o.logger.warn(`meshlet: lost the control plane, the last good config keeps serving; reconnecting: ${error.message}`);
      this.#emit('disconnected', { error } satisfies DisconnectedEvent);
    } else if (isAuthFailure(info.cause)) {
      this.#authWarning.warn(`meshlet: ${error.message}`);
    }
  }

  /**
   * No live config yet: start from the cache or empty (failOpen). With neither, `final`
   * rejects (startup timeout, first config rejected); otherwise the watch keeps trying.
   */
  async #fallback(error: MeshletError | undefined, final: boolean): Promise<void> {
    const cached = await this.#fromCache();
    const s = this.#startup;
    if (s === undefined) return;
    const why = error ?? s.lastError;
    if (cached !== undefined) {
      this.#origin = 'cache';
      this.#watch.seed(cached.state);
      this.#o.logger.warn(`meshlet: starting from the cached config ${cached.state.configVersion} (${this.#cache?.file}): ${why?.message ?? 'no config from the control plane yet'}`);
      this.#emit('config', { version: cached.state.configVersion, endpointsVersion: cached.state.endpointsVersion, source: 'cache', findings: cached.state.findings } satisfies ConfigAppliedEvent);
      if (!this.#connected && why !== undefined) this.#emit('disconnected', { error: why } satisfies DisconnectedEvent);
      this.#settle(cached.snapshot);
    } else if (this.#o.failOpen) {
      this.#o.logger.warn(`meshlet: starting without config (failOpen): ${why?.message ?? 'no config from the control plane yet'}`);
      if (!this.#connected && why !== undefined) this.#emit('disconnected', { error: why } satisfies DisconnectedEvent);
      this.#settle(await compileStateAsync(EMPTY_STATE, this.#o.workload, this.#o.compileSettings ?? this.#o, this.#o.gatewayNames));
    } else if (final) {
      const timeout = error === undefined;
      const message = timeout
        ? `control plane ${this.#o.urls.join(', ')}: no config within ${this.#o.startupTimeoutMs} ms (startupTimeoutMs)${why === undefined ? '' : `; last error: ${why.message}`}`
        : why?.message;
      this.#settle(undefined, new MeshletError('MESHLET_ERR_CONTROL_PLANE', message ?? 'control plane: no config', { cause: why }));
    }
  }

  async #fromCache(): Promise<{ state: GoodState; snapshot: Snapshot } | undefined> {
    const c = await this.#cached;
    return c === undefined || this.#cache === undefined ? undefined : startFromCache(c, this.#cache.file, this.#o);
  }

  /**
   * Deregisters every registration, waits `drainMs` if there were any (so other meshes stop
   * routing here), then stops the watch and closes the agent.
   */
  close(): Promise<void> {
    this.#startup?.timer.clear();
    this.#reportTimer?.clear();
    // Every step runs even when one fails (a cache that cannot be flushed still closes the agent).
    this.#closed ??= closeInOrder([
      () => this.#identity?.close(),
      async () => {
        const had = await this.#registrar.closeAll();
        if (had > 0 && this.#o.drainMs > 0) await this.#registrar.sleep(this.#o.drainMs);
      },
      () => this.#watch.close(),
      () => [this.#cache?.flush(), this.#o.gatewayNames?.close()],
      () => this.#http.close(),
    ]);
    return this.#closed;
  }
}
