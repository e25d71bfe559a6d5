/**
 * `mesh.grpc`: grpc-js clients whose calls go through the mesh, and grpc-js servers whose calls
 * the mesh admits.
 *
 * ```ts
 * const client = mesh.grpc.client(ReviewsClient, 'reviews:9090');
 * // or, constructing the client yourself:
 * const client = new ReviewsClient('reviews:9090', grpc.credentials.createInsecure(), mesh.grpc.channelOptions());
 *
 * const server = new grpc.Server({ interceptors: mesh.grpc.serverInterceptors() });
 * await mesh.grpc.bind(server, '0.0.0.0:9090');   // PeerAuthentication: plaintext and mTLS on one port
 * ```
 *
 * @module
 */
import type { ChannelCredentials, ChannelOptions, ClientOptions, Server, ServerCredentials, ServerInterceptor } from '@grpc/grpc-js';
import type { InboundGuard } from '../../inbound/guard.ts';
import type { InboundTls } from '../server/inbound-tls.ts';
import { meshServerCredentials } from './server-credentials.ts';
import { meshServerInterceptor } from './server-interceptor.ts';
import { GrpcConnections, GrpcListener, parseBindAddress } from './server-listen.ts';
import { GrpcPeers } from './server-peer.ts';
import { judgeUnserved } from './server-unserved.ts';
import type { Clock } from '../../core/clock.ts';
import type { ErrorMode } from '../../core/exchange.ts';
import type { Dispatch } from '../../core/layer.ts';
import type { WorkloadIdentity } from '../../core/observe.ts';
import type { MeshCallContext } from './call.ts';
import { MeshChannel, targetAuthority } from './channel.ts';
import { GRPC_BUNDLE_HINT, grpcJs } from './grpc-js.ts';
import { InvalidArgumentError } from '../../core/errors.ts';

/** What `mesh.grpc` needs from its mesh. */
export interface MeshGrpcOptions {
  readonly clock: Clock;
  readonly errors: ErrorMode;
  readonly retryBufferBytes: number;
  readonly workload: WorkloadIdentity | undefined;
  /** Calls without `x-request-id` get one (Istio's `proxyHeaders.requestId`). @defaultValue true */
  readonly requestId?: boolean;
  /** Responses get `x-envoy-upstream-service-time`, overflow answers `x-envoy-overloaded` (Istio's `proxyHeaders.envoyDebugHeaders`). @defaultValue true */
  readonly envoyHeaders?: boolean;
  pipeline(): Dispatch;
  closed(): boolean;
  /** The mesh's server side: its guard (the current admission phases) and PeerAuthentication with the workload's credentials. */
  readonly server: { guard(): InboundGuard; readonly tls: InboundTls; readonly closeTimeoutMs: number; readonly debug?: (message: string) => void };
}

/**
 * A grpc-js client class (what `grpc.makeGenericClientConstructor` or `@grpc/proto-loader`'s
 * `loadPackageDefinition` gives, or a generated client).
 * @category gRPC
 */
export type GrpcClientConstructor<C> = new (address: string, credentials: ChannelCredentials, options?: ClientOptions) => C;

/**
 * The mesh's gRPC client side (`mesh.grpc`).
 * @category gRPC
 */
export class MeshGrpc {
  readonly #o: MeshGrpcOptions;
  #ctx: MeshCallContext | undefined;
  #peers: GrpcPeers | undefined;
  readonly #listeners = new Set<GrpcListener>();

  /** @internal made by the mesh. */
  constructor(o: MeshGrpcOptions) {
    this.#o = o;
  }

  get #context(): MeshCallContext {
    const o = this.#o;
    this.#ctx ??= { grpc: grpcJs(), clock: o.clock, errors: o.errors, retryBufferBytes: o.retryBufferBytes, workload: o.workload, requestId: o.requestId !== false, envoyHeaders: o.envoyHeaders !== false, pipeline: o.pipeline, closed: o.closed };
    return this.#ctx;
  }

  /**
   * A channel to the mesh service `target` (`'reviews:9090'`), for a client's `channelOverride`.
   * The port is required: routes match on it. Of `options`, the message-size limits
   * (`grpc.max_receive_message_length`, 4 MiB by default, and `grpc.max_send_message_length`)
   * apply to its calls, as a grpc-js channel applies them.
   */
  channel(target: string, options?: ChannelOptions): MeshChannel {
    return new MeshChannel(this.#context, target, options);
  }

  /**
   * A grpc-js client for the mesh service `target` (`'reviews:9090'`): `new ClientCtor(target, …)`
   * with the mesh as its channel. Other client options (interceptors, …) apply as usual; channel
   * options that configure grpc-js's own connections do not (the mesh's connections follow the
   * DestinationRule). The client has the constructor's instance type: a generated client's own
   * type, grpc-js's `ServiceClient` for a `ServiceClientConstructor`, and `any` for a constructor
   * typed `any` (a package definition loaded without types), as `new ClientCtor(…)` would give.
   */
  client<T extends GrpcClientConstructor<unknown>>(ClientCtor: T, target: string, options?: ClientOptions): InstanceType<T> {
    if (typeof ClientCtor !== 'function') {
      throw new InvalidArgumentError(`mesh.grpc.client(ClientCtor, target): ClientCtor must be a grpc-js client class (generated, or from grpc.loadPackageDefinition(…).pkg.Service), got ${ClientCtor === null ? 'null' : typeof ClientCtor}`);
    }
    if (options !== undefined && (options === null || typeof options !== 'object')) throw new InvalidArgumentError(`mesh.grpc.client(ClientCtor, target, options): options must be grpc-js client options (an object), got ${options === null ? 'null' : typeof options}`);
    targetAuthority(target);
    const g = grpcJs();
    return new ClientCtor(target, g.credentials.createInsecure(), { ...options, channelOverride: this.channel(target, options) }) as InstanceType<T>;
  }

  /**
   * Client options that put a client you construct yourself on the mesh:
   * `new ClientCtor('reviews:9090', grpc.credentials.createInsecure(), { ...mesh.grpc.channelOptions(), ...yours })`.
   * The credentials given to the constructor are not used: the mesh decides TLS per DestinationRule.
   */
  channelOptions(): ClientOptions {
    return { channelFactoryOverride: (address: string, _credentials: ChannelCredentials, options: ChannelOptions) => this.channel(address, options) };
  }

  get #serverPeers(): GrpcPeers {
    this.#peers ??= new GrpcPeers(this.#o.server.tls, new GrpcConnections());
    return this.#peers;
  }

  /**
   * Interceptors for a grpc-js server: `new grpc.Server({ interceptors: mesh.grpc.serverInterceptors() })`.
   * Every call is judged by the mesh's admission phases (JWT from metadata, AuthorizationPolicy
   * with paths `/pkg.Service/Method` and method `POST`, local rate limits) before its handler
   * runs; the handler runs inside the call's MeshContext (deadline, peer, request principal) and
   * the call is published for telemetry. Put them first when the server has other interceptors.
   */
  serverInterceptors(): ServerInterceptor[] {
    const o = this.#o;
    const i = meshServerInterceptor({ grpc: grpcJs(), guard: o.server.guard, peers: this.#serverPeers });
    this.#interceptors.add(i);
    return [i];
  }

  /** The interceptors {@link serverInterceptors} gave out, to tell a server that judges its calls from one that does not. */
  readonly #interceptors = new WeakSet<ServerInterceptor>();

  /** `server` runs this mesh's interceptors (grpc-js keeps a server's `interceptors` option as its `interceptors` field). */
  #judges(server: Server): boolean {
    const list = (server as unknown as { interceptors?: unknown }).interceptors;
    return Array.isArray(list) && list.some((i) => typeof i === 'function' && this.#interceptors.has(i as ServerInterceptor));
  }

  /**
   * Makes the mesh judge calls to methods `server` does not serve. grpc-js answers such a call
   * `UNIMPLEMENTED` before any interceptor runs, so without this an AuthorizationPolicy, a JWT rule
   * or a rate limit never applies to it and telemetry never sees it, where a sidecar judges every
   * request first. After it, such a call goes through the server's interceptors (the mesh's
   * judgement: `PERMISSION_DENIED`, `UNAUTHENTICATED`, …) and, when admitted, ends `UNIMPLEMENTED`
   * as before. {@link bind} does this itself; call it for a server bound with `server.bindAsync`.
   * Returns `server`.
   */
  judgeUnserved<S extends Server>(server: S): S {
    if (server === null || typeof server !== 'object' || typeof (server as { addService?: unknown }).addService !== 'function') throw new InvalidArgumentError('mesh.grpc.judgeUnserved(server): server must be a grpc-js Server');
    if (!judgeUnserved(grpcJs(), server)) this.#o.server.debug?.('meshlet: mesh.grpc.judgeUnserved: this grpc-js Server has no _retrieveHandler (grpc-js other than 1.14?): calls to methods it does not serve are answered by grpc-js before the mesh judges them');
    return server;
  }

  /**
   * Credentials for `server.bindAsync(address, mesh.grpc.serverCredentials(), cb)`: mTLS with the
   * workload's certificate (rotated as it renews), a client certificate required and verified
   * against the mesh's trust bundle, and its SPIFFE identity checked per call. A grpc-js listener
   * serves TLS or plaintext, not both: for PERMISSIVE or DISABLE ports use {@link bind}.
   */
  serverCredentials(): ServerCredentials {
    return meshServerCredentials(grpcJs(), this.#serverPeers, this.#o.server.debug);
  }

  /**
   * Serves `server` on `address` (`'0.0.0.0:9090'`, `'[::]:0'`) with PeerAuthentication applied
   * to each connection as a sidecar's inbound listener does: STRICT takes mTLS only, PERMISSIVE
   * mTLS and plaintext on the same port, DISABLE plaintext only (per port with
   * `portLevelMtls`; a new config applies to the next connection). Resolves to the port. The
   * port is closed by `mesh.close()` (calls in flight get `closeTimeoutMs` to finish). Calls to
   * methods the server does not serve are judged too ({@link judgeUnserved}). Requires
   * grpc-js ≥ 1.14 (`createConnectionInjector`).
   */
  async bind(server: Server, address: string): Promise<number> {
    const { host, port } = parseBindAddress(address);
    if (server === null || typeof server !== 'object' || typeof (server as { createConnectionInjector?: unknown }).createConnectionInjector !== 'function') {
      throw new InvalidArgumentError('mesh.grpc.bind(server, address): server must be a grpc-js Server (grpc-js 1.14 or later, which has createConnectionInjector)');
    }
    // grpc-js checks `instanceof ServerCredentials`: a Server of another copy (an app that bundled grpc-js) would fail there, unexplained.
    if (!(server instanceof grpcJs().Server)) throw new InvalidArgumentError(`mesh.grpc.bind(server, ${JSON.stringify(address)}): server is a grpc-js Server of another copy of @grpc/grpc-js than the one meshlet loads; ${GRPC_BUNDLE_HINT}`);
    if (this.#o.closed()) throw new InvalidArgumentError(`mesh.grpc.bind(server, ${JSON.stringify(address)}): the mesh is closed`);
    // grpc-js keeps a shut-down server's state in its `shutdown` field (1.14); its bindAsync refuses such a server too.
    if ((server as unknown as { shutdown?: unknown }).shutdown === true) throw new InvalidArgumentError(`mesh.grpc.bind(server, ${JSON.stringify(address)}): the server is shut down (tryShutdown / forceShutdown); make a new grpc.Server`);
    this.judgeUnserved(server);
    const judged = this.#judges(server);
    const probes = this.#o.server.guard().probes !== undefined;
    if (probes && !judged) {
      this.#o.server.tls.warnOnce(
        `meshlet: mesh.grpc.bind(${address}): probePaths are set, but this grpc-js Server has no mesh.grpc.serverInterceptors() of this mesh, which alone can keep a plaintext connection to the probe methods; under STRICT its plaintext connections are refused, the probes' too. Give the server the interceptors: new grpc.Server({ interceptors: mesh.grpc.serverInterceptors() })`,
      );
    }
    const l = new GrpcListener(grpcJs(), server, this.#o.server.tls, this.#serverPeers.connections, probes, judged);
    this.#listeners.add(l);
    let bound: number;
    try {
      bound = await l.listen(host, port);
    } catch (err) {
      this.#listeners.delete(l);
      await l.close(0);
      // The listen error (EADDRINUSE, EACCES, …) as it is, saying which call and address it was.
      if (err instanceof Error) err.message = `mesh.grpc.bind(server, ${JSON.stringify(address)}): cannot listen: ${err.message}`;
      throw err;
    }
    if (this.#o.closed()) {
      // mesh.close() ran while the port was being bound: it is closed, not left open.
      this.#listeners.delete(l);
      await l.close(0);
      throw new InvalidArgumentError(`mesh.grpc.bind(server, ${JSON.stringify(address)}): the mesh was closed while the port was being bound`);
    }
    return bound;
  }

  /** @internal The ports {@link bind} listens on. */
  boundPorts(): number[] {
    return [...this.#listeners].map((l) => l.port).filter((p) => p > 0);
  }

  /** @internal Tells the callers of the ports {@link bind} opened to go (GOAWAY) while they still accept: mesh.close()'s drain. */
  startDrain(): void {
    for (const l of this.#listeners) l.startDrain();
  }

  /** @internal Closes the ports {@link bind} opened (mesh.close()). */
  async close(): Promise<void> {
    const ls = [...this.#listeners];
    this.#listeners.clear();
    await Promise.all(ls.map((l) => l.close(this.#o.server.closeTimeoutMs)));
  }
}
