/**
 * The control-plane wire protocol (version 1), shared by the client in this folder and by
 * `meshlet control-plane`. docs/control-plane-protocol.md is the prose version of this file.
 *
 * - `GET /v1/watch` is a Server-Sent Events stream: `hello`, then `config` and `endpoints`
 *   events, each a full state of its part with a content version; `: ping` comments keep it alive.
 * - `POST /v1/ack` ACKs or NACKs each version the client received, with reasons.
 * - `/v1/workloads` is the registry (WorkloadGroup auto-registration with leases).
 * - `/v1/resources` is the config API used by `meshlet apply | get | delete`.
 * - `GET /status` is what `meshlet status` prints.
 *
 * Resources travel as plain Kubernetes-shaped objects (`apiVersion`, `kind`, `metadata`, `spec`).
 *
 * @module
 */
import type { AnyResource } from '../config/resource.ts';

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
/** The status document. */
export const STATUS_PATH = '/status';
/** Liveness: `200 ok` once the first config was loaded. */
export const HEALTH_PATH = '/healthz';

/** Istio's plaintext xDS port, used by default. */
export const DEFAULT_PORT = 15010;
/** How often the server writes `: ping` on an idle watch stream. */
export const DEFAULT_HEARTBEAT_MS = 10_000;
/** A client that hears nothing (not even a ping) for this many heartbeats reconnects. */
export const HEARTBEAT_MISSES = 3;
/** Registration lease when the client does not ask for one. */
export const DEFAULT_LEASE_MS = 30_000;
/** Bounds on a requested lease. */
export const MIN_LEASE_MS = 1_000;
export const MAX_LEASE_MS = 300_000;
/** The environment variable `createMesh` and the CLI read a token from. */
export const TOKEN_ENV = 'MESHLET_TOKEN';

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
}

/** Query of `GET /v1/watch`: who is asking (must agree with the token's identity). */
export interface WatchQuery {
  readonly service: string;
  readonly namespace: string;
  /** `k=v,k2=v2` on the wire. */
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
  readonly heartbeatMs: number;
}

/**
 * `event: config`: every resource relevant to the workload (visible to its namespace;
 * security policies of its namespace or the root namespace), as a whole.
 * The SSE `id` is `<configVersion>/<endpointsVersion>`; a reconnect sends it back as `Last-Event-ID`.
 */
export interface ConfigEvent {
  readonly version: string;
  readonly resources: readonly WireResource[];
}

/** `event: endpoints`: every registered workload (as WorkloadEntry resources), as a whole. */
export interface EndpointsEvent {
  readonly version: string;
  readonly workloads: readonly WireResource[];
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
}

/** Answer of `POST /v1/workloads` and of a lease renewal. */
export interface RegisterResponse {
  readonly name: string;
  readonly namespace: string;
  readonly leaseMs: number;
  /** The WorkloadEntry as other meshes see it. */
  readonly workload: WireResource;
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
    /** `UNAUTHENTICATED` (401), `FORBIDDEN` (403), `INVALID` (400), `NOT_FOUND` (404), `CONFLICT` (409), `UNAVAILABLE` (503). */
    readonly code: string;
    readonly message: string;
    /** Printed config issues, for `INVALID`. */
    readonly issues?: readonly string[];
  };
}

/** One connected (or recently disconnected) workload in the status. */
export interface WorkloadStatus {
  readonly connection: string;
  readonly service: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly peer: string;
  readonly connectedAt: string;
  /** Absent while connected. */
  readonly disconnectedAt?: string;
  readonly sent: { readonly config?: string; readonly endpoints?: string };
  readonly acked: { readonly config?: { readonly version: string; readonly at: string }; readonly endpoints?: { readonly version: string; readonly at: string } };
  readonly nacked?: { readonly kind: 'config' | 'endpoints'; readonly version: string; readonly at: string; readonly reasons: readonly string[] };
}

/** A config change the source refused. */
export interface Rejection {
  readonly at: string;
  /** What was refused: a file change, an `apply`, an etcd write. */
  readonly origin: string;
  readonly reasons: readonly string[];
}

/** `GET /status`. */
export interface StatusDocument {
  readonly server: string;
  readonly startedAt: string;
  readonly configVersion: string;
  readonly endpointsVersion: string;
  readonly source: { readonly kind: 'file' | 'etcd'; readonly location: string; readonly healthy: boolean; readonly error?: string };
  /** `N/M workloads at config version X` (like `istioctl proxy-status`). */
  readonly summary: string;
  readonly workloads: readonly WorkloadStatus[];
  /** Newest first, bounded. */
  readonly rejections: readonly Rejection[];
  /**
   * Analysis findings of the config being served (advisory: the config is applied; they refuse
   * changes only with `--analysis blocking`), as `istioctl analyze` would print them.
   */
  readonly findings: readonly StatusFinding[];
  readonly registered: number;
}

/** One analysis finding in the status. */
export interface StatusFinding {
  readonly level: 'error' | 'warning' | 'info';
  /** `IST0101`, … */
  readonly code: string;
  /** `Kind namespace/name`, when the finding is about one resource. */
  readonly resource?: string;
  /** The finding as `meshlet validate` prints it (file, resource, path, message, line). */
  readonly text: string;
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
  return { apiVersion: r.apiVersion, kind: r.kind, metadata: r.metadata, spec: r.spec };
}
