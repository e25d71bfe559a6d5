/**
 * `createMesh`: wires a config source, the compiled snapshot, the outbound pipeline and the
 * adapters into one object the application holds.
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import { stat } from 'node:fs/promises';
import { fetch as undiciFetch } from 'undici';
import { MeshDispatcher } from './adapters/undici/dispatcher.ts';
import { classifyUndiciError } from './adapters/undici/classify.ts';
import { UndiciTransport } from './adapters/undici/transport.ts';
import type { FastifyPlugin } from './adapters/server/fastify.ts';
import { MeshServers, type PhaseCompiler } from './adapters/server/servers.ts';
import type { PathNormalization } from './inbound/path.ts';
import { currentContext, type MeshContext } from './core/context.ts';
import { reportFindings } from './config/findings.ts';
import { ANALYSIS_MODES, type AnalysisMode, type ConfigSource, loadConfig } from './config/load-config.ts';
import { type ConfigWatcher, debounceBursts, watchConfigPaths } from './config/watch.ts';
import { ParseCache } from './config/load.ts';
import type { ConfigIssue } from './config/issues.ts';
import { type Clock, type Random, systemClock, systemRandom } from './core/clock.ts';
import { TOKEN_ENV } from './control-plane/protocol.ts';
import type { Registration, RegisterOptions } from './control-plane/registration.ts';
import { type ConfigAppliedEvent, type ConfigOrigin, type ConnectedEvent, ControlPlaneSource, controlPlaneUrls, type DisconnectedEvent } from './control-plane/source.ts';
import { ConfigError, InvalidArgumentError, MeshletError } from './core/errors.ts';
import { type ConfigAppliedMessage, type ConfigRejectedMessage, channels, type WorkloadIdentity } from './core/observe.ts';
import type { ErrorMode } from './core/exchange.ts';
import { explain, type Explanation, type ExplainRequest } from './outbound/explain.ts';
import { Outbound, type OutboundEvent } from './outbound/pipeline.ts';
import { compileSnapshot, type Snapshot } from './routing/compile.ts';

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
   * This workload's service account: its identity (`spiffe://<trust domain>/ns/<namespace>/sa/<account>`),
   * as Kubernetes gives every pod one. @defaultValue 'default'
   */
  readonly serviceAccount?: string;
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
  /**
   * How long `close()` lets calls in flight finish before it cancels them (they fail with
   * `MESHLET_ERR_CLOSED`); like Istio's `terminationDrainDuration`. A call to a hung upstream on a
   * route without a timeout (Istio's default) would otherwise hold `close()` forever.
   * @defaultValue 5000
   */
  readonly closeTimeoutMs?: number;
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
   * How request paths are normalized before the server side judges them (MeshConfig
   * `pathNormalization`): `BASE` (RFC 3986 dot segments), `MERGE_SLASHES`, `DECODE_AND_MERGE_SLASHES`,
   * or `NONE`. The app is handed the normalized path, so it routes on the path that was judged.
   * @defaultValue 'BASE'
   */
  readonly pathNormalization?: PathNormalization;
  /** The namespace whose policies apply to every workload (Istio's root namespace). @defaultValue 'istio-system' */
  readonly rootNamespace?: string;
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

/** The admission phases a mesh builds from its config, in phase order (peer identity, JWT, authorization, rate limit). */
const INBOUND_PHASES: readonly PhaseCompiler[] = [];

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
 * The events of a {@link Mesh}, with their payloads. The names are the same in embedded and
 * control-plane mode.
 *
 * - `config`: a config is in use — at start (emitted on the next turn, so a listener added
 *   right after `await createMesh(...)` sees it), after each applied change, and (control-plane
 *   mode) when endpoints changed. Carries the version, where it came from, and its findings.
 * - `rejected`: a change was refused (schema errors, or findings under `analysis: 'blocking'`).
 * - `connected` / `disconnected`: the control-plane watch stream came up / went down
 *   (control-plane mode only).
 * - `ejected` / `returned`: outlier detection ejected an endpoint / let it back in.
 * @category Mesh
 */
export interface MeshEvents {
  config: [ConfigAppliedEvent];
  rejected: [RejectedEvent];
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
  #watchers: ConfigWatcher[] = [];
  readonly #parseCache = new ParseCache();
  /** Reloads once a burst of file events has settled. */
  readonly #reloadSoon = debounceBursts(
    () => void this.reload().catch((e: unknown) => this.#logger.warn(`meshlet: reloading config failed: ${String(e)}`)),
    100,
    1000,
  );
  #closed: Promise<void> | undefined;
  #identity: WorkloadIdentity | undefined;
  readonly #servers: MeshServers;
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
    this.#transport = new UndiciTransport(clock);
    this.#outbound = new Outbound(snapshot, {
      clock,
      random,
      locality: o.locality ?? '',
      labels: o.labels ?? {},
      sourceIp: o.sourceIp ?? '127.0.0.1',
      outboundTrafficPolicy: o.outboundTrafficPolicy ?? 'ALLOW_ANY',
      maxRetryAfterMs: o.maxRetryAfterMs ?? 10_000,
      maxMirrorsInFlight: o.maxMirrorsInFlight ?? 64,
      transports: { http: { dispatch: this.#transport.dispatch, passthrough: this.#transport.passthrough, classify: classifyUndiciError, refresh: (cs) => this.#transport.refresh(cs) } },
      onEvent: (e: OutboundEvent) => this.emit(e.type, e),
    });
    this.#servers = new MeshServers(
      {
        normalization: o.pathNormalization ?? 'BASE',
        rootNamespace: o.rootNamespace ?? 'istio-system',
        workload: this.identity,
        clock,
        compilers: INBOUND_PHASES,
        closeTimeoutMs: o.closeTimeoutMs ?? 5000,
      },
      snapshot.resources,
    );
    const pipeline = this.#outbound.dispatch;
    this.dispatcher = new MeshDispatcher({
      clock,
      workload: this.identity,
      errors: this.#errors,
      retryBufferBytes: o.retryBufferBytes ?? 1024 * 1024,
      pipeline: () => pipeline,
      onClose: () => this.close(),
    });
  }

  /** Who this mesh is: service, namespace, labels and service account (named in observation messages). */
  get identity(): WorkloadIdentity {
    this.#identity ??= Object.freeze({
      service: this.#o.service,
      namespace: this.#o.namespace ?? 'default',
      labels: Object.freeze({ ...(this.#o.labels ?? {}) }),
      serviceAccount: this.#o.serviceAccount ?? 'default',
    });
    return this.#identity;
  }

  /**
   * Express middleware (Express 4 and 5): `app.use(mesh.express())`, before your routes. Each
   * request is judged (path normalization, and the RequestAuthentication, AuthorizationPolicy
   * and rate limits that apply to this workload); a refused one is answered as Istio's sidecar
   * answers it, an admitted one reaches your routes with the normalized path, `req.meshlet`, and
   * its MeshContext (deadline, peer, request principal) around the handler.
   */
  express(): (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void {
    return this.#servers.express();
  }

  /**
   * A Fastify 5 plugin: `await fastify.register(mesh.fastify())` (not encapsulated: it guards
   * every route). Give Fastify `mesh.fastifyOptions()` too, so requests are routed on the
   * normalized path; without it a request whose path is not normal is refused (400).
   */
  fastify(): FastifyPlugin {
    return this.#servers.fastify();
  }

  /** Options for `Fastify({ ...mesh.fastifyOptions() })`: route on the normalized path (`rewriteUrl`). */
  fastifyOptions(): { rewriteUrl(req: IncomingMessage): string } {
    return this.#servers.fastifyOptions();
  }

  /**
   * A node:http server that judges each request before `listener` (an Express app, any
   * `(req, res)` function); `mesh.close()` stops it accepting and drains it.
   * @example mesh.createServer(app).listen(8000);
   */
  createServer(listener: RequestListener): Server {
    return this.#servers.createServer(listener);
  }

  /**
   * The MeshContext of the code running now: inside a request the mesh admitted, its deadline
   * (from `x-envoy-expected-rq-timeout-ms` or `grpc-timeout`), peer and request principal;
   * outbound calls made here honour the deadline.
   */
  context(): MeshContext {
    return currentContext();
  }

  /** Wraps any `(req, res)` listener (Koa's `app.callback()`, Hono's node adapter, …) with the mesh's judgement. */
  handler(listener: RequestListener): RequestListener {
    return this.#servers.handler(listener);
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
    this.#servers.install(snapshot.resources);
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
  async reload(): Promise<boolean> {
    if (this.#o.config === undefined) throw new InvalidArgumentError('mesh.reload: only in embedded mode (`config`); the control plane pushes changes');
    const loaded = await loadConfig(this.#o.config, { defaultNamespace: this.#o.namespace ?? 'default', analysis: this.#o.analysis, parseCache: this.#parseCache });
    if (!loaded.ok) {
      const error = new ConfigError(loaded.issues.all);
      this.#logger.warn(`meshlet: new config rejected, the last good config keeps serving.\n${error.message}`);
      this.configRejected({ issues: loaded.issues.all, error });
      return false;
    }
    const snapshot = compileSnapshot(loaded.resources, workloadOf(this.#o));
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
    const ch = channels.configApplied;
    if (ch.hasSubscribers) {
      ch.publish({ workload: this.identity, version: e.version, source: e.source, findings: e.findings.map((f) => ({ level: f.level, code: f.code, text: String(f) })) } satisfies ConfigAppliedMessage);
    }
    this.emit('config', e);
  }

  /** @internal new config was refused: tell listeners and subscribers. */
  configRejected(e: RejectedEvent): void {
    const ch = channels.configRejected;
    if (ch.hasSubscribers) ch.publish({ workload: this.identity, reasons: e.issues.filter((i) => i.level === 'error').map(String) } satisfies ConfigRejectedMessage);
    this.emit('rejected', e);
  }

  /** @internal */
  async startWatching(): Promise<void> {
    const src = this.#o.config;
    if (this.#o.watch === false || src === undefined) return;
    const paths = typeof src === 'string' ? [src] : Array.isArray(src) && src.every((s) => typeof s === 'string') ? (src as string[]) : [];
    for (const p of paths) await stat(p); // a missing path fails createMesh here, not silently later
    if (paths.length > 0) this.#watchers.push(watchConfigPaths(paths, () => this.#reloadSoon.trigger()));
  }

  /**
   * Deregisters (then waits `drainMs` if there were registrations), stops watching files or the
   * control plane, closes every connection pool; calls in flight finish first, for at most `closeTimeoutMs` (then they are cancelled).
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      await this.#source?.close();
      for (const w of this.#watchers) w.close();
      this.#watchers = [];
      this.#reloadSoon.cancel();
      const grace = this.#o.closeTimeoutMs ?? 5000;
      await Promise.all([this.#servers.close(), this.#outbound.close(grace), this.#transport.close(grace)]);
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
  nonNegative(o, 'closeTimeoutMs', 5000);
  if (o.controlPlane !== undefined) return createControlPlaneMesh(o);
  const loaded = await loadConfig(o.config as ConfigSource, { defaultNamespace: o.namespace ?? 'default', analysis: o.analysis });
  if (!loaded.ok) throw new ConfigError(loaded.issues.all);
  const snapshot = compileSnapshot(loaded.resources, workloadOf(o));
  const mesh = new Mesh(o, snapshot);
  await mesh.startWatching();
  // On the next turn, so a listener added right after `await createMesh(...)` sees it (as in control-plane mode).
  setImmediate(() => mesh.configApplied({ version: snapshot.version, endpointsVersion: '', source: 'file', findings: loaded.findings }));
  return mesh;
}

function nonNegative(o: MeshOptions, key: 'startupTimeoutMs' | 'drainMs' | 'closeTimeoutMs', fallback: number): number {
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
      else if (name === 'rejected') mesh.configRejected(payload as RejectedEvent);
      else mesh.emit(name, payload as never);
    },
  });
  return mesh;
}
