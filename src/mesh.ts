/**
 * `createMesh`: wires a config source, the compiled snapshot, the outbound pipeline and the
 * adapters into one object the application holds. Its diagnostics are assembled in
 * `mesh-diagnostics.ts`, its explanations in `mesh-explain.ts`.
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import type { MeshEvents, MeshLogger, MeshOptions, RejectedEvent } from './mesh-options.ts';
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import type { MeshDispatcher } from './adapters/undici/dispatcher.ts';
import type { UndiciTransport } from './adapters/undici/transport.ts';
import type { GrpcTransport } from './adapters/grpc/transport.ts';
import type { MeshGrpc } from './adapters/grpc/mesh-grpc.ts';
import type { FastifyPlugin, FastifyServerOptions } from './adapters/server/fastify.ts';
import type { MeshServers } from './adapters/server/servers.ts';
import { currentContext, type MeshContext } from './core/context.ts';
import { afterPart, closeInOrder } from './core/close-in-order.ts';
import { reportFindings, reportWarnings } from './config/findings.ts';
import type { ConfigIssue } from './config/issues.ts';
import type { Registration, RegisterOptions } from './control-plane/registration.ts';
import type { ConfigAppliedEvent, ConfigOrigin, ControlPlaneSource } from './control-plane/source.ts';
import { InvalidArgumentError } from './core/errors.ts';
import { type ConfigAppliedMessage, type ConfigRejectedMessage, channels, type WorkloadIdentity } from './core/observe.ts';
import type { Explanation, ExplainRequest } from './outbound/explain.ts';
import type { InboundExplainRequest, InboundExplanation } from './inbound/explain.ts';
import type { Outbound } from './outbound/pipeline.ts';
import { CredentialHolder } from './security/identity/credentials.ts';
import type { IdentitySource } from './security/identity/source.ts';
import type { Snapshot } from './routing/compile.ts';
import type { MeshTelemetry } from './mesh-telemetry.ts';
import { buildMeshGrpc, buildMeshParts } from './mesh-parts.ts';
import type { GatewayNames } from './outbound/gateway-names.ts';
import { FileConfig, type FileConfigCaches } from './mesh-file-config.ts';
import { type MeshDiagnostics, meshDiagnostics } from './mesh-diagnostics.ts';
import { explainInboundRequest, explainOutbound } from './mesh-explain.ts';
import { meshFetch } from './mesh-fetch.ts';
import type { AdminHandle } from './mesh-admin-options.ts';

/**
 * The logger when none is given: warnings and errors to the console (stderr); a library says
 * nothing on stdout unless asked to.
 */
export const DEFAULT_LOGGER: MeshLogger = Object.freeze({ warn: (m: string) => console.warn(m), error: (m: string) => console.error(m) });

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
  readonly #grpcTransport: GrpcTransport;
  #grpc: MeshGrpc | undefined;
  readonly #o: MeshOptions;
  readonly #source: ControlPlaneSource | undefined;
  /** Embedded mode's config files: loaded, watched and reloaded. */
  readonly #files: FileConfig;
  #closed: Promise<void> | undefined;
  /** Set once close() has drained the servers: new outbound calls are refused from then on. */
  #refusing = false;
  #identity: WorkloadIdentity | undefined;
  readonly #servers: MeshServers;
  /** This workload's certificate, key and trust bundle, as its identity source last delivered them. */
  readonly #credentials: CredentialHolder;
  /** The source filling {@link Mesh.credentials} (files, a dev CA), stopped by `close()`. */
  #identitySource: IdentitySource | undefined;
  /** The findings of the config in use (each is logged once, when it first appears). */
  #findings: readonly ConfigIssue[] = [];
  /** The validation warnings of the files in use (logged once each, as findings are). */
  #warnings: readonly ConfigIssue[] = [];
  /** Tracing, Istio's metrics, meshlet's own metrics and access logs. */
  readonly #telemetry: MeshTelemetry;
  /** East-west gateway host names (their addresses, for diagnostics); closed by the config source. */
  readonly #gatewayNames: GatewayNames | undefined;
  /** The admin endpoint (`admin` option), closed last by `close()`. */
  #admin: AdminHandle | undefined;

  /** @internal use {@link createMesh}. */
  constructor(o: MeshOptions, snapshot: Snapshot, source?: ControlPlaneSource, credentials?: CredentialHolder, fileCaches?: FileConfigCaches, gatewayNames?: GatewayNames) {
    super();
    this.#gatewayNames = gatewayNames ?? fileCaches?.gatewayNames;
    this.#credentials = credentials ?? new CredentialHolder();
    this.#o = o;
    this.#files = new FileConfig(
      {
      options: o,
      logger: () => this.#logger,
      snapshot: () => this.snapshot,
      install: (next) => this.install(next),
      applied: (version, findings, warnings) => this.#configApplied({ version, endpointsVersion: '', source: 'file', findings }, warnings),
      rejected: (issues, error) => this.configRejected({ issues, error }),
      watchState: (e) => this.emit('watch', e),
      },
      fileCaches,
    );
    this.#source = source;
    const parts = buildMeshParts(o, snapshot, this.#credentials, this.identity, this.#logger, {
      event: (e) => this.emit(e.type, e),
      close: () => this.close(),
      config: () => ({ version: this.configVersion, source: this.configSource }),
      grpcChannel: (target, options) => this.grpc.channel(target, options),
    });
    this.#transport = parts.transport;
    this.#grpcTransport = parts.grpcTransport;
    this.#outbound = parts.outbound;
    this.dispatcher = parts.dispatcher;
    this.#servers = parts.servers;
    this.#telemetry = parts.telemetry;
  }

  /**
   * gRPC clients through the mesh (`@grpc/grpc-js`, loaded when first used):
   * `mesh.grpc.client(ReviewsClient, 'reviews:9090')`, or `mesh.grpc.channelOptions()` for a
   * client you construct yourself. See docs/grpc.md.
   */
  get grpc(): MeshGrpc {
    this.#grpc ??= buildMeshGrpc(this.#o, this.#outbound, this.#servers, this.identity, this.#logger, () => this.#refusing);
    return this.#grpc;
  }

  /** @internal The workload's TLS credentials (the transport and the servers read and subscribe to them). */
  get credentials(): CredentialHolder {
    return this.#credentials;
  }

  /** @internal The identity source that fills {@link Mesh.credentials}; `close()` stops it. */
  adoptIdentitySource(source: IdentitySource): void {
    this.#identitySource = source;
  }

  /** @internal The admin endpoint createMesh started for this mesh; `close()` closes it. */
  adoptAdmin(admin: AdminHandle): void {
    this.#admin = admin;
  }

  /** The admin endpoint's URL (`http://127.0.0.1:15000`), with the `admin` option; undefined without. */
  get adminUrl(): string | undefined {
    return this.#admin?.url;
  }

  /** Who this mesh is: service, namespace, labels and service account (named in observation messages). */
  get identity(): WorkloadIdentity {
    this.#identity ??= Object.freeze({
      service: this.#o.service,
      namespace: this.#o.namespace ?? 'default',
      labels: Object.freeze({ ...(this.#o.labels ?? {}) }),
      serviceAccount: this.#o.serviceAccount ?? 'default',
      workloadName: this.#o.workloadName ?? this.#o.service,
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

  /**
   * Options for `Fastify({ ...mesh.fastifyOptions() })`: route on the normalized path
   * (`rewriteUrl`) and serve on the mesh's server (`serverFactory`: PeerAuthentication, mTLS and
   * plaintext on one port, drained by `mesh.close()`).
   */
  fastifyOptions(): FastifyServerOptions {
    return this.#servers.fastifyOptions();
  }

  /**
   * A node:http server that applies PeerAuthentication to each connection — mTLS with this
   * workload's certificate and plaintext on one port, as the mode of the port allows — and judges
   * each request before `listener` (an Express app, any `(req, res)` function); `mesh.close()`
   * stops it accepting and drains it. See docs/mtls.md.
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

  /**
   * For a server you made (the one `app.listen()` returns, `http.createServer`, `fastify.server`):
   * every request node:http hands it is judged before any of its listeners, as on
   * `mesh.createServer` — WebSocket upgrades (`ws`, `@fastify/websocket`, socket.io), `CONNECT`,
   * `Expect: 100-continue` uploads to a `'checkContinue'` listener, and `'request'` listeners a
   * library put in front of yours, none of which reach `mesh.express()` or the Fastify plugin.
   * The server from `mesh.fastifyOptions()` then judges each request before Fastify's hooks too
   * (NestJS's middleware). Returns the server.
   * @example const server = app.listen(8000); mesh.protect(server); new WebSocketServer({ server });
   */
  protect<S extends object>(server: S): S {
    return this.#servers.protect(server);
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
    return this.#source === undefined ? this.snapshot.version : this.#source.state.configVersion;
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
    // Registered with an identity, the workload accepts mTLS: its ports must be the mesh servers'.
    // createMesh's named ports are the default.
    const o = options !== null && typeof options === 'object' && options.ports === undefined && this.#o.ports !== undefined ? { ...options, ports: this.#o.ports } : options;
    if (this.#o.identity !== 'none' && o !== null && typeof o === 'object' && !Object.hasOwn(o.labels ?? {}, 'security.istio.io/tlsMode')) this.#servers.warnUnserved(o.ports ?? {}, this.#grpc?.boundPorts() ?? []);
    return this.#source.register(o);
  }

  /** @internal installs a snapshot from the config source. */
  install(snapshot: Snapshot): void {
    this.#transport.install(snapshot.resources);
    this.#grpcTransport.install(snapshot.resources);
    this.#outbound.install(snapshot);
    for (const t of [this.#transport, this.#grpcTransport]) t.passthroughSettings(this.#outbound.connectTimeoutMs, this.#outbound.tcpKeepalive);
    this.#servers.install(snapshot.resources);
    this.#telemetry.install(snapshot.resources);
  }

  /** @internal The HTTP transport (TLS decisions, for `/tap`) and the server side (phases, inbound rate limits, for `/stats`). */
  get parts(): { readonly transport: UndiciTransport; readonly servers: MeshServers } {
    return { transport: this.#transport, servers: this.#servers };
  }

  /** @internal The outbound data plane (cluster state, layers), for meshlet's own tools and benchmarks. */
  get outbound(): Outbound {
    return this.#outbound;
  }

  /**
   * What the data plane holds right now, as plain data: the config in use, mirrored-request counters, and every
   * cluster calls have used with its endpoints (in flight, ejected and until when). A copy: reading it changes nothing.
   */
  diagnostics(): MeshDiagnostics {
    const source = this.#identitySource?.kind ?? (this.#source === undefined ? undefined : 'control-plane');
    return meshDiagnostics(this.#outbound, this.#servers, this.#credentials, source, { version: this.configVersion, source: this.configSource }, this.#telemetry.otelAccessLogStats, this.#gatewayNames?.view());
  }

  /**
   * WHATWG `fetch` through the mesh (undici's implementation with {@link Mesh.dispatcher}). It
   * takes a URL, a string or a `Request` — Node's global one too; the `Response` is undici's
   * (for Node's global classes, call Node's `fetch` with `{ dispatcher: mesh.dispatcher }`).
   * In `errors: 'throw'` mode a mesh-made failure rejects with the {@link MeshletError}
   * itself rather than fetch's `TypeError('fetch failed')`.
   */
  fetch = (input: string | URL | Request, init?: RequestInit): Promise<Response> => meshFetch(this.dispatcher, input, init);

  /**
   * Explains how a request would be handled: the virtual host, which rule matched (and why
   * the earlier ones did not), the candidate destinations and their endpoints (in flight,
   * ejected and why), and every policy that applies. Nothing is sent.
   */
  explain(request: ExplainRequest): Explanation {
    return explainOutbound(this.#outbound, this.#transport, request);
  }

  /**
   * Explains how this workload's server side would judge a request on its way in: the normalized
   * path, what RequestAuthentication makes of its tokens (decoded without verification; keys are
   * not fetched), which AuthorizationPolicy and rule decide it (or the default deny), dry-run
   * outcomes and the audit hit, whether a CUSTOM provider would be asked, and which local rate
   * limit bucket it would draw from. Nothing is sent and no state changes; what the verdict
   * cannot know (a fetched key, an external authorizer's answer, a bucket's level) is listed in
   * `assumes`.
   */
  explainInbound(request: InboundExplainRequest): Promise<InboundExplanation> {
    return explainInboundRequest(this.snapshot.resources, this.identity, this.#o, request);
  }

  /** Applies a new set of resources now (what the file watcher does on a change). */
  reload(): Promise<boolean> {
    if (this.#o.config === undefined) return Promise.reject(new InvalidArgumentError('mesh.reload: only in embedded mode (`config`); the control plane pushes changes'));
    return this.#files.reload();
  }

  get #logger(): MeshLogger {
    return this.#o.logger ?? DEFAULT_LOGGER;
  }

  /** @internal a config is in use: log its new findings (and, from files, validation warnings) once, tell listeners. */
  configApplied(e: ConfigAppliedEvent, warnings: readonly ConfigIssue[] = []): void {
    this.#configApplied(e, warnings);
  }

  #configApplied(event: ConfigAppliedEvent, warnings: readonly ConfigIssue[] = []): void {
    // The DestinationRules' TLS files were read on this workload when the config was installed.
    const tlsFiles = this.#transport.install(this.snapshot.resources).issues;
    const e = tlsFiles.length === 0 ? event : { ...event, findings: [...event.findings, ...tlsFiles] };
    reportWarnings(this.#logger, `config ${e.version} (${e.source})`, this.#warnings, warnings);
    this.#warnings = warnings;
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

  /** @internal watches embedded mode's config paths (a missing path rejects). */
  startWatching(): Promise<void> {
    return this.#files.start();
  }

  /**
   * Tells the callers of the servers and gRPC ports the mesh made to go (HTTP/1: `Connection: close`, HTTP/2:
   * GOAWAY), deregisters (then waits `drainMs`, still accepting, if there were registrations),
   * stops watching files or the control plane, drains the servers the mesh made (requests in flight finish, for at most
   * `closeTimeoutMs`; their outbound calls still go out, as a sidecar keeps its outbound side up
   * while the app drains), sends access-log records to collectors (new outbound calls still go out meanwhile), then refuses new
   * outbound calls (HTTP: `MESHLET_ERR_INVALID_ARG`, gRPC: UNAVAILABLE) and closes every connection pool; outbound calls in flight
   * finish first. The records and the calls in flight get `closeTimeoutMs` together (then cancelled).
   */
  close(): Promise<void> {
    const grace = this.#o.closeTimeoutMs ?? 5000;
    this.#closed ??= closeInOrder([
      () => {
        this.#admin?.draining();
        this.#servers.startDrain();
        this.#grpc?.startDrain();
      },
      () => this.#source?.close(),
      () => this.#identitySource?.close(),
      () => this.#files.close(),
      () => [this.#grpc?.close(), this.#servers.close()],
      // The access logs' last exports first, while new calls still go out; one closeTimeoutMs bounds both.
      () => {
        const clock = this.#outbound.clock;
        const until = clock.now() + grace;
        return afterPart(this.#telemetry.closeExports(grace), () => {
          this.#refusing = true;
          this.dispatcher.refuseNewCalls();
          const left = Math.max(0, until - clock.now());
          return [this.#outbound.close(left), this.#transport.close(left), this.#grpcTransport.close(left)];
        });
      },
      // After the calls in flight ended: they are counted and logged. The admin endpoint answers until then (/ready: DRAINING).
      () => [this.#telemetry.close(), this.#admin?.close()],
    ]);
    return this.#closed;
  }
}
