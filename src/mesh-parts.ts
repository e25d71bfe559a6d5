/**
 * The parts of a {@link Mesh}'s data plane and how they are wired to each other: the undici and
 * gRPC transports, the outbound pipeline over both, the undici dispatcher, the servers' side and
 * telemetry; and, made when first used, its gRPC part (`mesh.grpc`).
 *
 * @module
 */
import type { ClientStreamRequester } from './telemetry/access-log/als-streamer.ts';
import type { ChannelInterface, ChannelOptions } from '@grpc/grpc-js';
import type { MeshLogger, MeshOptions } from './mesh-options.ts';
import { MeshDispatcher } from './adapters/undici/dispatcher.ts';
import { classifyUndiciError } from './adapters/undici/classify.ts';
import { UndiciTransport } from './adapters/undici/transport.ts';
import { GrpcTransport } from './adapters/grpc/transport.ts';
import { MeshGrpc } from './adapters/grpc/mesh-grpc.ts';
import { MeshServers } from './adapters/server/servers.ts';
import { type Clock, systemClock, systemRandom } from './core/clock.ts';
import { SIDE_CALL_OPTION } from './adapters/grpc/channel.ts';
import { RateLimitServiceClient, type RlsCaller } from './policies/rate-limit/rls-client.ts';
import type { WorkloadIdentity } from './core/observe.ts';
import type { ConfigOrigin } from './control-plane/source.ts';
import { Outbound, type OutboundEvent } from './outbound/pipeline.ts';
import type { CredentialHolder } from './security/identity/credentials.ts';
import type { Snapshot } from './routing/compile.ts';
import { MeshTelemetry } from './mesh-telemetry.ts';
import { grpcJs } from './adapters/grpc/grpc-js.ts';
import { resolveProxyHeaders } from './core/proxy-headers.ts';
import { DEFAULT_CONNECT_TIMEOUT_MS, wholeSecondsKeepalive } from './routing/cluster-settings.ts';
import type { UnaryCaller } from './security/authz/ext-authz-grpc.ts';
import type { UnaryRequester } from './core/unary-call.ts';

/** @internal A mesh's data plane. */
export interface MeshParts {
  readonly transport: UndiciTransport;
  readonly grpcTransport: GrpcTransport;
  readonly outbound: Outbound;
  readonly dispatcher: MeshDispatcher;
  readonly servers: MeshServers;
  readonly telemetry: MeshTelemetry;
}

/** @internal What the parts call back into their mesh for. */
export interface MeshPartsHooks {
  /** An outbound event (ejection, retry budget, …) for the mesh's listeners. */
  readonly event: (e: OutboundEvent) => void;
  /** `dispatcher.close()` closes the mesh. */
  readonly close: () => Promise<void>;
  /** The config in use, as telemetry reports it. */
  readonly config: () => { readonly version: string; readonly source: ConfigOrigin | 'file' };
  /** A channel through the mesh to `target` (gRPC external authorizers call through it; made when first used). */
  readonly grpcChannel?: (target: string, options?: ChannelOptions) => ChannelInterface;
}

/**
 * The client gRPC external authorizers (`envoyExtAuthzGrpc`) are called through: a grpc-js client
 * on the mesh's channel. grpc-js is loaded now when a provider needs it, so a missing install
 * fails `createMesh`, not the first request.
 */
function grpcAuthorizerClient(o: MeshOptions, channel: MeshPartsHooks['grpcChannel']): ((target: string) => UnaryCaller) | undefined {
  const list = Array.isArray(o.extensionProviders) ? o.extensionProviders : [];
  if (channel === undefined || !list.some((p) => p !== null && typeof p === 'object' && p.envoyExtAuthzGrpc !== undefined)) return undefined;
  const g = grpcJs();
  return (target) => new g.Client(target, g.credentials.createInsecure(), { channelOverride: channel(target) });
}

/**
 * The client global rate limit filters call their rate limit services with: a grpc-js client on
 * the mesh's channel, its calls marked as the mesh's own (the rate limit filters skip them, as
 * Envoy's async client calls a cluster directly). grpc-js is loaded at the first call: without it,
 * every call fails (the filter's failure mode decides).
 */
function rateLimitServiceClient(channel: MeshPartsHooks['grpcChannel'], clock: Clock): RateLimitServiceClient | undefined {
  if (channel === undefined) return undefined;
  return new RateLimitServiceClient((target) => {
    const g = grpcJs();
    return new g.Client(target, g.credentials.createInsecure(), { channelOverride: channel(target, { [SIDE_CALL_OPTION]: 1 }) }) as unknown as RlsCaller;
  }, clock);
}

/**
 * The client `envoyOtelAls` access logs export to their collectors with, and `envoyHttpAls` ones
 * stream to their log services with: like the rate limit
 * service's, a grpc-js client on the mesh's channel whose calls are the mesh's own (not logged,
 * counted, traced or limited), as Envoy's logger calls its collector's cluster directly.
 */
function otelLogClient(o: MeshOptions, channel: MeshPartsHooks['grpcChannel']): ((target: string) => UnaryRequester & ClientStreamRequester) | undefined {
  if (channel === undefined) return undefined;
  // grpc-js loaded now when a provider needs it (as for envoyExtAuthzGrpc): a missing install fails
  // createMesh, and the first export does not load it on the request that filled a batch.
  const list = Array.isArray(o.extensionProviders) ? o.extensionProviders : [];
  const g = list.some((p) => p !== null && typeof p === 'object' && (p.envoyOtelAls !== undefined || p.envoyHttpAls !== undefined)) ? grpcJs() : undefined;
  return (target) => {
    const gj = g ?? grpcJs();
    return new gj.Client(target, gj.credentials.createInsecure(), { channelOverride: channel(target, { [SIDE_CALL_OPTION]: 1 }) }) as unknown as UnaryRequester & ClientStreamRequester;
  };
}

/** @internal Builds and wires a mesh's data plane for its first snapshot. */
export function buildMeshParts(o: MeshOptions, snapshot: Snapshot, credentials: CredentialHolder, identity: WorkloadIdentity, logger: MeshLogger, hooks: MeshPartsHooks): MeshParts {
  const clock = o.clock ?? systemClock;
  const random = o.random ?? systemRandom;
  const ph = resolveProxyHeaders(o.proxyHeaders);
  const rls = rateLimitServiceClient(hooks.grpcChannel, clock);
  const connectTimeoutMs = o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  // MeshConfig's tcpKeepalive, in whole seconds as istiod writes it (cluster.go setKeepAliveSettings).
  const k = o.tcpKeepalive;
  const tcpKeepalive = k === undefined ? undefined : wholeSecondsKeepalive(k.timeMs, k.intervalMs, k.probes);
  const transport = new UndiciTransport(clock, credentials, { rootNamespace: o.rootNamespace, trustDomain: o.trustDomain, trustDomainAliases: o.trustDomainAliases, enableAutoMtls: o.enableAutoMtls }, ph.envoyDebugHeaders, connectTimeoutMs, tcpKeepalive);
  transport.install(snapshot.resources);
  const grpcTransport = new GrpcTransport(clock, credentials, { rootNamespace: o.rootNamespace, trustDomain: o.trustDomain, trustDomainAliases: o.trustDomainAliases, enableAutoMtls: o.enableAutoMtls }, ph.envoyDebugHeaders, connectTimeoutMs, tcpKeepalive);
  grpcTransport.install(snapshot.resources);
  const outbound = new Outbound(snapshot, {
    clock,
    random,
    locality: o.locality ?? '',
    localityLbSetting: o.localityLbSetting,
    connectTimeoutMs,
    tcpKeepalive,
    labels: o.labels ?? {},
    sourceIp: o.sourceIp ?? '127.0.0.1',
    outboundTrafficPolicy: o.outboundTrafficPolicy ?? 'ALLOW_ANY',
    maxRetryAfterMs: o.maxRetryAfterMs ?? 10_000,
    trustEnvoyRequestHeaders: o.trustEnvoyRequestHeaders === true,
    maxMirrorsInFlight: o.maxMirrorsInFlight ?? 64,
    workload: identity,
    rootNamespace: o.rootNamespace,
    attemptCount: ph.attemptCount,
    envoyHeaders: ph.envoyDebugHeaders,
    pathNormalization: o.pathNormalization ?? 'BASE',
    dns: o.dns,
    transports: {
      http: { dispatch: transport.dispatch, passthrough: transport.passthrough, classify: classifyUndiciError, refresh: (cs) => transport.refresh(cs) },
      grpc: { dispatch: grpcTransport.dispatch, passthrough: grpcTransport.passthrough, classify: (e) => grpcTransport.classify(e), refresh: (cs) => grpcTransport.refresh(cs) },
    },
    onEvent: hooks.event,
    rls,
    warn: (m) => logger.warn(m),
  });
  const pipeline = outbound.dispatch;
  const dispatcher = new MeshDispatcher({
    clock,
    workload: identity,
    errors: o.errors ?? 'respond',
    retryBufferBytes: o.retryBufferBytes ?? 1024 * 1024,
    requestId: ph.requestId,
    envoyHeaders: ph.envoyDebugHeaders,
    pipeline: () => pipeline,
    onClose: hooks.close,
  });
  const log = logger;
  const servers = new MeshServers(
    {
      normalization: o.pathNormalization ?? 'BASE',
      probePaths: o.probePaths,
      clock,
      closeTimeoutMs: o.closeTimeoutMs ?? 5000,
      credentials: credentials,
      policies: {
        workload: identity,
        rootNamespace: o.rootNamespace ?? 'istio-system',
        ports: o.ports,
        trustDomain: o.trustDomain ?? 'cluster.local',
        trustDomainAliases: o.trustDomainAliases,
        numTrustedProxies: o.numTrustedProxies,
        extensionProviders: o.extensionProviders,
        jwt: o.jwt,
        dispatcher: dispatcher,
        grpcClient: grpcAuthorizerClient(o, hooks.grpcChannel),
        rls,
        clock,
        random,
        warn: (m) => log.warn(m),
        debug: log.debug === undefined ? undefined : (m) => log.debug?.(m),
        info: log.info === undefined ? undefined : (m) => log.info?.(m),
      },
    },
    snapshot.resources,
  );
  const telemetry = new MeshTelemetry(
    {
      options: o,
      identity: identity,
      clock,
      random,
      logger: log,
      credentials: credentials,
      transport: transport,
      config: hooks.config,
      inboundTls: () => servers.tlsCounts,
      otelClient: otelLogClient(o, hooks.grpcChannel),
      outlierClusters: () => [...outbound.clusters.values()].filter((cs) => cs.detector !== undefined).map((cs) => ({ name: cs.name, ejected: cs.hostSet.hosts.filter((h) => h.ejected).map((h) => h.endpoint.key) })),
    },
    snapshot.resources,
  );
  servers.guard.peerExchange = telemetry.peerHeaders;
  // Istio's default (metadataExchangeHeaders UNDEFINED): passthrough calls carry them too.
  if (!ph.metadataExchangeInMesh) outbound.stampPassthrough = (ex) => telemetry.stampPassthrough(ex);
  servers.guard.proxyHeaders = ph;
  return { transport, grpcTransport, outbound, dispatcher, servers, telemetry };
}

/** @internal The gRPC part of a mesh (`mesh.grpc`: clients, server interceptors) over its outbound pipeline and servers. */
export function buildMeshGrpc(o: MeshOptions, outbound: Outbound, servers: MeshServers, identity: WorkloadIdentity, logger: MeshLogger, closed: () => boolean): MeshGrpc {
  const pipeline = outbound.dispatch;
  return new MeshGrpc({
    clock: outbound.clock,
    errors: o.errors ?? 'respond',
    retryBufferBytes: o.retryBufferBytes ?? 1024 * 1024,
    workload: identity,
    requestId: servers.guard.proxyHeaders.requestId,
    envoyHeaders: servers.guard.proxyHeaders.envoyDebugHeaders,
    pipeline: () => pipeline,
    closed,
    server: { guard: () => servers.guard, tls: servers.tls, closeTimeoutMs: o.closeTimeoutMs ?? 5000, debug: logger.debug === undefined ? undefined : (m) => logger.debug?.(m) },
  });
}
