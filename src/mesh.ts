/**
 * `createMesh`: wires a config source, the compiled snapshot, the outbound pipeline and the
 * adapters into one object the application holds.
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import { stat } from 'node:fs/promises';
import { fetch as undiciFetch } from 'undici';
import { MeshDispatcher } from './adapters/undici/dispatcher.ts';
import { classifyUndiciError } from './adapters/undici/classify.ts';
import { UndiciTransport } from './adapters/undici/transport.ts';
import { reportFindings } from './config/findings.ts';
import { ANALYSIS_MODES, type AnalysisMode, type ConfigSource, loadConfig } from './config/load-config.ts';
import { type ConfigWatcher, watchConfigPaths } from './config/watch.ts';
import { ParseCache } from './config/load.ts';
import { ValidationCache } from './config/validate/index.ts';
import { type ReloadAttempt, Reloader } from './config/reloader.ts';
import type { ConfigIssue } from './config/issues.ts';
import { type Clock, type Random, systemClock, systemRandom } from './core/clock.ts';
import { TOKEN_ENV } from './control-plane/protocol.ts';
import type { Registration, RegisterOptions } from './control-plane/registration.ts';
import { type ConfigAppliedEvent, type ConfigOrigin, type ConnectedEvent, ControlPlaneSource, controlPlaneUrls, type DisconnectedEvent } from './control-plane/source.ts';
import { ConfigError, InvalidArgumentError, MeshletError } from './core/errors.ts';
import type { ErrorMode } from './core/exchange.ts';
import { explain, type Explanation, type ExplainRequest } from './outbound/explain.ts';
import { Outbound, type OutboundEvent } from './outbound/pipeline.ts';
import { CompileCache } from './routing/compile-cache.ts';
import { compileSnapshotAsync, type Snapshot } from './routing/compile.ts';

/**
 * Options of {@link createMesh}.
 * @category Mesh
 */
export interface MeshOptions {
  /** This workload's service (short name, e.g. `productpage`). */
  readonly service: string;
  /** @defaultValue 'default' */
  readonly namespace?: string;
  /** This workload's labels (matched by subsets, selectors, `sourceLabels`). @defaultValue {} */
  readonly labels?: Readonly<Record<string, string>>;
  /**
   * Embedded mode: a YAML/JSON file, a directory of them, a list of paths, or resource
   * objects. Files and directories are watched: a valid change applies to new requests; an
   * invalid one is rejected as a whole (event `rejected`) and the last good config keeps serving.
   * Exactly one of `config` and `controlPlane` is required.
   */
  readonly config?: ConfigSource;
  /**
   * Control-plane mode: the URL of `meshlet control-plane` (`http://host:15010`), or several
   * (replicas, tried in turn). See docs/control-plane-client.md.
   */
  readonly controlPlane?: string | readonly string[];
  /** Bearer token for the control plane (`meshlet token`). @defaultValue process.env.MESHLET_TOKEN */
  readonly token?: string;
  /** Directory of the last-known-good cache (`<namespace>.<service>.json`); none when absent. */
  readonly cacheDir?: string;
  /** How long `createMesh` waits for the first config from the control plane. @defaultValue 10000 */
  readonly startupTimeoutMs?: number;
  /**
   * With no control plane and no cache at startup, start with an empty config (every host
   * passes through) and keep trying, instead of rejecting.
   * @defaultValue false
   */
  readonly failOpen?: boolean;
  /**
   * After `close()` deregistered this mesh's registrations, how long it waits before closing its
   * pools, so other meshes have received the change and stopped routing here.
   * @defaultValue 1000
   */
  readonly drainMs?: number;
  /**
   * How mesh-made failures (no route, no healthy upstream, overflow, timeout, fault abort, …)
   * reach callers: `respond` answers as a sidecar would (404/503/504 with the Envoy flag in
   * `x-meshlet-response-flags`); `throw` fails the call with a typed {@link MeshletError}.
   * @defaultValue 'respond'
   */
  readonly errors?: ErrorMode;
  /** This workload's locality, `region/zone/subzone` (locality load balancing). @defaultValue '' */
  readonly locality?: string;
  /** This workload's IP (the key of `consistentHash.useSourceIp`). @defaultValue '127.0.0.1' */
  readonly sourceIp?: string;
  /** What happens to hosts outside the registry (Istio's `outboundTrafficPolicy.mode`). @defaultValue 'ALLOW_ANY' */
  readonly outboundTrafficPolicy?: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  /** Largest streamed request body kept so a retry can replay it. @defaultValue 1048576 (1 MiB, Envoy's buffer limit) */
  readonly retryBufferBytes?: number;
  /** Longest upstream `Retry-After` a retry waits for; a longer one ends retrying. @defaultValue 10000 */
  readonly maxRetryAfterMs?: number;
  /** Mirrored requests in flight at most; more are dropped. @defaultValue 64 */
  readonly maxMirrorsInFlight?: number;
  /**
   * What `istioctl analyze`-style findings (IST0101 missing subset or host, …) do to config.
   * `advisory`: reported (logged once, in the `config` event) and applied — a route to a missing
   * subset answers 503 NC at run time, as in Istio; `blocking`: error-level findings refuse the
   * config as schema errors do; `off`: the analyzers do not run. Schema-invalid config is
   * always refused as a whole.
   * @defaultValue 'advisory'
   */
  readonly analysis?: AnalysisMode;
  /** Watch config files for changes. @defaultValue true */
  readonly watch?: boolean;
  /**
   * Where the mesh logs: rejected config and analysis findings (`warn`), config applied
   * (`info`), control-plane connection changes. Any object with these methods — `console`, a
   * pino or winston logger — works; `debug`, `info` and `error` are optional.
   * @defaultValue warnings and errors to the console (console.warn, console.error)
   */
  readonly logger?: MeshLogger;
  /** Time source (tests inject a manual clock). @defaultValue the system clock */
  readonly clock?: Clock;
  /** Randomness (tests inject a seeded one). @defaultValue Math.random */
  readonly random?: Random;
}

/**
 * The logger when none is given: warnings and errors to the console (stderr); a library says
 * nothing on stdout unless asked to.
 */
const DEFAULT_LOGGER: MeshLogger = Object.freeze({ warn: (m: string) => console.warn(m), error: (m: string) => console.error(m) });

/**
 * What {@link Mesh.diagnostics} returns.
 * @category Mesh
 */
export interface MeshDiagnostics {
  readonly configVersion: string;
  readonly configSource: ConfigOrigin | 'file';
  /** Mirrored requests: sent, dropped (over `maxMirrorsInFlight` or too large to replay), failed, in flight. */
  readonly mirrors: { readonly sent: number; readonly dropped: number; readonly failed: number; readonly inFlight: number };
  /** The clusters calls (or mirrors, or explain) have used, with their endpoints. */
  readonly clusters: readonly {
    readonly name: string;
    readonly endpoints: readonly { readonly endpoint: string; readonly active: number; readonly ejected: boolean; readonly ejectedForMs: number }[];
  }[];
}

/**
 * A logger: `console`, pino, winston or anything with these methods.
 * @category Mesh
 */
export interface MeshLogger {
  debug?(message: string): void;
  info?(message: string): void;
  warn(message: string): void;
  error?(message: string): void;
}

/**
 * Event `rejected`: new config was refused; the last good config keeps serving. The same event in both modes.
 * @category Mesh
 */
export interface RejectedEvent {
  readonly issues: readonly ConfigIssue[];
  readonly error: ConfigError;
}

/**
 * Event `watch`: a watched config path can no longer be watched (its directory was deleted or
 * moved away; the last good config keeps serving, and the path is watched for its return), or
 * is watched again (it came back, or another directory took its place; it is reloaded).
 * @category Mesh
 */
export interface WatchStateEvent {
  /** The config path as given to `createMesh`. */
  readonly path: string;
  readonly watching: boolean;
  readonly message: string;
}

/**
 * The events of a {@link Mesh}, with their payloads. The names are the same in embedded and
 * control-plane mode.
 *
 * - `config`: a config is in use — at start (emitted on the next turn, so a listener added
 *   right after `await createMesh(...)` sees it), after each applied change, and (control-plane
 *   mode) when endpoints changed. Carries the version, where it came from, and its findings.
 * - `rejected`: a change was refused (schema errors, or findings under `analysis: 'blocking'`).
 * - `watch`: a watched config directory was lost (deleted, moved away) or is watched again
 *   (embedded mode only).
 * - `connected` / `disconnected`: the control-plane watch stream came up / went down
 *   (control-plane mode only).
 * - `ejected` / `returned`: outlier detection ejected an endpoint / let it back in.
 * @category Mesh
 */
export interface MeshEvents {
  config: [ConfigAppliedEvent];
  rejected: [RejectedEvent];
  watch: [WatchStateEvent];
  connected: [ConnectedEvent];
  disconnected: [DisconnectedEvent];
  ejected: [OutboundEvent];
  returned: [OutboundEvent];
}

/**
 * A mesh: the application's outbound HTTP through Istio traffic management. Its events are
 * listed in {@link MeshEvents}.
 * @category Mesh
 */
export class Mesh extends EventEmitter<MeshEvents> {
  /** An undici Dispatcher: `undici.request(url, { dispatcher: mesh.dispatcher })`. */
  readonly dispatcher: MeshDispatcher;
  readonly #outbound: Outbound;
  readonly #transport: UndiciTransport;
  readonly #o: MeshOptions;
  readonly #errors: ErrorMode;
  readonly #source: ControlPlaneSource | undefined;
  #watcher: ConfigWatcher | undefined;
  readonly #parseCache = new ParseCache();
  readonly #validationCache = new ValidationCache();
  /** Unchanged services, clusters and virtual hosts are reused by the next compile. */
  readonly #compileCache = new CompileCache();
  /** Reloads once a burst of file events has settled, and files written in place are quiet. */
  readonly #reloader = new Reloader({
    debounceMs: 100,
    maxDebounceMs: 1000,
    reload: (attempt) => this.#serial(() => this.#load(attempt)).then(() => undefined),
    onUnsettled: (files, ms) => this.#logger.warn(`meshlet: ${files.join(', ')} ha${files.length === 1 ? 's' : 've'} been written for ${Math.round(ms / 1000)} s without a pause; the change is applied once ${files.length === 1 ? 'it is' : 'they are'} quiet for a second`),
    onError: (e) => this.#logger.warn(`meshlet: reloading config failed: ${String(e)}`),
  });
  /** Reloads run one at a time. */
  #queue: Promise<unknown> = Promise.resolve();
  #closed: Promise<void> | undefined;
  /** The findings of the config in use (each is logged once, when it first appears). */
  #findings: readonly ConfigIssue[] = [];

  /** @internal use {@link createMesh}. */
  constructor(o: MeshOptions, snapshot: Snapshot, source?: ControlPlaneSource) {
    super();
    this.#o = o;
    this.#source = source;
    this.#errors = o.errors ?? 'respond';
    const clock = o.clock ?? systemClock;
    const random = o.random ?? systemRandom;
    this.#transport = new UndiciTransport();
    this.#outbound = new Outbound(snapshot, {
      clock,
      random,
      locality: o.locality ?? '',
      labels: o.labels ?? {},
      sourceIp: o.sourceIp ?? '127.0.0.1',
      outboundTrafficPolicy: o.outboundTrafficPolicy ?? 'ALLOW_ANY',
      maxRetryAfterMs: o.maxRetryAfterMs ?? 10_000,
      maxMirrorsInFlight: o.maxMirrorsInFlight ?? 64,
      classify: classifyUndiciError,
      transport: this.#transport.dispatch,
      passthrough: this.#transport.passthrough,
      onEvent: (e: OutboundEvent) => this.emit(e.type, e),
    });
    const pipeline = this.#outbound.dispatch;
    this.dispatcher = new MeshDispatcher({
      clock,
      errors: this.#errors,
      retryBufferBytes: o.retryBufferBytes ?? 1024 * 1024,
      pipeline: () => pipeline,
      onClose: () => this.close(),
    });
  }

  /** The snapshot new calls are routed on. */
  get snapshot(): Snapshot {
    return this.#outbound.snapshot;
  }

  /**
   * The version of the config in use: the control plane's config version (also after starting
   * from the cache; '' when started empty with `failOpen`), or the content hash in embedded mode.
   */
  get configVersion(): string {
    return this.#source === undefined ? this.snapshot.version : this.#source.configVersion;
  }

  /** Where the config in use came from: `file` (embedded), `control-plane`, `cache`, or `none` (failOpen). */
  get configSource(): ConfigOrigin | 'file' {
    return this.#source === undefined ? 'file' : this.#source.origin;
  }

  /**
   * Registers an instance of this workload's service in the control plane's registry, so other
   * meshes route to it (ServiceEntries whose `workloadSelector` matches its labels). The lease is
   * renewed every third of `leaseMs`, re-registered if the control plane forgot it, and ended by
   * `registration.close()` or `mesh.close()`. Control-plane mode only.
   * @example
   * const reg = await mesh.register({ ports: { http: 9080 } });
   */
  register(options: RegisterOptions): Promise<Registration> {
    if (this.#source === undefined) return Promise.reject(new InvalidArgumentError('mesh.register: needs control-plane mode (`controlPlane`)'));
    return this.#source.register(options);
  }

  /** @internal installs a snapshot from the config source. */
  install(snapshot: Snapshot): void {
    this.#outbound.install(snapshot);
    for (const cs of this.#outbound.clusters.values()) this.#transport.refresh(cs);
  }

  /** @internal The outbound data plane (cluster state, layers), for meshlet's own tools and benchmarks. */
  get outbound(): Outbound {
    return this.#outbound;
  }

  /**
   * What the data plane holds right now, as plain data: the config in use, mirrored-request
   * counters, and every cluster calls have used with its endpoints (requests in flight,
   * ejected and until when). A copy: reading it changes nothing.
   */
  diagnostics(): MeshDiagnostics {
    const o = this.#outbound;
    const now = o.clock.now();
    const clusters = [...o.clusters.values()].map((cs) => ({
      name: cs.name,
      endpoints: cs.hostSet.hosts.map((h) => ({
        endpoint: h.endpoint.key,
        active: h.active,
        ejected: h.ejected,
        ejectedForMs: h.ejected ? Math.max(0, h.ejectedUntil - now) : 0,
      })),
    }));
    return { configVersion: this.configVersion, configSource: this.configSource, mirrors: { ...o.mirrorStats }, clusters };
  }

  /**
   * WHATWG `fetch` through the mesh (undici's implementation with {@link Mesh.dispatcher}).
   * In `errors: 'throw'` mode a mesh-made failure rejects with the {@link MeshletError}
   * itself rather than fetch's `TypeError('fetch failed')`.
   */
  fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    try {
      return (await undiciFetch(input as never, { ...(init as object), dispatcher: this.dispatcher } as never)) as unknown as Response;
    } catch (e) {
      const cause = (e as { cause?: unknown }).cause;
      if (cause instanceof MeshletError) throw cause;
      throw e;
    }
  };

  /**
   * Explains how a request would be handled: the virtual host, which rule matched (and why
   * the earlier ones did not), the candidate destinations and their endpoints (in flight,
   * ejected and why), and every policy that applies. Nothing is sent.
   */
  explain(request: ExplainRequest): Explanation {
    return explain(this.#outbound, request);
  }

  /** Applies a new set of resources now (what the file watcher does on a change). */
  reload(): Promise<boolean> {
    if (this.#o.config === undefined) return Promise.reject(new InvalidArgumentError('mesh.reload: only in embedded mode (`config`); the control plane pushes changes'));
    return this.#serial(() => this.#load(undefined));
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Loads and applies the config; a watcher's `attempt` that went out of date while reading is dropped (another follows). */
  async #load(attempt: ReloadAttempt | undefined): Promise<boolean> {
    if (attempt !== undefined && (this.#watcher?.lost.length ?? 0) > 0) return false; // reported as lost; the last good config serves
    const loaded = await loadConfig(this.#o.config as ConfigSource, { defaultNamespace: this.#o.namespace ?? 'default', analysis: this.#o.analysis, parseCache: this.#parseCache, validationCache: this.#validationCache, registryCache: this.#compileCache.registry });
    if (attempt !== undefined && !(await attempt.current())) return false;
    if (!loaded.ok) {
      const error = new ConfigError(loaded.issues.all);
      this.#logger.warn(`meshlet: new config rejected, the last good config keeps serving.\n${error.message}`);
      this.emit('rejected', { issues: loaded.issues.all, error } satisfies RejectedEvent);
      return false;
    }
    const snapshot = await compileSnapshotAsync(loaded.resources, workloadOf(this.#o), { cache: this.#compileCache });
    if (snapshot.version === this.snapshot.version) return true;
    this.install(snapshot);
    this.#configApplied({ version: snapshot.version, endpointsVersion: '', source: 'file', findings: loaded.findings });
    return true;
  }

  get #logger(): MeshLogger {
    return this.#o.logger ?? DEFAULT_LOGGER;
  }

  /** @internal a config is in use: log its new findings once, tell listeners. */
  configApplied(e: ConfigAppliedEvent): void {
    this.#configApplied(e);
  }

  #configApplied(e: ConfigAppliedEvent): void {
    reportFindings(this.#logger, `config ${e.version} (${e.source})`, this.#findings, e.findings);
    this.#findings = e.findings;
    this.#logger.info?.(`meshlet: config ${e.version}${e.endpointsVersion === '' ? '' : ` (endpoints ${e.endpointsVersion})`} from ${e.source} in use`);
    this.emit('config', e);
  }

  /** @internal */
  async startWatching(): Promise<void> {
    const src = this.#o.config;
    if (this.#o.watch === false || src === undefined) return;
    const paths = typeof src === 'string' ? [src] : Array.isArray(src) && src.every((s) => typeof s === 'string') ? (src as string[]) : [];
    for (const p of paths) await stat(p); // a missing path fails createMesh here, not silently later
    if (paths.length === 0) return;
    this.#watcher = watchConfigPaths(paths, {
      onEvent: (e) => this.#reloader.event(e),
      onError: (e) => this.#logger.warn(`meshlet: ${e.message}`),
      onLost: (path, message) => {
        this.#logger.warn(`meshlet: lost the watch on config ${path}: ${message}; config ${this.snapshot.version} keeps serving`);
        this.emit('watch', { path, watching: false, message } satisfies WatchStateEvent);
      },
      onRestored: (path, message) => {
        this.#logger.info?.(`meshlet: config ${path} is watched again: ${message}`);
        this.emit('watch', { path, watching: true, message } satisfies WatchStateEvent);
      },
    });
  }

  /**
   * Deregisters (then waits `drainMs` if there were registrations), stops watching files or the
   * control plane, closes every connection pool; calls in flight finish first.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      await this.#source?.close();
      this.#watcher?.close();
      await this.#reloader.close();
      await this.#outbound.close();
      await this.#transport.close();
    })();
    return this.#closed;
  }
}

function workloadOf(o: MeshOptions) {
  return { service: o.service, namespace: o.namespace ?? 'default', labels: o.labels ?? {} };
}

/**
 * Creates a mesh. Embedded mode (`config`): loads and validates the config (rejecting it with
 * every reason if it is invalid), compiles it for this workload and starts watching files.
 * Control-plane mode (`controlPlane`): resolves after the first config arrived (or came from the
 * cache, or — `failOpen` — none); fail-closed, it rejects with a `MESHLET_ERR_CONTROL_PLANE`
 * error saying why (401/403, connection refused, startup timeout, config rejected).
 * @example
 * const mesh = await createMesh({ service: 'productpage', labels: { version: 'v1' }, config: './mesh' });
 * const res = await mesh.fetch('http://reviews:9080/reviews/1', { headers: { 'end-user': 'jason' } });
 * @category Mesh
 */
export async function createMesh(o: MeshOptions): Promise<Mesh> {
  if (o === null || typeof o !== 'object') throw new InvalidArgumentError('createMesh: options are required ({ service, config })');
  if (typeof o.service !== 'string' || o.service === '') throw new InvalidArgumentError('createMesh: `service` must be a non-empty string (this workload\'s service name)');
  if (o.config !== undefined && o.controlPlane !== undefined) throw new InvalidArgumentError('createMesh: `config` and `controlPlane` are mutually exclusive (embedded mode or control-plane mode)');
  if (o.config === undefined && o.controlPlane === undefined) {
    throw new InvalidArgumentError('createMesh: `config` (a file, a directory, or resource objects) or `controlPlane` (a control-plane URL) is required');
  }
  if (o.errors !== undefined && o.errors !== 'respond' && o.errors !== 'throw') throw new InvalidArgumentError(`createMesh: \`errors\` must be 'respond' or 'throw', got ${JSON.stringify(o.errors)}`);
  if (o.outboundTrafficPolicy !== undefined && o.outboundTrafficPolicy !== 'ALLOW_ANY' && o.outboundTrafficPolicy !== 'REGISTRY_ONLY') {
    throw new InvalidArgumentError(`createMesh: \`outboundTrafficPolicy\` must be 'ALLOW_ANY' or 'REGISTRY_ONLY', got ${JSON.stringify(o.outboundTrafficPolicy)}`);
  }
  if (o.analysis !== undefined && !ANALYSIS_MODES.includes(o.analysis)) throw new InvalidArgumentError(`createMesh: \`analysis\` must be one of ${ANALYSIS_MODES.map((m) => `'${m}'`).join(', ')}, got ${JSON.stringify(o.analysis)}`);
  if ((o as { analyze?: unknown }).analyze !== undefined) throw new InvalidArgumentError("createMesh: `analyze` was replaced by `analysis` ('advisory' | 'blocking' | 'off'); analysis findings no longer refuse config unless `analysis: 'blocking'`");
  if (o.logger !== undefined && (o.logger === null || typeof o.logger.warn !== 'function')) throw new InvalidArgumentError('createMesh: `logger` must have a warn(message) method (console, pino, winston, …)');
  if (o.controlPlane !== undefined) return createControlPlaneMesh(o);
  const loaded = await loadConfig(o.config as ConfigSource, { defaultNamespace: o.namespace ?? 'default', analysis: o.analysis });
  if (!loaded.ok) throw new ConfigError(loaded.issues.all);
  const snapshot = await compileSnapshotAsync(loaded.resources, workloadOf(o));
  const mesh = new Mesh(o, snapshot);
  await mesh.startWatching();
  // On the next turn, so a listener added right after `await createMesh(...)` sees it (as in control-plane mode).
  setImmediate(() => mesh.configApplied({ version: snapshot.version, endpointsVersion: '', source: 'file', findings: loaded.findings }));
  return mesh;
}

function nonNegative(o: MeshOptions, key: 'startupTimeoutMs' | 'drainMs', fallback: number): number {
  const v = o[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new InvalidArgumentError(`createMesh: \`${key}\` must be a non-negative number of milliseconds, got ${String(v)}`);
  return v;
}

async function createControlPlaneMesh(o: MeshOptions): Promise<Mesh> {
  let urls: string[];
  try {
    urls = controlPlaneUrls(o.controlPlane);
  } catch (e) {
    throw new InvalidArgumentError(`createMesh: ${(e as Error).message}`);
  }
  const token = o.token ?? process.env[TOKEN_ENV];
  if (o.token !== undefined && typeof o.token !== 'string') throw new InvalidArgumentError('createMesh: `token` must be a string');
  const source = new ControlPlaneSource({
    urls,
    token: token === '' ? undefined : token,
    workload: workloadOf(o),
    locality: o.locality ?? '',
    analysis: o.analysis,
    cacheDir: o.cacheDir,
    startupTimeoutMs: nonNegative(o, 'startupTimeoutMs', 10_000),
    failOpen: o.failOpen === true,
    drainMs: nonNegative(o, 'drainMs', 1000),
    clock: o.clock ?? systemClock,
    random: o.random ?? systemRandom,
    logger: o.logger ?? DEFAULT_LOGGER,
  });
  const first = await source.start();
  const mesh = new Mesh(o, first, source);
  source.attach({
    install: (snapshot) => mesh.install(snapshot),
    emit: (name, payload) => {
      if (name === 'config') mesh.configApplied(payload as ConfigAppliedEvent);
      else mesh.emit(name, payload as never);
    },
  });
  return mesh;
}
