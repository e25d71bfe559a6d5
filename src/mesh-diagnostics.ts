/**
 * {@link Mesh.diagnostics}: what a mesh's data plane holds right now, as plain data — the config
 * in use, mirrored-request counters, the server side's phases, TLS counts and pools, every
 * cluster calls have used with its endpoints (in flight, ejected and until when), the
 * workload certificate, and what the OpenTelemetry access logs exported and dropped. A copy: reading it changes nothing.
 *
 * @module
 */
import type { MeshServers } from './adapters/server/servers.ts';
import type { ConfigOrigin } from './control-plane/source.ts';
import type { InboundTlsCounts } from './inbound/tls-stats.ts';
import type { InboundPoolCounters } from './inbound/connection-pool.ts';
import type { OtelExportStats } from './telemetry/access-log/otel-exporter.ts';
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
  readonly clusters: readonly { readonly name: string; readonly endpoints: readonly { readonly endpoint: string; readonly active: number; readonly ejected: boolean; readonly ejectedForMs: number }[] }[];
  /** `envoyOtelAls` access logs, by provider: records the collector took (`written`) and records `dropped` (Envoy's `logs_written`, `logs_dropped`). */
  readonly otelAccessLogs: Readonly<Record<string, OtelExportStats>>;
  /** This workload's certificate in use: its SPIFFE ID, expiry (epoch ms) and where it came from. Absent without one. */
  readonly identity?: { readonly spiffeId: string; readonly notAfter: number; readonly source: 'files' | 'dev-ca' | 'control-plane' };
}

/**
 * The diagnostics of a mesh's parts; `identitySource`: what fills its certificate (undefined:
 * nothing), `config`: the version and origin of the config in use.
 */
export function meshDiagnostics(o: Outbound, servers: MeshServers, credentials: CredentialHolder, identitySource: NonNullable<MeshDiagnostics['identity']>['source'] | undefined, config: { readonly version: string; readonly source: ConfigOrigin | 'file' }, otelAccessLogs: MeshDiagnostics['otelAccessLogs'] = {}): MeshDiagnostics {
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
  };
}
