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
import type { MeshDiagnostics } from './mesh-options.ts';
import type { Outbound } from './outbound/pipeline.ts';
import type { CredentialHolder } from './security/identity/credentials.ts';

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
