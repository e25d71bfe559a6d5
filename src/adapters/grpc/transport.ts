/**
 * The gRPC transport: puts each attempt of a gRPC call (attempt.ts) on a connection to the
 * endpoint the balance layer picked. Connections (a grpc-js channel each, channels.ts) per
 * endpoint, kept per cluster in the cluster state's `grpc` slot, built from the cluster's
 * connection-pool settings (rebuilt when they change; the old ones drain) and closed with the
 * cluster.
 *
 * grpc-js's own retries and service-config retry policies are off on these channels
 * (`grpc.enable_retries: 0`, no service config from resolution): the mesh's retry layer is the
 * only one, so policies never double. The attempt is sent with the call's effective deadline
 * (the soonest of route timeout, caller deadline and MeshContext), so `grpc-timeout` and
 * `x-envoy-expected-rq-timeout-ms` carry what remains (timeout-headers.ts).
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
import type { Clock } from '../../core/clock.ts';
import { MeshletError } from '../../core/errors.ts';
import { type Exchange, NO_CONTROLLER } from '../../core/exchange.ts';
import type { Dispatch } from '../../core/layer.ts';
import type { FailureKind } from '../../core/outcome.ts';
import type { AnyResource } from '../../config/resource.ts';
import type { ClusterState } from '../../outbound/cluster-state.ts';
import type { HostState } from '../../routing/balancer/host.ts';
import { CredentialHolder } from '../../security/identity/credentials.ts';
import type { TlsFiles } from '../../security/tls-files.ts';
import { type ClientTlsOptions, TlsEnvironment } from '../undici/tls-plans.ts';
import { GrpcAttempt } from './attempt.ts';
import { ClusterChannels, channelOptions } from './channels.ts';
import { classifyGrpcError } from './classify.ts';
import { grpcJs } from './grpc-js.ts';
import { PassthroughChannels } from './passthrough.ts';

export { channelOptions } from './channels.ts';

/** The name of this transport: an Exchange's `transport`, and its slot in each cluster's state. */
export const GRPC_TRANSPORT = 'grpc';

/** The gRPC side of a mesh: endpoint channels per cluster, and channels to addresses outside the mesh. */
export class GrpcTransport {
  readonly #clock: Clock;
  readonly #env: TlsEnvironment;
  /** Passthrough channels by authority (hosts outside the mesh), closed when unused. */
  readonly #passthrough: PassthroughChannels;
  /** Attempts carry `x-envoy-expected-rq-timeout-ms` (Istio's `proxyHeaders.envoyDebugHeaders` not disabled). */
  readonly #envoyHeaders: boolean;

  /**
   * `clock`: the mesh clock; `credentials`: the workload's certificate for mTLS (new channels use
   * a new issue at once); `tls`: MeshConfig's settings; `envoyHeaders`: false when Istio's
   * `proxyHeaders.envoyDebugHeaders` is disabled.
   */
  constructor(clock: Clock, credentials: CredentialHolder = new CredentialHolder(), tls: ClientTlsOptions = {}, envoyHeaders = true) {
    this.#clock = clock;
    this.#envoyHeaders = envoyHeaders;
    this.#passthrough = new PassthroughChannels(clock, envoyHeaders);
    this.#env = new TlsEnvironment(credentials, tls, clock);
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
      channels = new ClusterChannels(g, options, cs, this.#clock, this.#env, this.#envoyHeaders);
      cs.transports.set(GRPC_TRANSPORT, { pools: channels, key: settingsKey(options, cs) });
    }
    // The workload certificate expired (a process frozen past its renewal): new connections wait for the renewal (tls-connector.ts).
    const c = this.#env.credentials;
    const renewal = c !== undefined && c.notAfter <= Date.now() ? channels.renewal(host) : undefined;
    if (renewal !== undefined) void renewal.then(() => this.#send(ex, handler, channels, host));
    else this.#send(ex, handler, channels, host);
  };

  /** Starts the attempt on the endpoint's channel (made or re-made for the TLS decision now). */
  #send(ex: Exchange, handler: Parameters<Dispatch>[1], channels: ClusterChannels, host: HostState): void {
    const e = channels.get(host);
    if (e.failure !== undefined) {
      // Fail closed: never plaintext instead of the TLS the destination calls for.
      const err = new MeshletError('MESHLET_ERR_UPSTREAM_TLS', `TLS to this destination cannot be set up, the call is not sent: ${e.failure}`, ex.errorContext());
      queueMicrotask(() => handler.onResponseError?.(NO_CONTROLLER, err));
      return;
    }
    new GrpcAttempt(ex, handler, undefined, channels, e).start();
  }

  /** Sends a call for a host outside the mesh to the address the caller named. */
  readonly passthrough: Dispatch = (ex, handler) => {
    const g = grpcJs();
    const ch = this.#passthrough.get(ex.urlAuthority, () => new g.Channel(ex.urlAuthority, g.credentials.createInsecure(), PASSTHROUGH_OPTIONS));
    new GrpcAttempt(ex, handler, ch, this.#passthrough, undefined).start();
  };

  /** Classifies this transport's failures. */
  classify(err: Error): FailureKind {
    return classifyGrpcError(err);
  }

  /** Rebuilds a cluster's channels when its connection settings changed (calls on the old ones finish). */
  refresh(cs: ClusterState): void {
    const t = cs.transports.get(GRPC_TRANSPORT);
    if (t === undefined) return;
    const key = settingsKey(channelOptions(cs), cs);
    if (key === t.key) return;
    cs.transports.delete(GRPC_TRANSPORT);
    cs.retire(t.pools);
  }

  /** Closes the passthrough channels: calls in flight may finish for `graceMs`, then they are cancelled. */
  async close(graceMs = Number.POSITIVE_INFINITY): Promise<void> {
    this.#env.close();
    await this.#passthrough.close(graceMs);
  }
}

/** The options of a passthrough channel (grpc-js's retries off, connections of its own, the caller's message sizes). */
const PASSTHROUGH_OPTIONS = { 'grpc.enable_retries': 0, 'grpc.service_config_disable_resolution': 1, 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 };

/** What a cluster's channels are made with: their options, and the TCP keepalive set on their sockets. */
function settingsKey(options: object, cs: ClusterState): string {
  return JSON.stringify([options, cs.cluster.settings.connectionPool.tcpKeepalive ?? null]);
}
