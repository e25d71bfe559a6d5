/**
 * The gRPC transport: puts each attempt of a gRPC call (attempt.ts) on an HTTP/2 connection to
 * the endpoint the balance layer picked — a `node:http2` session per connection (conn.ts), a
 * stream per attempt (h2-call.ts), written and read as grpc-js writes and reads its own —, as
 * Envoy speaks HTTP/2 to the upstream itself. Connections per endpoint (pools.ts), kept per
 * cluster in the cluster state's `grpc` slot, built from the cluster's connection-pool settings
 * (rebuilt when they change; the old ones drain) and closed with the cluster.
 *
 * The mesh's retry layer is the only one (grpc-js's retries never run under the mesh channel),
 * so policies never double. The attempt is sent with the call's effective deadline (the soonest
 * of route timeout, caller deadline and MeshContext), so `grpc-timeout` and
 * `x-envoy-expected-rq-timeout-ms` carry what remains (timeout-headers.ts).
 *
 * What comes back is translated into the pipeline's handler calls: response metadata is the
 * head (`onResponseStart(200, headers)`), each message is data, the status is the trailers —
 * or, for a trailers-only answer, a head with `grpc-status` — so the one classifier sees gRPC
 * statuses as Envoy does. A stream that ended without the server's status (reset, refused,
 * dropped) or a connection that could not be made is a transport failure of the kind it is
 * (classify.ts), never an answer.
 *
 * TLS is decided per endpoint as for HTTP calls (the undici adapter's plans and TLS connector:
 * ISTIO_MUTUAL with the workload's certificate and the destination's SPIFFE identities checked,
 * auto-mTLS, a DestinationRule's SIMPLE/MUTUAL), and the connections are made again when the
 * decision changes.
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
import { DEFAULT_CONNECT_TIMEOUT_MS, type TcpKeepalive } from '../../routing/cluster-settings.ts';
import { CredentialHolder } from '../../security/identity/credentials.ts';
import type { TlsFiles } from '../../security/tls-files.ts';
import { type ClientTlsOptions, TlsEnvironment } from '../undici/tls-plans.ts';
import { GrpcAttempt } from './attempt.ts';
import { classifyGrpcError } from './classify.ts';
import { grpcJs, grpcJsVersion } from './grpc-js.ts';
import { PassthroughConns } from './passthrough.ts';
import { ClusterConns, connSettingsKey } from './pools.ts';

/** The name of this transport: an Exchange's `transport`, and its slot in each cluster's state. */
export const GRPC_TRANSPORT = 'grpc';

/** The gRPC side of a mesh: connections per cluster and endpoint, and to addresses outside the mesh. */
export class GrpcTransport {
  readonly #clock: Clock;
  readonly #env: TlsEnvironment;
  /** Passthrough connections by authority (hosts outside the mesh), closed when unused. */
  readonly #passthrough: PassthroughConns;
  /** Attempts carry `x-envoy-expected-rq-timeout-ms` (Istio's `proxyHeaders.envoyDebugHeaders` not disabled). */
  readonly #envoyHeaders: boolean;
  /** MeshConfig's `connectTimeout`: PassthroughCluster's connect timeout. */
  #connectTimeoutMs: number;
  /** MeshConfig's `tcpKeepalive`: the PassthroughCluster's too (cluster_builder.go buildDefaultPassthroughCluster → applyConnectionPool). */
  #keepalive: TcpKeepalive | undefined;

  /**
   * `clock`: the mesh clock; `credentials`: the workload's certificate for mTLS (new connections use
   * a new issue at once); `tls`: MeshConfig's settings; `envoyHeaders`: false when Istio's
   * `proxyHeaders.envoyDebugHeaders` is disabled; `connectTimeoutMs`: MeshConfig's `connectTimeout`
   * (PassthroughCluster's, and clusters' whose DestinationRule sets none); `tcpKeepalive`: MeshConfig's.
   */
  constructor(clock: Clock, credentials: CredentialHolder = new CredentialHolder(), tls: ClientTlsOptions = {}, envoyHeaders = true, connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_MS, tcpKeepalive?: TcpKeepalive) {
    this.#clock = clock;
    this.#keepalive = tcpKeepalive;
    this.#envoyHeaders = envoyHeaders;
    this.#connectTimeoutMs = connectTimeoutMs;
    this.#passthrough = new PassthroughConns(clock, userAgent(), envoyHeaders);
    this.#env = new TlsEnvironment(credentials, tls, clock);
  }

  /** A config is in use: its PeerAuthentications decide auto-mTLS, its DestinationRules' TLS files are read now. */
  install(resources: readonly AnyResource[]): TlsFiles {
    return this.#env.install(resources);
  }

  /**
   * MeshConfig's `connectTimeout` or `tcpKeepalive` changed (a control plane's MeshConfig, live): new PassthroughCluster
   * calls get connections made with them (passthrough connections are keyed by their settings); calls on the older
   * ones finish there, and those close once unused.
   */
  passthroughSettings(ms: number, keepalive: TcpKeepalive | undefined): void {
    this.#connectTimeoutMs = ms;
    this.#keepalive = keepalive;
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
    let pools = cs.transports.get(GRPC_TRANSPORT)?.pools as ClusterConns | undefined;
    if (pools === undefined || pools.closed) {
      pools = new ClusterConns(g, userAgent(), cs, this.#clock, this.#env, this.#envoyHeaders);
      cs.transports.set(GRPC_TRANSPORT, { pools: pools, key: connSettingsKey(cs) });
    }
    // The workload certificate expired (a process frozen past its renewal): new connections wait for the renewal (tls-connector.ts).
    const c = this.#env.credentials;
    const renewal = c !== undefined && c.notAfter <= Date.now() ? pools.renewal(host) : undefined;
    if (renewal !== undefined) void renewal.then(() => this.#send(ex, handler, pools, host));
    else this.#send(ex, handler, pools, host);
  };

  /** Starts the attempt on a connection to the endpoint (set up or again for the TLS decision now). */
  #send(ex: Exchange, handler: Parameters<Dispatch>[1], pools: ClusterConns, host: HostState): void {
    const e = pools.get(host);
    if (e.failure !== undefined) {
      // Fail closed: never plaintext instead of the TLS the destination calls for.
      const err = new MeshletError('MESHLET_ERR_UPSTREAM_TLS', `TLS to this destination cannot be set up, the call is not sent: ${e.failure}`, ex.errorContext());
      queueMicrotask(() => handler.onResponseError?.(NO_CONTROLLER, err));
      return;
    }
    new GrpcAttempt(ex, handler, undefined, pools, e).start();
  }

  /** Sends a call for a host outside the mesh to the address the caller named. */
  readonly passthrough: Dispatch = (ex, handler) => {
    // A resolution-NONE cluster's connection pool settings (connect timeout and TCP keepalive over the mesh's, PINGs, idle timeout: passthrough.ts);
    // ALLOW_ANY's PassthroughCluster: MeshConfig's connectTimeout and tcpKeepalive.
    const cs = ex.cluster as ClusterState | undefined;
    const pool = cs?.cluster.settings.connectionPool;
    const conn =
      cs === undefined || pool === undefined
        ? this.#passthrough.get(ex.urlAuthority, { connectTimeoutMs: this.#connectTimeoutMs, tcpKeepalive: this.#keepalive })
        : this.#passthrough.get(ex.urlAuthority, { connectTimeoutMs: cs.connectTimeoutMs, tcpKeepalive: cs.tcpKeepalive, ping: pool.http2KeepAlive, idleTimeoutMs: pool.idleTimeoutMs });
    new GrpcAttempt(ex, handler, conn, this.#passthrough, undefined).start();
  };

  /** Classifies this transport's failures. */
  classify(err: Error): FailureKind {
    return classifyGrpcError(err);
  }

  /** Rebuilds a cluster's connections when their settings changed (calls on the old ones finish). */
  refresh(cs: ClusterState): void {
    const t = cs.transports.get(GRPC_TRANSPORT);
    if (t === undefined) return;
    const key = connSettingsKey(cs);
    if (key === t.key) return;
    cs.transports.delete(GRPC_TRANSPORT);
    cs.retire(t.pools);
  }

  /** Closes the passthrough connections: calls in flight may finish for `graceMs`, then they are cancelled. */
  async close(graceMs = Number.POSITIVE_INFINITY): Promise<void> {
    this.#env.close();
    await this.#passthrough.close(graceMs);
  }
}

/** grpc-js's own user-agent (`grpc-node-js/<version>`), for a call whose caller's client gave none. */
function userAgent(): string {
  return `grpc-node-js/${grpcJsVersion()}`;
}
