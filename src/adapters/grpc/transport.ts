/**
 * The gRPC transport: puts each attempt of a gRPC call on a grpc-js channel to the endpoint
 * the balance layer picked. Connections (a grpc-js channel each) per endpoint, kept per
 * cluster in the cluster state's `grpc` slot, built from the cluster's connection-pool
 * settings (rebuilt when they change; the old channels drain) and closed with the cluster.
 *
 * grpc-js's own retries and service-config retry policies are off on these channels
 * (`grpc.enable_retries: 0`, no service config from resolution): the mesh's retry layer is the
 * only one, so policies never double. The attempt is sent with the call's effective deadline
 * (the soonest of route timeout, caller deadline and MeshContext), so `grpc-timeout` carries
 * what remains.
 *
 * What comes back is translated into the pipeline's handler calls: response metadata is the
 * head (`onResponseStart(200, headers)`), each message is data, the status is the trailers —
 * or, for a trailers-only answer, a head with `grpc-status` — so the one classifier sees gRPC
 * statuses as Envoy does. A status grpc-js made up itself (connection refused, stream reset)
 * is a transport failure of the kind it is (classify.ts), never an answer.
 *
 * TLS is decided per endpoint as for HTTP calls (the undici adapter's plans: ISTIO_MUTUAL with
 * the workload's certificate and the destination's SPIFFE identities checked, auto-mTLS, a
 * DestinationRule's SIMPLE/MUTUAL), and a channel is made again when the decision changes.
 *
 * `maxConcurrentStreams`: a connection carries at most that many calls at once; more open
 * another connection to the endpoint, up to `tcp.maxConnections`; beyond that they wait for a
 * stream, up to the cluster's `http1MaxPendingRequests`, and beyond that overflow (UNAVAILABLE,
 * flag UO), as Envoy's HTTP/2 pool and pending queue do.
 *
 * @module
 */
import type { ChannelInterface as Channel, ChannelOptions, experimental, InterceptingListener, Metadata, StatusObject } from '@grpc/grpc-js';

type Call = experimental.CallStream;
import { bodyForAttempt } from '../../core/body.ts';
import type { Clock, Timer } from '../../core/clock.ts';
import { MeshletError } from '../../core/errors.ts';
import { type Controller, type Dispatch, type Exchange, type Headers, NO_CONTROLLER, type ResponseHandler } from '../../core/exchange.ts';
import type { FailureKind } from '../../core/outcome.ts';
import type { ClusterState, ClusterTransport } from '../../outbound/cluster-state.ts';
import { UNLIMITED } from '../../policies/limits.ts';
import type { HostState } from '../../routing/balancer/host.ts';
import type { AnyResource } from '../../config/resource.ts';
import { CredentialHolder } from '../../security/identity/credentials.ts';
import type { TlsFiles } from '../../security/tls-files.ts';
import { checkServer, type TlsPlan } from '../undici/tls-connector.ts';
import { type ClientTlsOptions, ClusterTlsPlans, TlsEnvironment } from '../undici/tls-plans.ts';
import { classifyGrpcError, failureKindOf, GrpcCallError, isLocalAfterHead, isServerTrailersOnly } from './classify.ts';
import { type GrpcJs, grpcJs } from './grpc-js.ts';
import { encodeGrpcMessage, metadataOf, responseHeadersOf } from './metadata.ts';

/** The name of this transport: an Exchange's `transport`, and its slot in each cluster's state. */
export const GRPC_TRANSPORT = 'grpc';

const EMPTY: Headers = Object.freeze(Object.create(null)) as Headers;

/** The channel options of a cluster's endpoint channels, from its connection-pool settings. */
export function channelOptions(cs: ClusterState): ChannelOptions {
  const pool = cs.cluster.settings.connectionPool;
  const o: ChannelOptions = {
    // The mesh retries; grpc-js must not (nor take a retry policy from a service config).
    'grpc.enable_retries': 0,
    'grpc.service_config_disable_resolution': 1,
    // This mesh's connections are its own (not shared with the app's channels or another mesh).
    'grpc.use_local_subchannel_pool': 1,
    // The caller's client decides message sizes; the mesh carries what it is given.
    'grpc.max_receive_message_length': -1,
    'grpc.max_send_message_length': -1,
  };
  if (pool.idleTimeoutMs !== undefined && pool.idleTimeoutMs > 0) o['grpc.client_idle_timeout_ms'] = pool.idleTimeoutMs;
  return o;
}

function hostPart(address: string): string {
  return address.includes(':') && !address.startsWith('[') ? `[${address}]` : address;
}

/** One connection (a grpc-js channel of its own) and the calls on it. */
class Conn {
  readonly channel: Channel;
  active = 0;
  constructor(channel: Channel) {
    this.channel = channel;
  }
}

/**
 * One endpoint's connections, and the attempts waiting for a stream on one. A connection
 * carries up to `maxConcurrentStreams` calls; more calls open another connection, up to
 * `tcp.maxConnections`, as Envoy's HTTP/2 pool does.
 */
class EndpointChannel {
  /** Makes a connection, or undefined when the endpoint's TLS cannot be set up (`failure` says why). */
  readonly #open: (() => Channel) | undefined;
  readonly failure: string | undefined;
  readonly conns: Conn[] = [];
  endpoint: HostState['endpoint'];
  /** The TLS epoch and plan key the connections are made for. */
  epoch: number;
  readonly key: string;
  readonly waiting: GrpcAttempt[] = [];
  constructor(open: (() => Channel) | undefined, failure: string | undefined, endpoint: HostState['endpoint'], epoch: number, key: string) {
    this.#open = open;
    this.failure = failure;
    this.endpoint = endpoint;
    this.epoch = epoch;
    this.key = key;
  }

  /** A connection with a free stream, a new one when `maxConnections` allows, or undefined. */
  take(maxStreams: number, maxConnections: number): Conn | undefined {
    for (const c of this.conns) if (c.active < maxStreams) return c;
    if (this.#open === undefined || (maxConnections !== UNLIMITED && this.conns.length >= maxConnections)) return undefined;
    const c = new Conn(this.#open());
    this.conns.push(c);
    return c;
  }

  /** Closes the connections (calls already on them finish). */
  close(): void {
    for (const c of this.conns) c.channel.close();
  }
}

/**
 * grpc-js credentials for a TLS plan (ISTIO_MUTUAL with the workload's certificate, or a
 * DestinationRule's SIMPLE/MUTUAL): the plan's secure context, and its server check (the
 * destination's SPIFFE identities, the rule's subjectAltNames, or the host name).
 */
function credentialsFor(g: GrpcJs, plan: TlsPlan) {
  if (plan.verify.kind === 'none') return g.credentials.createFromSecureContext(plan.context, { rejectUnauthorized: false });
  return g.credentials.createFromSecureContext(plan.context, { checkServerIdentity: (host, cert) => checkServer(plan, host, cert) });
}

/** Where an attempt runs: it admits the attempt to a stream and keeps it until it ends (close() drains them). */
interface AttemptOwner {
  /** Sends the attempt now, queues it for a stream, or refuses it (overflow). */
  admit(e: EndpointChannel | undefined, a: GrpcAttempt): 'go' | 'queued' | 'overflow';
  /** The attempt left the wire (`onWire`: the stream on `a.conn` is free) or the queue. */
  done(e: EndpointChannel | undefined, a: GrpcAttempt, onWire: boolean): void;
}

/** Attempts in flight, that close() waits for (and cancels after its grace period). */
class Live {
  readonly #set = new Set<GrpcAttempt>();
  #onIdle: (() => void) | undefined;
  add(a: GrpcAttempt): void {
    this.#set.add(a);
  }
  delete(a: GrpcAttempt): void {
    this.#set.delete(a);
    if (this.#set.size === 0) this.#onIdle?.();
  }
  /** Waits until no attempt is left, or `graceMs`; then cancels what is left with MESHLET_ERR_CLOSED. */
  async drain(graceMs: number, clock: Clock): Promise<void> {
    if (this.#set.size === 0) return;
    let timer: Timer | undefined;
    const idle = new Promise<boolean>((r) => (this.#onIdle = () => r(false)));
    const timedOut = graceMs === Number.POSITIVE_INFINITY ? await idle : await Promise.race([idle, new Promise<boolean>((r) => (timer = clock.setTimer(() => r(true), graceMs, true)))]);
    timer?.clear();
    this.#onIdle = undefined;
    if (!timedOut) return;
    const err = new MeshletError('MESHLET_ERR_CLOSED', `mesh.close(): the call was still running after closeTimeoutMs (${graceMs} ms) and was cancelled`);
    for (const a of [...this.#set]) a.abort(err);
  }
}

/** The channels of one cluster, by endpoint. */
class ClusterChannels implements ClusterTransport, AttemptOwner {
  readonly #g: GrpcJs;
  readonly #env: TlsEnvironment;
  #plans: ClusterTlsPlans | undefined;
  readonly #hosts = new Map<HostState, EndpointChannel>();
  readonly options: ChannelOptions;
  readonly #clock: Clock;
  readonly #cs: ClusterState;
  /** Attempts in flight on these channels (close() waits for them, then cancels them). */
  readonly #live = new Live();
  #closed = false;

  constructor(g: GrpcJs, options: ChannelOptions, cs: ClusterState, clock: Clock, env: TlsEnvironment) {
    this.#g = g;
    this.#env = env;
    this.options = options;
    this.#cs = cs;
    this.#clock = clock;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The cluster's TLS plans of the current epoch. */
  #tlsPlans(): ClusterTlsPlans {
    let p = this.#plans;
    if (p === undefined || p.epoch !== this.#env.epoch) {
      p = new ClusterTlsPlans(this.#cs.cluster, this.#env, true);
      this.#plans = p;
    }
    return p;
  }

  /**
   * The endpoint's channel, made on first use, and again when its TLS decision changed (new
   * credentials, a new DestinationRule or PeerAuthentication): the old channel's calls finish.
   */
  get(host: HostState): EndpointChannel {
    const e = this.#hosts.get(host);
    if (e !== undefined && e.endpoint === host.endpoint && e.epoch === this.#env.epoch) return e;
    const { plan, failure } = this.#tlsPlans().planFor(host.endpoint);
    const key = `${host.endpoint.key}|${failure !== undefined ? `fail|${failure}` : (plan?.key ?? '')}`;
    if (e !== undefined && e.key === key) {
      e.endpoint = host.endpoint;
      e.epoch = this.#env.epoch;
      return e;
    }
    e?.close();
    const g = this.#g;
    let open: (() => Channel) | undefined;
    if (failure === undefined) {
      const target = `${hostPart(host.endpoint.address)}:${host.endpoint.port}`;
      // TLS names the service (Istio's SNI for mTLS); the channel still dials the endpoint's address.
      const options = plan?.servername === undefined ? this.options : { ...this.options, 'grpc.ssl_target_name_override': plan.servername };
      const creds = plan === undefined ? g.credentials.createInsecure() : credentialsFor(g, plan);
      open = () => new g.Channel(target, creds, options);
    }
    const next = new EndpointChannel(open, failure, host.endpoint, this.#env.epoch, key);
    this.#hosts.set(host, next);
    return next;
  }

  /** Sends the attempt now, or queues it for a stream of its endpoint's connection, or refuses it (the queue is full). */
  admit(e: EndpointChannel | undefined, a: GrpcAttempt): 'go' | 'queued' | 'overflow' {
    if (e === undefined) return 'go';
    const conn = e.take(this.#cs.cluster.settings.connectionPool.maxConcurrentStreams, this.#cs.limiter.limits.maxConnections);
    if (conn !== undefined) {
      conn.active++;
      a.conn = conn;
      this.#live.add(a);
      return 'go';
    }
    const maxPending = this.#cs.limiter.limits.maxPending;
    if (maxPending !== UNLIMITED && e.waiting.length >= maxPending) return 'overflow';
    e.waiting.push(a);
    this.#live.add(a);
    return 'queued';
  }

  done(e: EndpointChannel | undefined, a: GrpcAttempt, onWire: boolean): void {
    this.#live.delete(a);
    if (e === undefined) return;
    if (!onWire) {
      const i = e.waiting.indexOf(a);
      if (i !== -1) e.waiting.splice(i, 1);
      return;
    }
    // The stream is free: the first attempt waiting for one takes it.
    const conn = a.conn as Conn;
    const next = e.waiting.shift();
    if (next !== undefined) {
      next.conn = conn;
      next.go();
    } else conn.active--;
  }

  removeHost(host: HostState): void {
    const e = this.#hosts.get(host);
    if (e === undefined) return;
    this.#hosts.delete(host);
    // grpc-js lets the calls already on the connection finish.
    e.close();
  }

  /** Stops new calls; calls in flight may finish for `graceMs`, then they are cancelled. */
  async close(graceMs = Number.POSITIVE_INFINITY): Promise<void> {
    this.#closed = true;
    for (const e of this.#hosts.values()) e.close();
    this.#hosts.clear();
    await this.#live.drain(graceMs, this.#clock);
  }
}

/** Calls to addresses outside the mesh: a channel per address, no stream limits, drained on close. */
class PassthroughOwner implements AttemptOwner {
  readonly live = new Live();
  admit(_e: EndpointChannel | undefined, a: GrpcAttempt): 'go' {
    this.live.add(a);
    return 'go';
  }
  done(_e: EndpointChannel | undefined, a: GrpcAttempt): void {
    this.live.delete(a);
  }
}

/** One attempt on one endpoint: the controller the pipeline sees, and grpc-js's listener. */
class GrpcAttempt implements Controller, InterceptingListener {
  aborted = false;
  paused = false;
  reason: Error | null = null;
  readonly #g: GrpcJs;
  readonly #ex: Exchange;
  readonly #handler: ResponseHandler;
  readonly #clock: Clock;
  /** The connection the attempt goes on (given when it is admitted). */
  conn: Conn | undefined;
  readonly #owner: AttemptOwner;
  readonly #e: EndpointChannel | undefined;
  #call: Call | undefined;
  #state: 0 | 1 | 2 = 0; // 0 waiting for a stream, 1 on the wire, 2 over
  #gotHead = false;
  #reading = false;
  /** The pipeline got this controller (onRequestStart). */
  #announced = false;
  /** Resolves the pending write, so a pump never waits on a call that ended. */
  #wrote: (() => void) | undefined;

  constructor(g: GrpcJs, ex: Exchange, handler: ResponseHandler, clock: Clock, conn: Conn | undefined, owner: AttemptOwner, e: EndpointChannel | undefined) {
    this.#g = g;
    this.#ex = ex;
    this.#handler = handler;
    this.#clock = clock;
    this.conn = conn;
    this.#owner = owner;
    this.#e = e;
  }

  /** Admits the attempt to a stream of its endpoint's connection, and sends it. */
  start(): void {
    const r = this.#owner.admit(this.#e, this);
    if (r === 'go') this.go();
    else if (r === 'overflow') {
      this.#state = 2;
      const err = new MeshletError('MESHLET_ERR_OVERLOADED', `upstream overflow: ${this.#e?.endpoint.key} has maxConcurrentStreams streams in use and the pending queue is full`, this.#ex.errorContext());
      queueMicrotask(() => this.#handler.onResponseError?.(this, err));
    } else {
      // Waiting for a stream: the pipeline may cancel it through this controller.
      this.#announced = true;
      this.#handler.onRequestStart?.(this, null);
    }
  }

  /** A stream is free: put the call on the wire. */
  go(): void {
    if (this.#state !== 0) return;
    const ex = this.#ex;
    this.#state = 1;
    // The effective deadline (route timeout, caller deadline, MeshContext): grpc-js sends what remains as grpc-timeout.
    const deadline = ex.deadline === Number.POSITIVE_INFINITY ? Number.POSITIVE_INFINITY : Date.now() + Math.max(1, ex.deadline - this.#clock.now());
    const channel = (this.conn as Conn).channel;
    let call: Call;
    try {
      call = channel.createCall(ex.path, deadline, ex.authority, null, undefined);
    } catch (err) {
      // The channel was closed under the call (mesh.close()): the mesh's doing, not the endpoint's.
      this.#end();
      const e = new MeshletError('MESHLET_ERR_CLOSED', `the gRPC channel to ${channel.getTarget()} is closed`, { ...ex.errorContext(), cause: err });
      queueMicrotask(() => this.#handler.onResponseError?.(this, e));
      return;
    }
    this.#call = call;
    if (!this.#announced) {
      this.#announced = true;
      this.#handler.onRequestStart?.(this, null);
    }
    // The pipeline may have cancelled it on the way (a per-try timeout that already passed).
    if ((this.#state as number) === 2) return;
    call.start(metadataOf(this.#g, ex.headers), this);
    this.#reading = true;
    call.startRead();
    void this.#pump(call, bodyForAttempt(ex.body));
  }

  /** Sends the request messages (the recorded ones, then the caller's as they come), then half-closes. */
  async #pump(call: Call, body: unknown): Promise<void> {
    try {
      if (body == null) {
        // no request message
      } else if (body instanceof Uint8Array || typeof body === 'string') {
        await this.#write(call, Buffer.from(body as Uint8Array));
      } else {
        for await (const m of body as AsyncIterable<Uint8Array>) {
          if (this.#state !== 1) return;
          await this.#write(call, Buffer.isBuffer(m) ? m : Buffer.from(m.buffer, m.byteOffset, m.byteLength));
        }
      }
      if (this.#state === 1) call.halfClose();
    } catch (err) {
      // The recorded messages outgrew the replay buffer, or the caller's stream failed.
      this.abort(err as Error);
    }
  }

  #write(call: Call, message: Buffer): Promise<void> {
    if (this.#state !== 1) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.#wrote = resolve;
      call.sendMessageWithContext(
        {
          callback: () => {
            if (this.#wrote === resolve) this.#wrote = undefined;
            resolve();
          },
        },
        message,
      );
    });
  }

  #end(): void {
    if (this.#state === 2) return;
    const wasOnWire = this.#state === 1;
    this.#state = 2;
    const w = this.#wrote;
    this.#wrote = undefined;
    w?.();
    this.#owner.done(this.#e, this, wasOnWire);
  }

  // ── Controller ──

  abort(reason?: Error): void {
    if (this.#state === 2 || this.aborted) return;
    this.aborted = true;
    const r = reason ?? Object.assign(new Error('The operation was aborted'), { name: 'AbortError' });
    this.reason = r;
    const call = this.#call;
    this.#end();
    call?.cancelWithStatus(this.#g.status.CANCELLED, r.message);
    this.#handler.onResponseError?.(this, r);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (!this.#reading && this.#state === 1) {
      this.#reading = true;
      this.#call?.startRead();
    }
  }

  // ── grpc-js listener ──

  onReceiveMetadata(metadata: Metadata): void {
    if (this.#state !== 1) return;
    this.#gotHead = true;
    this.#handler.onResponseStart?.(this, 200, responseHeadersOf(metadata), '');
  }

  onReceiveMessage(message: Buffer): void {
    if (this.#state !== 1) return;
    this.#reading = false;
    this.#handler.onResponseData?.(this, message);
    if (this.#state === 1 && !this.paused && !this.#reading) {
      this.#reading = true;
      this.#call?.startRead();
    }
  }

  onReceiveStatus(status: StatusObject): void {
    if (this.#state !== 1) return;
    const { code, details, metadata } = status;
    const h = this.#handler;
    if (!this.#gotHead) {
      this.#end();
      if (code === 0 || isServerTrailersOnly(metadata)) {
        // The server answered trailers-only: a head that carries the status.
        const head = responseHeadersOf(metadata);
        head['grpc-status'] = String(code);
        if (details !== '') head['grpc-message'] = encodeGrpcMessage(details);
        h.onResponseStart?.(this, 200, head, '');
        if (!this.aborted) h.onResponseEnd?.(this, EMPTY);
        return;
      }
      if (code === this.#g.status.DEADLINE_EXCEEDED && details.startsWith('Deadline exceeded')) {
        // grpc-js's copy of the mesh's own deadline went first: the call's timeout, as the mesh reports it.
        h.onResponseError?.(this, new MeshletError('MESHLET_ERR_TIMEOUT', 'upstream request timeout', this.#ex.errorContext()));
        return;
      }
      h.onResponseError?.(this, new GrpcCallError(failureKindOf(code, details), code, details, metadata));
      return;
    }
    this.#end();
    if (isLocalAfterHead(code, details, metadata)) {
      h.onResponseError?.(this, new GrpcCallError('reset', code, details, metadata));
      return;
    }
    const trailers = responseHeadersOf(metadata);
    trailers['grpc-status'] = String(code);
    if (details !== '') trailers['grpc-message'] = encodeGrpcMessage(details);
    h.onResponseEnd?.(this, trailers);
  }
}

/** The gRPC side of a mesh: endpoint channels per cluster, and channels to addresses outside the mesh. */
export class GrpcTransport {
  readonly #clock: Clock;
  readonly #env: TlsEnvironment;
  /** Passthrough channels by authority (hosts outside the mesh). */
  readonly #passthrough = new Map<string, Conn>();
  readonly #passthroughOwner = new PassthroughOwner();

  /**
   * `clock`: the mesh clock; `credentials`: the workload's certificate for mTLS (new channels use
   * a new issue at once); `tls`: MeshConfig's settings.
   */
  constructor(clock: Clock, credentials: CredentialHolder = new CredentialHolder(), tls: ClientTlsOptions = {}) {
    this.#clock = clock;
    this.#env = new TlsEnvironment(credentials, tls);
  }

  /** A config is in use: its PeerAuthentications decide auto-mTLS, its DestinationRules' TLS files are read now. */
  install(resources: readonly AnyResource[]): TlsFiles {
    return this.#env.install(resources);
  }

  /** Sends an attempt to the endpoint the balance layer picked. */
  readonly dispatch: Dispatch = (ex, handler) => {
    const cs = ex.cluster as ClusterState;
    const host = ex.host as HostState | undefined;
    if (host === undefined) {
      if (cs.cluster.settings.tls !== undefined) {
        // Fail closed rather than send in plaintext what the DestinationRule says to send over TLS.
        const err = new MeshletError('MESHLET_ERR_UPSTREAM_TLS', 'TLS to this destination cannot be set up, the call is not sent: gRPC calls to a destination without endpoints (resolution NONE, passthrough) do not take DestinationRule TLS yet', ex.errorContext());
        queueMicrotask(() => handler.onResponseError?.(NO_CONTROLLER, err));
        return;
      }
      // Resolution NONE / PASSTHROUGH: the address the caller named.
      this.passthrough(ex, handler);
      return;
    }
    const g = grpcJs();
    let channels = cs.transports.get(GRPC_TRANSPORT)?.pools as ClusterChannels | undefined;
    if (channels === undefined || channels.closed) {
      const options = channelOptions(cs);
      channels = new ClusterChannels(g, options, cs, this.#clock, this.#env);
      cs.transports.set(GRPC_TRANSPORT, { pools: channels, key: JSON.stringify(options) });
    }
    const e = channels.get(host);
    if (e.failure !== undefined) {
      // Fail closed: never plaintext instead of the TLS the destination calls for.
      const err = new MeshletError('MESHLET_ERR_UPSTREAM_TLS', `TLS to this destination cannot be set up, the call is not sent: ${e.failure}`, ex.errorContext());
      queueMicrotask(() => handler.onResponseError?.(NO_CONTROLLER, err));
      return;
    }
    new GrpcAttempt(g, ex, handler, this.#clock, undefined, channels, e).start();
  };

  /** Sends a call for a host outside the mesh to the address the caller named. */
  readonly passthrough: Dispatch = (ex, handler) => {
    const g = grpcJs();
    let ch = this.#passthrough.get(ex.urlAuthority);
    if (ch === undefined) {
      ch = new Conn(new g.Channel(ex.urlAuthority, g.credentials.createInsecure(), { 'grpc.enable_retries': 0, 'grpc.service_config_disable_resolution': 1, 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 }));
      this.#passthrough.set(ex.urlAuthority, ch);
    }
    new GrpcAttempt(g, ex, handler, this.#clock, ch, this.#passthroughOwner, undefined).start();
  };

  /** Classifies this transport's failures. */
  classify(err: Error): FailureKind {
    return classifyGrpcError(err);
  }

  /** Rebuilds a cluster's channels when its connection settings changed (calls on the old ones finish). */
  refresh(cs: ClusterState): void {
    const t = cs.transports.get(GRPC_TRANSPORT);
    if (t === undefined) return;
    const key = JSON.stringify(channelOptions(cs));
    if (key === t.key) return;
    cs.transports.delete(GRPC_TRANSPORT);
    void t.pools.close();
  }

  /** Closes the passthrough channels: calls in flight may finish for `graceMs`, then they are cancelled. */
  async close(graceMs = Number.POSITIVE_INFINITY): Promise<void> {
    this.#env.close();
    for (const ch of this.#passthrough.values()) ch.channel.close();
    this.#passthrough.clear();
    await this.#passthroughOwner.live.drain(graceMs, this.#clock);
  }
}
