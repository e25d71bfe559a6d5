/**
 * The control-plane wire protocol (version 1), shared by the client in this folder and by
 * `meshlet control-plane`. docs/control-plane-protocol.md is the prose version of this file.
 *
 * - `GET /v1/watch` is a Server-Sent Events stream: `hello`, then `config` and `endpoints`
 *   events, each a full state of its part with a content version, and `endpoints-delta` events
 *   (changes on top of the endpoints the client has) for clients that ask for them;
 *   `: ping` comments keep it alive.
 * - `POST /v1/ack` ACKs or NACKs each version the client received, with reasons.
 * - `/v1/workloads` is the registry (WorkloadGroup auto-registration with leases).
 * - `/v1/resources` is the config API used by `meshlet apply | get | delete`.
 * - `POST /v1/certificates` signs a workload's CSR (its identity is the token's); `GET /v1/ca`
 *   shows the CA and trust bundle, `POST /v1/ca/rotate` rotates the root; `trust-bundle` events
 *   push the roots to every watch stream.
 * - `POST /v1/report` tells the status a workload's certificate expiry and inbound TLS counts.
 * - `GET /status` is what `meshlet status` prints.
 *
 * Resources travel as plain Kubernetes-shaped objects (`apiVersion`, `kind`, `metadata`, `spec`).
 * The certificate and CA messages are in `protocol-ca.ts`, the reports and the status document in
 * `protocol-status.ts`; both are re-exported here.
 *
 * @module
 */
import type { AnyResource } from '../config/resource.ts';
import type { ReadinessProbe } from '../config/types/networking.ts';

export type * from './protocol-ca.ts';
export type * from './protocol-status.ts';

/** Path prefix of every versioned endpoint. */
export const API_PREFIX = '/v1';
/** The SSE watch stream. */
export const WATCH_PATH = '/v1/watch';
/** ACK/NACK of a received version. */
export const ACK_PATH = '/v1/ack';
/** The registry: `POST` registers, `PUT <ns>/<name>/lease` renews, `DELETE <ns>/<name>` deregisters. */
export const WORKLOADS_PATH = '/v1/workloads';
/** The config API: `GET [?kind=&namespace=]`, `GET <Kind>/<ns>/<name>`, `POST` (apply), `DELETE <Kind>/<ns>/<name>`. */
export const RESOURCES_PATH = '/v1/resources';
/** Certificate signing: `POST` a {@link CertificateRequest}, answered with a {@link CertificateResponse}. */
export const CERTIFICATES_PATH = '/v1/certificates';
/** The CA: `GET` answers a {@link CaInfo}. */
export const CA_PATH = '/v1/ca';
/** Root rotation (admin): `POST` a {@link RotateRequest}, answered with the new {@link CaInfo}. */
export const CA_ROTATE_PATH = '/v1/ca/rotate';
/** A workload's report for the status: `POST` a {@link WorkloadReport}. */
export const REPORT_PATH = '/v1/report';
/** The status document. */
export const STATUS_PATH = '/status';
/** Liveness: `200 ok` once the first config was loaded. */
export const HEALTH_PATH = '/healthz';
/** The control plane's own metrics, Prometheus text format; no token (as istiod's monitoring port 15014). */
export const METRICS_PATH = '/metrics';

/** Istio's plaintext xDS port, used by default. */
export const DEFAULT_PORT = 15010;
/** How often the server writes `: ping` on an idle watch stream. */
export const DEFAULT_HEARTBEAT_MS = 10_000;
/**
 * Bounds of the heartbeat interval: the server's option must be within them, and a client clamps
 * the `heartbeatMs` of a `hello` into them (a huge value would overflow its timer and a dead
 * stream would never be noticed; a tiny one would reconnect in a loop).
 */
export const MIN_HEARTBEAT_MS = 20;
export const MAX_HEARTBEAT_MS = 120_000;
/** A client that hears nothing (not even a ping) for this many heartbeats reconnects. */
export const HEARTBEAT_MISSES = 3;
/** Registration lease when the client does not ask for one. */
export const DEFAULT_LEASE_MS = 30_000;
/** Bounds on a lease: a requested one is clamped into them by the server, a granted one by the client. */
export const MIN_LEASE_MS = 1_000;
export const MAX_LEASE_MS = 300_000;
/** Most reasons one NACK may carry by default (the server answers 413 beyond its limit). */
export const DEFAULT_MAX_NACK_REASONS = 100;
/** Most bytes (UTF-8, all reasons together) one NACK may carry by default. */
export const DEFAULT_MAX_NACK_BYTES = 64 * 1024;
/** The watch query's `features` value of a client that applies `endpoints-delta` events. */
export const ENDPOINTS_DELTA_FEATURE = 'endpoints-delta';
/** The environment variable `createMesh` and the CLI read a token from. */
export const TOKEN_ENV = 'MESHLET_TOKEN';
/** Where a mesh reads its token file from when no token is given (`tokenFile`). */
export const TOKEN_FILE_ENV = 'MESHLET_TOKEN_FILE';

/** A resource as it travels: the Kubernetes shape. */
export interface WireResource {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: {
    readonly name: string;
    readonly namespace?: string;
    readonly labels?: Readonly<Record<string, string>>;
    readonly annotations?: Readonly<Record<string, string>>;
    readonly creationTimestamp?: string;
  };
  readonly spec: unknown;
  /** A WorkloadEntry's status conditions, when it has some. */
  readonly status?: unknown;
}

/**
 * Query of `GET /v1/watch`: who is asking (must agree with the token's identity). On the wire
 * also `features=endpoints-delta` ({@link ENDPOINTS_DELTA_FEATURE}, comma-separated) from clients
 * that apply {@link EndpointsDeltaEvent}s; a client without it gets a full `endpoints` event per change.
 */
export interface WatchQuery {
  readonly service: string;
  readonly namespace: string;
  /**
   * `k=v,k2=v2` on the wire. With a workload token, only the labels the token proves are used
   * (its `labels` claim, and `app` = its service); see {@link HelloEvent.labels}.
   */
  readonly labels: Readonly<Record<string, string>>;
}

/** `event: hello`: the first event of every watch stream. */
export interface HelloEvent {
  /** Names this stream in ACKs and in the status. */
  readonly connection: string;
  /** The replica that serves the stream. */
  readonly server: string;
  /** The versions the server has now; a client that already has both gets no `config`/`endpoints` event. */
  readonly configVersion: string;
  readonly endpointsVersion: string;
  /** Interval of `: ping` comments; a client clamps it to {@link MIN_HEARTBEAT_MS}..{@link MAX_HEARTBEAT_MS}. */
  readonly heartbeatMs: number;
  /** The labels the config is filtered by (what the token proves). Absent from older servers. */
  readonly labels?: Readonly<Record<string, string>>;
  /** Query labels the token does not prove: ignored (policies selecting on them are not sent). */
  readonly ignoredLabels?: readonly string[];
}

/**
 * `event: config`: every resource relevant to the workload (visible to its namespace;
 * security policies of its namespace or the root namespace), as a whole.
 * The SSE `id` is `<configVersion>/<endpointsVersion>`; a reconnect sends back, as `Last-Event-ID`,
 * the versions the client has applied (its last good state): the server does not send them again,
 * and its status counts them as sent and ACKed.
 */
export interface ConfigEvent {
  readonly version: string;
  readonly resources: readonly WireResource[];
}

/**
 * `event: endpoints`: every registered workload the client may see (as WorkloadEntry resources),
 * as a whole: the ones selected by a Service or ServiceEntry (`workloadSelector`) visible to its
 * namespace. The version is a content version of that view.
 */
export interface EndpointsEvent {
  readonly version: string;
  readonly workloads: readonly WireResource[];
}

/** Names a registered workload: its WorkloadEntry's namespace and name. */
export interface WorkloadRef {
  readonly namespace: string;
  readonly name: string;
}

/**
 * `event: endpoints-delta`, only to clients that asked for it: the change from endpoints version
 * `base` to `version`. A client at `base` replaces or adds `workloads` (by namespace/name) and
 * drops `removed`; a client at any other version cannot apply it and resyncs (reconnects with its
 * versions in `Last-Event-ID`, and gets a full `endpoints` event).
 */
export interface EndpointsDeltaEvent {
  readonly version: string;
  readonly base: string;
  readonly workloads: readonly WireResource[];
  readonly removed: readonly WorkloadRef[];
}

/**
 * `event: trust-bundle`: every root a workload should trust (more than one while a root rotates),
 * sent after `hello` and whenever it changes. Clients that do not know the event ignore it.
 */
export interface TrustBundleEvent {
  /** A content version of `roots`. */
  readonly version: string;
  /** PEM certificates, one per root. */
  readonly roots: readonly string[];
}

/**
 * `event: mesh-config`: the control plane's MeshConfig (`meshlet control-plane --mesh-config`,
 * istiod's `istio` ConfigMap `data.mesh`), as a YAML mapping parsed to JSON, sent after `hello`
 * and before `config` on every stream (`{}` when the control plane has none), so that the first
 * config a mesh compiles is compiled with it. A mesh applies it under its own options (they win,
 * field by field). Clients that do not know the event ignore it; it is not ACKed.
 */
export interface MeshConfigEvent {
  /** A content version of `meshConfig`. */
  readonly version: string;
  /** The MeshConfig's fields (`connectTimeout`, `defaultHttpRetryPolicy`, `outboundTrafficPolicy`, …). */
  readonly meshConfig: Readonly<Record<string, unknown>>;
  /** Where the control plane read it (its `--mesh-config` file), for messages. */
  readonly source?: string;
  /**
   * Istio's MeshNetworks (the `istio` ConfigMap's `data.meshNetworks`, parsed: `{ networks }`),
   * when the control plane has one; a mesh without its own `meshNetworks` takes it.
   */
  readonly meshNetworks?: Readonly<Record<string, unknown>>;
}

/** Body of `POST /v1/ack`. */
export interface AckRequest {
  readonly connection: string;
  readonly kind: 'config' | 'endpoints';
  readonly version: string;
  readonly status: 'ACK' | 'NACK';
  /** Why a version was NACKed (printed issues). */
  readonly reasons?: readonly string[];
}

/** Body of `POST /v1/workloads`. The service and namespace come from the token. */
export interface RegisterRequest {
  /** The workload's address; the request's remote address when absent. */
  readonly address?: string;
  /** Port name → port, e.g. `{ http: 19081 }`; may be left out when the WorkloadGroup template names ports. */
  readonly ports?: Readonly<Record<string, number>>;
  /**
   * The WorkloadGroup of the workload's namespace whose template the WorkloadEntry is made from
   * (404 if it does not exist). Absent: the group named like the service, if there is one.
   */
  readonly group?: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** `region/zone/subzone`. */
  readonly locality?: string;
  readonly weight?: number;
  readonly network?: string;
  /** Lease length asked for; bounded by {@link MIN_LEASE_MS}..{@link MAX_LEASE_MS}. */
  readonly leaseMs?: number;
  /** Only with an `--insecure` server (no token): who registers. */
  readonly service?: string;
  readonly namespace?: string;
  /**
   * The workload's service account, the identity its certificate proves (the WorkloadEntry's
   * `serviceAccount`: clients check the server's SPIFFE ID against it). With a workload token
   * the token's service account is used, and a different one here is refused.
   */
  readonly serviceAccount?: string;
  /**
   * The workload runs its WorkloadGroup's readiness probe, if the group has one, and reports its
   * health transitions (`PUT <ns>/<name>/health`), as a pilot-agent whose proxy config has a
   * `readinessProbe`. Only then is the entry health-checked (`proxy.istio.io/health-checks-enabled`,
   * no endpoint until reported healthy) and does the answer carry the probe. meshlet's client
   * sends `true`; a client that leaves it out gets an entry that is an endpoint at once.
   */
  readonly healthChecks?: boolean;
}

/** Answer of `POST /v1/workloads` and of a lease renewal. */
export interface RegisterResponse {
  readonly name: string;
  readonly namespace: string;
  readonly leaseMs: number;
  /** The WorkloadEntry as other meshes see it. */
  readonly workload: WireResource;
  /**
   * The readiness probe of the WorkloadGroup the entry was made from, when it has one and the
   * request said `healthChecks: true` (register answers only): the entry is health-checked, and
   * the workload runs this probe and reports its health transitions (`PUT <ns>/<name>/health`),
   * as pilot-agent does.
   */
  readonly probe?: ReadinessProbe;
}

/**
 * Body of `PUT /v1/workloads/<ns>/<name>/health`: a health transition of a registered,
 * health-checked workload (pilot-agent's health event: healthy, or not with the probe's error).
 */
export interface HealthReport {
  readonly healthy: boolean;
  /** Why the probe failed (kept as the condition's `message`). */
  readonly message?: string;
}

/** Answer of `POST /v1/resources` (apply). */
export interface ApplyResponse {
  readonly version: string;
  readonly applied: readonly { readonly ref: string; readonly action: 'created' | 'configured' | 'unchanged' }[];
  /** Warnings and infos (printed issues); errors reject the apply with 400. */
  readonly warnings: readonly string[];
}

/** Every error answer: `{ error: { code, message, issues? } }` with the HTTP status. */
export interface ErrorBody {
  readonly error: {
    /**
     * `UNAUTHENTICATED` (401), `FORBIDDEN` (403), `INVALID` (400), `NOT_FOUND` (404), `CONFLICT` (409),
     * `TOO_LARGE` (413), `LIMIT_EXCEEDED` (429: a per-workload limit; retrying does not help until
     * something is released), `UNAVAILABLE` (503).
     */
    readonly code: string;
    readonly message: string;
    /** Printed config issues, for `INVALID`. */
    readonly issues?: readonly string[];
  };
}

/** Formats labels for the wire: `a=b,c=d`, keys sorted. */
export function formatLabels(labels: Readonly<Record<string, string>>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}

/** Parses `a=b,c=d`; throws `TypeError` naming the bad pair. */
export function parseLabelQuery(text: string | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (text === null || text === undefined || text === '') return out;
  for (const pair of text.split(',')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new TypeError(`labels: expected key=value, got "${pair}"`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/**
 * A duration in ms that came from the wire, clamped into `[min, max]`; `undefined` when it is not
 * a finite number. Every duration a client takes from the server goes through this (`setTimeout`
 * turns anything above 2^31-1 ms, and NaN, into 1 ms).
 */
export function clampWireMs(value: unknown, min: number, max: number): number | undefined {
  if (typeof value !== 'number' || !Number.isFinite(value)) return undefined;
  return Math.min(max, Math.max(min, Math.round(value)));
}

/** Longest single NACK reason a client sends; a longer one is cut (with a marker). */
export const MAX_NACK_REASON_CHARS = 4096;

/**
 * Bounds the reasons of a NACK to what a server accepts by default: at most `maxReasons`
 * reasons of at most {@link MAX_NACK_REASON_CHARS} characters and `maxBytes` bytes together; what
 * does not fit is summarised in a last `… and N more` reason.
 */
export function boundNackReasons(reasons: readonly string[], maxReasons = DEFAULT_MAX_NACK_REASONS, maxBytes = DEFAULT_MAX_NACK_BYTES): string[] {
  const out: string[] = [];
  const room = maxBytes - 64; // for the summary
  let bytes = 0;
  for (const r of reasons) {
    const text = r.length > MAX_NACK_REASON_CHARS ? `${r.slice(0, MAX_NACK_REASON_CHARS)}… (cut)` : r;
    const size = Buffer.byteLength(text);
    if (out.length >= maxReasons - 1 || bytes + size > room) break;
    out.push(text);
    bytes += size;
  }
  if (out.length < reasons.length) out.push(`… and ${reasons.length - out.length} more`);
  return out;
}

/** The SSE event id: both versions, so a reconnect can say what it has. */
export function eventId(configVersion: string, endpointsVersion: string): string {
  return `${configVersion}/${endpointsVersion}`;
}

/** Splits a `Last-Event-ID` into its two versions ('' when absent or malformed). */
export function parseEventId(id: string | null | undefined): { configVersion: string; endpointsVersion: string } {
  if (id === null || id === undefined) return { configVersion: '', endpointsVersion: '' };
  const slash = id.indexOf('/');
  if (slash < 0) return { configVersion: '', endpointsVersion: '' };
  return { configVersion: id.slice(0, slash), endpointsVersion: id.slice(slash + 1) };
}

/** A validated resource as it travels (drops meshlet's bookkeeping: source, ref, load order). */
export function toWire(r: AnyResource): WireResource {
  // A WorkloadEntry's status conditions travel too: its Healthy condition decides whether it is an endpoint.
  return { apiVersion: r.apiVersion, kind: r.kind, metadata: r.metadata, spec: r.spec, ...(r.status === undefined ? {} : { status: r.status }) };
}
