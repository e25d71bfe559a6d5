/**
 * What a mesh's admin endpoint answers (`mesh-admin.ts` serves it): `/clusters` in Envoy's text
 * and JSON formats, `/config_dump` (meshlet's own JSON), `/certs` (public parts of the workload
 * certificate and the trust bundle, never the key) and `/server_info`. Built from what the mesh
 * already holds — its snapshot, its clusters' data-plane state, its credentials — at each request.
 *
 * @module
 */
import { X509Certificate } from 'node:crypto';
import { MESHLET_VERSION } from './core/version.ts';
import { formatHostPort, keyAddress } from './core/host-port.ts';
import type { Mesh } from './mesh.ts';
import { type EndpointDiagnostics, endpointDiagnostics } from './mesh-diagnostics.ts';
import type { MeshOptions } from './mesh-options.ts';
import type { ClusterState } from './outbound/cluster-state.ts';
import type { Cluster } from './routing/route-table.ts';
import { clusterView, sidecarView, virtualHostView } from './routing/views.ts';

/** One cluster as `/clusters` shows it: its compiled settings, and its endpoints' state (or the config's, when no call used it yet). */
interface ClusterRow {
  readonly name: string;
  readonly cluster: Cluster | undefined;
  readonly state: ClusterState | undefined;
  readonly endpoints: readonly EndpointDiagnostics[];
}

/** The config's clusters in order, then any other the data plane still holds (one being removed), with their endpoints. */
function clusterRows(mesh: Mesh): ClusterRow[] {
  const states = mesh.outbound.clusters;
  const now = mesh.outbound.clock.now();
  const rows: ClusterRow[] = [];
  const snapshot = mesh.snapshot.clusters;
  for (const [name, c] of snapshot) {
    const state = states.get(name);
    rows.push({ name, cluster: c, state, endpoints: state === undefined ? c.endpoints.map(configEndpoint) : endpointDiagnostics(state, now) });
  }
  for (const [name, state] of states) if (!snapshot.has(name)) rows.push({ name, cluster: state.cluster, state, endpoints: endpointDiagnostics(state, now) });
  return rows;
}

/** An endpoint no call has used yet: as configured, healthy, nothing counted. */
function configEndpoint(e: Cluster['endpoints'][number]): EndpointDiagnostics {
  const weight = Number.isFinite(e.weight) && e.weight > 0 ? e.weight : 1;
  return { endpoint: e.key, active: 0, ejected: false, ejectedForMs: 0, ejectionReason: '', weight, locality: e.locality, labels: { ...e.labels }, requests: { total: 0, success: 0, error: 0, timeout: 0 }, connections: 0 };
}

/** Envoy's cluster type for the service's resolution, as istiod makes it (`proxy-config clusters`' TYPE). */
function clusterType(c: Cluster | undefined): string {
  if (c === undefined) return 'EDS';
  if (c.settings.passthrough) return 'ORIGINAL_DST';
  const r = c.service.resolution;
  return r === 'DNS' ? 'STRICT_DNS' : r === 'DNS_ROUND_ROBIN' ? 'LOGICAL_DNS' : 'EDS';
}

function localityParts(locality: string): { region: string; zone: string; sub_zone: string } {
  const [region = '', zone = '', subZone = ''] = locality.split('/');
  return { region, zone, sub_zone: subZone };
}

/** `10.0.0.1:80`, `[fd00::1]:80`: the endpoint's address and port as Envoy writes a socket address. */
function splitKey(endpointKey: string): { address: string; port: number } {
  const key = keyAddress(endpointKey);
  const i = key.lastIndexOf(':');
  const address = key.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { address, port: Number(key.slice(i + 1)) };
}

/** Envoy's `socket_address` of an endpoint key (exported for its test). @internal */
export function socketAddress(key: string): { address: string; port_value: number } {
  const { address, port } = splitKey(key);
  return { address, port_value: port };
}

/** An endpoint key as `/clusters` writes the host: `10.0.0.1:80`, `[fd00::1]:80`, a gateway key's `@locality` left out (exported for its test). @internal */
export function hostAddress(key: string): string {
  const { address, port } = splitKey(key);
  return formatHostPort(address, port);
}

/** The circuit-breaker thresholds as Envoy names them (Istio sets the same for both priorities). */
function thresholds(c: Cluster | undefined): { max_connections: number; max_pending_requests: number; max_requests: number; max_retries: number } {
  const l = c?.settings.connectionPool.limits;
  const u = 4294967295;
  return { max_connections: l?.maxConnections ?? u, max_pending_requests: l?.maxPending ?? u, max_requests: l?.maxRequests ?? u, max_retries: l?.maxRetries ?? u };
}

/** The DestinationRules of a cluster as istioctl names them (`reviews.default`). */
function destinationRules(c: Cluster | undefined): string[] {
  return c?.destinationRule?.rules.map((r) => `${r.metadata.name}.${r.metadata.namespace}`) ?? [];
}

/** `GET /clusters?format=json`: Envoy's `Clusters` message, with meshlet's details of each cluster and endpoint under `meshlet`. */
export function clustersJson(mesh: Mesh) {
  return {
    cluster_statuses: clusterRows(mesh).map((r) => {
      const c = r.cluster;
      return {
        name: r.name,
        observability_name: r.name,
        added_via_api: true,
        circuit_breakers: { thresholds: [{ priority: 'DEFAULT', ...thresholds(c) }, { priority: 'HIGH', ...thresholds(c) }] },
        host_statuses: r.endpoints.map((e) => ({
          address: { socket_address: socketAddress(e.endpoint) },
          stats: [
            { name: 'cx_active', type: 'GAUGE', value: e.connections },
            { name: 'rq_active', type: 'GAUGE', value: e.active },
            { name: 'rq_error', type: 'COUNTER', value: e.requests.error },
            { name: 'rq_success', type: 'COUNTER', value: e.requests.success },
            { name: 'rq_timeout', type: 'COUNTER', value: e.requests.timeout },
            { name: 'rq_total', type: 'COUNTER', value: e.requests.total },
          ],
          health_status: { eds_health_status: 'HEALTHY', failed_outlier_check: e.ejected },
          weight: e.weight,
          locality: localityParts(e.locality),
          meshlet: { ejected_for_ms: e.ejectedForMs, ejection_reason: e.ejectionReason, labels: e.labels },
        })),
        meshlet: {
          host: c?.host ?? null,
          port: c?.port ?? null,
          subset: c?.subset ?? null,
          type: clusterType(c),
          destination_rules: destinationRules(c),
          outlier_detection: c?.settings.outlierDetection !== undefined,
          rq_active: r.state?.limiter.active ?? 0,
          rq_pending: r.state?.limiter.pending ?? 0,
        },
      };
    }),
  };
}

/** `GET /clusters`: Envoy's text format, `cluster::endpoint::stat::value`, one per line. */
export function clustersText(mesh: Mesh): string {
  const out: string[] = [];
  for (const r of clusterRows(mesh)) {
    const n = r.name;
    out.push(`${n}::observability_name::${n}`);
    if (r.cluster?.settings.outlierDetection !== undefined) {
      // Istio turns success-rate ejection off: Envoy prints -1 for these.
      for (const k of ['success_rate_average', 'success_rate_ejection_threshold', 'local_origin_success_rate_average', 'local_origin_success_rate_ejection_threshold']) out.push(`${n}::outlier::${k}::-1`);
    }
    const t = thresholds(r.cluster);
    for (const p of ['default', 'high']) for (const [k, v] of Object.entries(t)) out.push(`${n}::${p}_priority::${k}::${v}`);
    out.push(`${n}::added_via_api::true`);
    for (const e of r.endpoints) {
      const h = `${n}::${hostAddress(e.endpoint)}`;
      const loc = localityParts(e.locality);
      out.push(`${h}::cx_active::${e.connections}`, `${h}::rq_active::${e.active}`, `${h}::rq_error::${e.requests.error}`, `${h}::rq_success::${e.requests.success}`);
      out.push(`${h}::rq_timeout::${e.requests.timeout}`, `${h}::rq_total::${e.requests.total}`, `${h}::hostname::`, `${h}::health_flags::${e.ejected ? '/failed_outlier_check' : 'healthy'}`);
      out.push(`${h}::weight::${e.weight}`, `${h}::region::${loc.region}`, `${h}::zone::${loc.zone}`, `${h}::sub_zone::${loc.sub_zone}`, `${h}::canary::false`, `${h}::priority::0`);
      out.push(`${h}::success_rate::-1`, `${h}::local_origin_success_rate::-1`);
      // meshlet's own: why and for how long an ejected endpoint is out.
      if (e.ejected) out.push(`${h}::ejection_reason::${oneLine(e.ejectionReason)}`, `${h}::ejected_for_ms::${e.ejectedForMs}`);
    }
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ');
}

/** `GET /config_dump`: the config in effect for this workload, in meshlet's own shapes (those of `meshlet routes -o json`). */
export function configDump(mesh: Mesh, o: MeshOptions) {
  const snap = mesh.snapshot;
  const d = mesh.diagnostics();
  const client = { labels: mesh.identity.labels, locality: o.locality ?? '', meshLocality: o.localityLbSetting, meshConnectTimeoutMs: snap.meshSettings?.connectTimeoutMs ?? o.connectTimeoutMs, meshTcpKeepalive: mesh.outbound.tcpKeepalive };
  return {
    meshlet: { version: MESHLET_VERSION },
    workload: { ...mesh.identity, labels: { ...mesh.identity.labels }, locality: o.locality ?? '' },
    config: { version: mesh.configVersion, source: mesh.configSource, snapshotVersion: snap.version },
    sidecar: sidecarView(snap.sidecar),
    // The mesh-wide settings in use and where each came from (the control plane's MeshConfig), when the snapshot carries them.
    meshSettings: snap.meshSettings ?? null,
    resources: snap.resources.map((r) => ({ apiVersion: r.apiVersion, kind: r.kind, metadata: r.metadata, spec: r.spec })),
    virtualHosts: snap.routes.virtualHosts.map(virtualHostView),
    clusters: [...snap.clusters.values()].map((c) => clusterView(c, client)),
    inbound: { phases: [...d.inboundPhases], pools: d.inboundPools, tls: d.inboundTls },
    identity: d.identity ?? null,
    // East-west gateways by host name: the addresses each stands for now (the clusters' gateway endpoints name the host).
    gatewayNames: d.gatewayNames ?? [],
  };
}

/** One certificate's public details, as Envoy's `/certs` gives them. */
function certDetails(pem: string, now: number) {
  const x = new X509Certificate(pem);
  const notAfter = Date.parse(x.validTo);
  const notBefore = Date.parse(x.validFrom);
  const uris = (x.subjectAltName ?? '')
    .split(/,\s*/)
    .filter((s) => s.startsWith('URI:'))
    .map((s) => ({ uri: s.slice(4) }));
  return {
    serial_number: x.serialNumber.toLowerCase(),
    subject: (x.subject ?? '').replace(/\n/g, ', '),
    issuer: (x.issuer ?? '').replace(/\n/g, ', '),
    subject_alt_names: uris,
    days_until_expiration: Math.floor((notAfter - now) / 86_400_000),
    valid_from: new Date(notBefore).toISOString(),
    expiration_time: new Date(notAfter).toISOString(),
    fingerprint_sha256: x.fingerprint256,
  };
}

/** The PEM blocks of one kind in `text`. */
function pemBlocks(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
}

/**
 * `GET /certs`: the workload certificate chain (leaf first) and the trust bundle, public parts
 * only (serial, subject, SPIFFE ID, validity, fingerprint); `certificates` is empty without an identity.
 */
export function certs(mesh: Mesh) {
  const c = mesh.credentials.current;
  if (c === undefined) return { certificates: [], meshlet: { spiffe_id: null, source: null, pending: mesh.credentials.pending } };
  const now = Date.now();
  return {
    certificates: [{ cert_chain: pemBlocks(c.certChain).map((p) => certDetails(p, now)), ca_cert: pemBlocks(c.trustBundle).map((p) => certDetails(p, now)) }],
    meshlet: { spiffe_id: c.spiffeId, source: mesh.diagnostics().identity?.source ?? null, pending: false },
  };
}

/** `GET /server_info`: version, state, uptime, the workload and the config in use. */
export function serverInfo(mesh: Mesh, state: string, startedAt: number) {
  const id = mesh.identity;
  const c = mesh.credentials.current;
  const up = Math.max(0, Math.floor((mesh.outbound.clock.now() - startedAt) / 1000));
  return {
    version: MESHLET_VERSION,
    state,
    uptime_current_epoch: `${up}s`,
    uptime_all_epochs: `${up}s`,
    node: {
      id: `${id.workloadName}.${id.namespace}`,
      workload: { service: id.service, namespace: id.namespace, labels: { ...id.labels }, service_account: id.serviceAccount, workload_name: id.workloadName },
      spiffe_id: c?.spiffeId ?? null,
    },
    config: { version: mesh.configVersion, source: mesh.configSource },
    runtime: { node: process.version, pid: process.pid },
  };
}
