/**
 * {@link Mesh.diagnostics}: what a mesh's data plane holds right now, as plain data — the config
 * in use, mirrored-request counters, the server side's phases, TLS counts and pools, every
 * cluster calls have used with its endpoints (in flight, ejected until when and why, weight,
 * locality, labels, requests and connections), the
 * workload certificate, and what the OpenTelemetry access logs exported and dropped. A copy: reading it changes nothing.
 *
 * @module
 */
import type { GatewayNameView } from './outbound/gateway-names.ts';
import type { MeshServers } from './adapters/server/servers.ts';
import type { ConfigOrigin } from './control-plane/source.ts';
import type { InboundTlsCounts } from './inbound/tls-stats.ts';
import type { InboundPoolCounters } from './inbound/connection-pool.ts';
import type { OtelExportStats } from './telemetry/access-log/otel-exporter.ts';
import type { ClusterState } from './outbound/cluster-state.ts';
import type { Outbound } from './outbound/pipeline.ts';
import type { CredentialHolder } from './security/identity/credentials.ts';

/**
 * What `mesh.diagnostics()` returns.
 * @category Mesh
 */
export interface MeshDiagnostics {
  readonly configVersion: string;
  readonly configSource: ConfigOrigin | 'file';
  /** The Sidecar resource that scopes this workload's egress and inbound pools (`Sidecar namespace/name`); absent when none applies. */
  readonly sidecar?: string;
  /** Mirrored requests: sent, dropped (over `maxMirrorsInFlight` or too large to replay), failed, in flight. */
  readonly mirrors: { readonly sent: number; readonly dropped: number; readonly failed: number; readonly inFlight: number };
  /** The admission phases the server side runs (`jwt`, `authorization`, `rate-limit`, …), in order; `rate-limit` once for each place local rate limit filters run at (before `ext-authz`, `jwt` or `authorization`, or after them). */
  readonly inboundPhases: readonly string[];
  /** "Ready for STRICT?": inbound requests that arrived in plaintext and over mTLS, and the mTLS ones by peer identity (the 100 seen most recently). See docs/mtls.md. */
  readonly inboundTls: InboundTlsCounts;
  /** The server side's connection pools (inbound circuit breaking, docs/server.md): requests in flight and waiting, overflows and limits per inbound port, for the ports and protocols requests have used while a limit applied. */
  readonly inboundPools: readonly InboundPoolCounters[];
  /** The clusters calls (or mirrors, or explain) have used, with their endpoints. */
  readonly clusters: readonly { readonly name: string; readonly endpoints: readonly EndpointDiagnostics[] }[];
  /** `envoyOtelAls` and `envoyHttpAls` access logs, by provider: records the collector took, or entries handed to the log service's stream (`written`), and those `dropped` (Envoy's `logs_written`, `logs_dropped`). */
  readonly otelAccessLogs: Readonly<Record<string, OtelExportStats>>;
  /** This workload's certificate in use: its SPIFFE ID, expiry (epoch ms) and where it came from. Absent without one. */
  readonly identity?: { readonly spiffeId: string; readonly notAfter: number; readonly source: 'files' | 'dev-ca' | 'control-plane' };
  /** East-west gateways given by host name: each name with the addresses in use (each a gateway), its next refresh and last failure. Absent without any. */
  readonly gatewayNames?: readonly GatewayNameView[];
}

/**
 * One endpoint of a cluster in {@link MeshDiagnostics}: its load-balancing attributes and what the
 * data plane keeps about it.
 * @category Mesh
 */
export interface EndpointDiagnostics {
  /** `address:port`. */
  readonly endpoint: string;
  /** Requests in flight to it (Envoy's `rq_active`). */
  readonly active: number;
  /** Out of the load-balancing set: outlier detection ejected it. */
  readonly ejected: boolean;
  /** How long the ejection still lasts (ms; it ends at the first outlier sweep after); 0 when not ejected. */
  readonly ejectedForMs: number;
  /** Why it was ejected (`5 consecutive 5xx (consecutive5xxErrors=5)`); '' when it is not. */
  readonly ejectionReason: string;
  /** Its load-balancing weight (at least 1). */
  readonly weight: number;
  /** `region/zone/subzone`, or ''. */
  readonly locality: string;
  /** The workload's labels (with Istio's topology labels): what subsets select. */
  readonly labels: Readonly<Record<string, string>>;
  /** Attempts sent to it and how they ended, as Envoy's per-host `rq_total`, `rq_success`, `rq_error` (a 5xx or no answer), `rq_timeout` (per-try timeouts). */
  readonly requests: { readonly total: number; readonly success: number; readonly error: number; readonly timeout: number };
  /** Connections open to it now (Envoy's `cx_active`), over every transport that counts them (undici's). */
  readonly connections: number;
}

/** The endpoints of a cluster's data-plane state, as {@link EndpointDiagnostics}, at mesh-clock time `now`. */
export function endpointDiagnostics(cs: ClusterState, now: number): EndpointDiagnostics[] {
  return cs.hostSet.hosts.map((h) => {
    let connections = 0;
    for (const t of cs.transports.values()) connections += t.pools.connections?.(h) ?? 0;
    const st = h.stats;
    return {
      endpoint: h.endpoint.key,
      active: h.active,
      ejected: h.ejected,
      ejectedForMs: h.ejected ? Math.max(0, Math.round(h.ejectedUntil - now)) : 0,
      ejectionReason: h.ejected ? h.ejectReason : '',
      weight: h.weight,
      locality: h.endpoint.locality,
      labels: { ...h.endpoint.labels },
      requests: { total: st.rqTotal, success: st.rqSuccess, error: st.rqError, timeout: st.rqTimeout },
      connections,
    };
  });
}

/**
 * The diagnostics of a mesh's parts; `identitySource`: what fills its certificate (undefined:
 * nothing), `config`: the version and origin of the config in use.
 */
export function meshDiagnostics(o: Outbound, servers: MeshServers, credentials: CredentialHolder, identitySource: NonNullable<MeshDiagnostics['identity']>['source'] | undefined, config: { readonly version: string; readonly source: ConfigOrigin | 'file' }, otelAccessLogs: MeshDiagnostics['otelAccessLogs'] = {}, gatewayNames: readonly GatewayNameView[] = []): MeshDiagnostics {
  const now = o.clock.now();
  const clusters = [...o.clusters.values()].map((cs) => ({
    name: cs.name,
    endpoints: endpointDiagnostics(cs, now),
  }));
  const cert = credentials.current;
  const identity = cert === undefined || identitySource === undefined ? undefined : { spiffeId: cert.spiffeId, notAfter: cert.notAfter, source: identitySource };
  return {
    configVersion: config.version,
    configSource: config.source,
    ...(o.snapshot.sidecar === undefined ? {} : { sidecar: o.snapshot.sidecar.ref }),
    mirrors: { ...o.mirrorStats },
    inboundPhases: servers.guard.phases,
    inboundTls: servers.tlsCounts,
    inboundPools: servers.poolCounters,
    clusters,
    otelAccessLogs,
    ...(identity === undefined ? {} : { identity }),
    ...(gatewayNames.length === 0 ? {} : { gatewayNames }),
  };
}
