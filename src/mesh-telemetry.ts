/**
 * The telemetry of one mesh, as the Mesh wires it: Istio's request metrics (with the peer
 * metadata exchange), meshlet's own metrics, tracing and access logs — each a subscriber to the
 * kernel's observation channels, rebuilt from each config and closed with the mesh.
 *
 * @module
 */
import { clearInterval, setInterval } from 'node:timers';
import type { UndiciTransport } from './adapters/undici/transport.ts';
import type { ClusterConns } from './adapters/grpc/pools.ts';
import { GRPC_TRANSPORT } from './adapters/grpc/transport.ts';
import type { AnyResource } from './config/resource.ts';
import type { Clock, Random } from './core/clock.ts';
import { resolveProxyHeaders } from './core/proxy-headers.ts';
import type { WorkloadIdentity } from './core/observe.ts';
import { inboundServices } from './inbound/inbound-services.ts';
import type { InboundTlsCounts } from './inbound/tls-stats.ts';
import type { MeshLogger, MeshOptions } from './mesh-options.ts';
import type { ClusterState } from './outbound/cluster-state.ts';
import type { HostState } from './routing/balancer/host.ts';
import type { CredentialHolder } from './security/identity/credentials.ts';
import { AccessLogger } from './telemetry/access-log/access-logger.ts';
import { type AccessLogDroppedMessage, accessLogDropped, type OtelExportStats } from './telemetry/access-log/otel-exporter.ts';
import type { UnaryRequester } from './core/unary-call.ts';
import type { ClientStreamRequester } from './telemetry/access-log/als-streamer.ts';
import { MeshMetrics } from './telemetry/mesh-metrics/mesh-metrics.ts';
import { metricsConfigFor } from './telemetry/metrics/config.ts';
import { IstioMetrics } from './telemetry/metrics/istio-metrics.ts';
import { MeshTracing } from './telemetry/tracing/tracer.ts';

/** What the telemetry reads from its mesh. */
export interface MeshTelemetryContext {
  readonly options: MeshOptions;
  readonly identity: WorkloadIdentity;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: MeshLogger;
  readonly credentials: CredentialHolder;
  readonly transport: UndiciTransport;
  /** The config in use (meshlet's own metrics). */
  config(): { readonly version: string; readonly source: string };
  inboundTls(): InboundTlsCounts;
  /** The clusters with outlier detection and their ejected endpoints. */
  outlierClusters(): readonly { readonly name: string; readonly ejected: readonly string[] }[];
  /** The client `envoyOtelAls` access logs export with, and `envoyHttpAls` ones stream with (the mesh's own gRPC calls). */
  readonly otelClient?: ((target: string) => UnaryRequester & ClientStreamRequester) | undefined;
}

/** The mesh's telemetry subscribers. */
export class MeshTelemetry {
  readonly #c: MeshTelemetryContext;
  readonly #accessLog: AccessLogger;
  readonly #tracing: MeshTracing;
  /** meshlet's own metrics, when an OpenTelemetry SDK is there to take them. */
  #ownMetrics: MeshMetrics | undefined;
  /** Istio's standard metrics (undefined when `telemetry.metrics.enabled` is false). */
  readonly #metrics: IstioMetrics | undefined;
  /** Looks once a second for a MeterProvider registered later, while the metrics have none. */
  #poll: ReturnType<typeof setInterval> | undefined;

  constructor(c: MeshTelemetryContext, resources: readonly AnyResource[]) {
    this.#c = c;
    const o = c.options;
    const log = c.logger;
    this.#accessLog = new AccessLogger({
      workload: c.identity,
      rootNamespace: o.rootNamespace ?? 'istio-system',
      clock: c.clock,
      logger: log,
      providers: o.extensionProviders ?? [],
      options: o.telemetry?.accessLog ?? {},
      otelClient: c.otelClient,
      alsClient: c.otelClient,
      sourceIp: o.sourceIp,
      // The tracer is made below; records are made only once requests flow.
      spanIds: (key) => this.#tracing.spanIdsOf(key),
      onOtelDropped: (provider, count, reason) => {
        const ch = accessLogDropped;
        if (ch.hasSubscribers) ch.publish({ workload: c.identity, provider, count, reason } satisfies AccessLogDroppedMessage);
      },
    });
    this.#accessLog.install(resources);
    this.#ownMetrics = this.#startOwnMetrics();
    this.#tracing = new MeshTracing(
      {
        workload: c.identity,
        random: c.random,
        rootNamespace: o.rootNamespace ?? 'istio-system',
        sourceIp: o.sourceIp ?? '127.0.0.1',
        locality: o.locality ?? '',
        trustDomain: o.trustDomain ?? 'cluster.local',
        edge: o.numTrustedProxies !== undefined,
        trustEnvoyRequestHeaders: o.trustEnvoyRequestHeaders === true,
        options: o.telemetry?.tracing,
        warn: (m) => log.warn(m),
      },
      resources,
      this.#inbound(resources).operations,
    );
    this.#tracing.keepSpanIds = this.#accessLog.wantsSpanIds;
    this.#metrics = o.telemetry?.metrics?.enabled === false ? undefined : this.#startMetrics(resources);
    if (this.#waitingForProvider()) {
      // A workload that only serves makes no outbound call (where Istio's metrics look again),
      // and its config may never change: an SDK started after the mesh (startTelemetry(), the
      // app's own MeterProvider) is found here within a second, as tracing finds its SDK.
      this.#poll = setInterval(() => this.#lookForProvider(), 1000);
      this.#poll.unref();
    }
  }

  #startOwnMetrics(): MeshMetrics | undefined {
    const c = this.#c;
    return MeshMetrics.start({ identity: c.identity, config: c.config, inboundTls: c.inboundTls, outlierClusters: c.outlierClusters }, c.options.telemetry?.ownMetrics);
  }

  /** True while some metrics wait for a MeterProvider that records (an SDK). */
  #waitingForProvider(): boolean {
    return (this.#metrics !== undefined && !this.#metrics.recording) || (this.#ownMetrics === undefined && this.#c.options.telemetry?.ownMetrics !== false);
  }

  #lookForProvider(): void {
    this.#metrics?.checkProvider();
    if (this.#ownMetrics === undefined && this.#c.options.telemetry?.ownMetrics !== false) this.#ownMetrics = this.#startOwnMetrics();
    if (!this.#waitingForProvider()) this.#stopPoll();
  }

  #stopPoll(): void {
    if (this.#poll !== undefined) clearInterval(this.#poll);
    this.#poll = undefined;
  }

  #startMetrics(resources: readonly AnyResource[]): IstioMetrics {
    const c = this.#c;
    const o = c.options;
    const inMeshOnly = resolveProxyHeaders(o.proxyHeaders).metadataExchangeInMesh;
    const m = new IstioMetrics(
      {
        identity: c.identity,
        workloadName: c.identity.workloadName ?? o.service,
        now: () => c.clock.now(),
        warn: (msg) => c.logger.warn(msg),
        principal: () => c.credentials.current?.spiffeId ?? '',
        inMesh: (call) => {
          // Peer metadata goes to in-mesh services only (never to MESH_EXTERNAL hosts or PassthroughCluster),
          // unless proxyHeaders.metadataExchangeHeaders.mode is UNDEFINED (Istio's default): MESH_EXTERNAL too
          // (and passthrough calls: stampPassthrough, from the passthrough layer, which sends no attempt events).
          // An in-mesh service whose cluster sends calls to their original address (resolution NONE, a headless
          // Service, loadBalancer PASSTHROUGH: Istio's ORIGINAL_DST cluster outbound|port||host) is no
          // PassthroughCluster: the peer_metadata filter's skip_external_clusters skips only that cluster and
          // clusters Istio marks `external` (MESH_EXTERNAL services).
          const cs = (call as { cluster?: unknown }).cluster as ClusterState | undefined;
          return cs !== undefined && (!inMeshOnly || cs.cluster.service.location === 'MESH_INTERNAL');
        },
        ip: o.sourceIp ?? '127.0.0.1',
        upstreamPrincipals: (call) => {
          // At call:end the Exchange still holds the last attempt's cluster and endpoint.
          const ex = call as { cluster?: unknown; host?: unknown; protocol?: unknown };
          const cs = ex.cluster as ClusterState | undefined;
          const host = ex.host as HostState | undefined;
          const local = c.credentials.current?.spiffeId;
          if (cs === undefined || host === undefined || local === undefined) return undefined;
          // A gRPC call went on the gRPC transport's channel, an HTTP one on undici's pool: each knows its TLS.
          const mtls = ex.protocol === 'grpc' ? (cs.transports.get(GRPC_TRANSPORT)?.pools as ClusterConns | undefined)?.usesIstioMtls(host) === true : c.transport.usesIstioMtls(cs, host);
          if (!mtls) return undefined;
          const ep = host.endpoint;
          return { local, peer: `spiffe://${o.trustDomain ?? 'cluster.local'}/ns/${ep.namespace}/sa/${ep.serviceAccount}` };
        },
      },
      o.telemetry?.metrics,
    );
    m.configure(this.#metricsConfig(resources), this.#inbound(resources).hosts);
    m.start();
    return m;
  }

  #metricsConfig(resources: readonly AnyResource[]): ReturnType<typeof metricsConfigFor> {
    const { identity: id, options: o } = this.#c;
    return metricsConfigFor(resources, { namespace: id.namespace, labels: id.labels }, o.rootNamespace ?? 'istio-system', o.extensionProviders);
  }

  /**
   * By local port, the oldest Service (or ServiceEntry) selecting this workload there: istiod
   * orders a proxy's service targets by creation time, then host (pilot/pkg/model/context.go
   * SetServiceTargets), and builds each port's inbound chain from the first (listener_inbound.go
   * getFilterChainsByServicePort). The stats filter reports its host; the inbound route's
   * decorator, the server span's name, is `<host>:<service port>/*` (httproute.go
   * buildSidecarInboundHTTPRouteConfig, telemetry.TraceOperation).
   */
  #inbound(resources: readonly AnyResource[]): { readonly hosts: ReadonlyMap<number, string>; readonly operations: ReadonlyMap<number, string> } {
    const { identity: id, options: o } = this.#c;
    const hosts = new Map<number, string>();
    const operations = new Map<number, string>();
    for (const [port, services] of inboundServices(resources, { namespace: id.namespace, labels: id.labels, ...(o.ports === undefined ? {} : { ports: o.ports }) })) {
      const first = services[0];
      if (first === undefined) continue;
      hosts.set(port, first.host);
      operations.set(port, `${first.host}:${first.servicePort}/*`);
    }
    return { hosts, operations };
  }

  /** This workload's metadata-exchange headers while Istio's metrics run (the server side answers callers with them). */
  get peerHeaders(): { readonly id: string; readonly value: string } | undefined {
    return this.#metrics?.peerHeaders;
  }

  /** Stamps a passthrough call with this workload's metadata-exchange headers while Istio's metrics run. */
  stampPassthrough(call: object): void {
    this.#metrics?.stamp(call);
  }

  /** A new config: each part rebuilds what it reads from the Telemetry resources. */
  install(resources: readonly AnyResource[]): void {
    const inbound = this.#inbound(resources);
    this.#metrics?.configure(this.#metricsConfig(resources), inbound.hosts);
    this.#accessLog.install(resources);
    this.#tracing.keepSpanIds = this.#accessLog.wantsSpanIds;
    this.#tracing.install(resources, inbound.operations);
  }

  /** The access logs' exporters to OpenTelemetry collectors send what they hold, for at most `graceMs`. */
  closeExports(graceMs: number): Promise<void> {
    return this.#accessLog.closeExports(graceMs);
  }

  /** What each `envoyOtelAls` access log exported and dropped, by provider. */
  get otelAccessLogStats(): Readonly<Record<string, OtelExportStats>> {
    return this.#accessLog.otelStats;
  }

  /** Stops every subscriber (after the calls in flight ended, so they are counted and logged). */
  async close(): Promise<void> {
    this.#stopPoll();
    this.#metrics?.close();
    this.#ownMetrics?.close();
    this.#tracing.close();
    await this.#accessLog.close();
  }
}
