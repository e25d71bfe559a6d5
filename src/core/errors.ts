/**
 * The one error catalogue of meshlet. Every error meshlet throws or synthesises is a
 * {@link MeshletError} with a stable `code`; {@link statusFor} maps each code to the HTTP
 * status, gRPC status and Envoy response flag a sidecar would have produced.
 *
 * @module
 */

import { GRPC_STATUS } from './grpc-status.ts';

const BRAND = Symbol.for('meshlet.error');

/**
 * Every stable error code meshlet uses.
 * @category Errors
 */
export type MeshletErrorCode =
  | 'MESHLET_ERR_CONFIG_INVALID'
  | 'MESHLET_ERR_INVALID_ARG'
  | 'MESHLET_ERR_NO_ROUTE'
  | 'MESHLET_ERR_NO_CLUSTER'
  | 'MESHLET_ERR_NO_HEALTHY_UPSTREAM'
  | 'MESHLET_ERR_UPSTREAM_CONNECT'
  | 'MESHLET_ERR_UPSTREAM_TLS'
  | 'MESHLET_ERR_UPSTREAM_RESET'
  | 'MESHLET_ERR_UPSTREAM_PROTOCOL'
  | 'MESHLET_ERR_REGISTRY_ONLY'
  | 'MESHLET_ERR_OVERLOADED'
  | 'MESHLET_ERR_TIMEOUT'
  | 'MESHLET_ERR_RETRIES_EXHAUSTED'
  | 'MESHLET_ERR_FAULT_ABORT'
  | 'MESHLET_ERR_UNAUTHENTICATED'
  | 'MESHLET_ERR_PERMISSION_DENIED'
  | 'MESHLET_ERR_RATE_LIMITED'
  | 'MESHLET_ERR_CONTROL_PLANE'
  | 'MESHLET_ERR_CLOSED';

/**
 * How a mesh-made failure looks on the wire, as an Istio sidecar would send it.
 * @category Errors
 */
export interface ErrorStatus {
  /** HTTP status code, or `undefined` for errors that never become a response. */
  readonly http: number | undefined;
  /** gRPC status code number, or `undefined`. */
  readonly grpc: number | undefined;
  /** Envoy response flag (`NR`, `UH`, …), or `undefined`. */
  readonly flag: string | undefined;
}

const s = (http: number | undefined, grpc: number | undefined, flag: string | undefined): ErrorStatus =>
  Object.freeze({ http, grpc, flag });

const GRPC = GRPC_STATUS;

/**
 * The one table from error code to HTTP status, gRPC status and Envoy response flag.
 * @category Errors
 */
export const ERROR_STATUS: Readonly<Record<MeshletErrorCode, ErrorStatus>> = Object.freeze({
  MESHLET_ERR_CONFIG_INVALID: s(undefined, undefined, undefined),
  MESHLET_ERR_INVALID_ARG: s(undefined, undefined, undefined),
  MESHLET_ERR_NO_ROUTE: s(404, GRPC.UNIMPLEMENTED, 'NR'),
  MESHLET_ERR_NO_CLUSTER: s(503, GRPC.UNAVAILABLE, 'NC'),
  MESHLET_ERR_NO_HEALTHY_UPSTREAM: s(503, GRPC.UNAVAILABLE, 'UH'),
  MESHLET_ERR_UPSTREAM_CONNECT: s(503, GRPC.UNAVAILABLE, 'UF'),
  /** TLS to the upstream failed (handshake refused, server certificate or identity not accepted, TLS settings unusable): a connect failure, as Envoy counts it. */
  MESHLET_ERR_UPSTREAM_TLS: s(503, GRPC.UNAVAILABLE, 'UF'),
  MESHLET_ERR_UPSTREAM_RESET: s(503, GRPC.UNAVAILABLE, 'UR'),
  MESHLET_ERR_UPSTREAM_PROTOCOL: s(502, GRPC.UNAVAILABLE, 'UPE'),
  MESHLET_ERR_REGISTRY_ONLY: s(502, GRPC.UNAVAILABLE, undefined),
  MESHLET_ERR_OVERLOADED: s(503, GRPC.UNAVAILABLE, 'UO'),
  MESHLET_ERR_TIMEOUT: s(504, GRPC.DEADLINE_EXCEEDED, 'UT'),
  MESHLET_ERR_RETRIES_EXHAUSTED: s(503, GRPC.UNAVAILABLE, 'URX'),
  MESHLET_ERR_FAULT_ABORT: s(undefined, undefined, 'FI'),
  MESHLET_ERR_UNAUTHENTICATED: s(401, GRPC.UNAUTHENTICATED, undefined),
  MESHLET_ERR_PERMISSION_DENIED: s(403, GRPC.PERMISSION_DENIED, undefined),
  /** A local rate limit's refusal: Envoy's local reply 429, which a gRPC caller gets as UNAVAILABLE (RESOURCE_EXHAUSTED when the filter says `rate_limited_as_resource_exhausted`). */
  MESHLET_ERR_RATE_LIMITED: s(429, GRPC.UNAVAILABLE, 'RL'),
  MESHLET_ERR_CONTROL_PLANE: s(undefined, undefined, undefined),
  MESHLET_ERR_CLOSED: s(undefined, GRPC.UNAVAILABLE, undefined),
});

/**
 * Context that says where a failure happened; printed at the start of the message.
 * @category Errors
 */
export interface ErrorContext {
  /** Route name (`vs-name.rule-name`), when a route was selected. */
  readonly route?: string | undefined;
  /** Cluster (`outbound|port|subset|host`). */
  readonly cluster?: string | undefined;
  /** Endpoint (`address:port`). */
  readonly endpoint?: string | undefined;
  /** Attempt number, 1-based. */
  readonly attempt?: number | undefined;
}

/**
 * Options for {@link MeshletError}.
 * @category Errors
 */
export interface MeshletErrorOptions extends ErrorContext {
  /** The underlying error. */
  readonly cause?: unknown;
  /** Every Envoy response flag that applies (`URX,UF`, in the order Envoy sets them); defaults to the code's flag. */
  readonly flags?: string | undefined;
  /** The HTTP status to answer with, when it is not the code's (a fault's configured status). */
  readonly httpStatus?: number | undefined;
  /** The gRPC status to answer with, when it is not the code's. */
  readonly grpcStatus?: number | undefined;
  /** The body of the answer, when it is not Envoy's text for the code (a rate limit service's `raw_body`). */
  readonly body?: string | undefined;
}

function prefix(ctx: ErrorContext): string {
  const parts: string[] = [];
  if (ctx.route !== undefined) parts.push(`route "${ctx.route}"`);
  if (ctx.cluster !== undefined) parts.push(`cluster ${ctx.cluster}`);
  if (ctx.endpoint !== undefined) parts.push(`endpoint ${ctx.endpoint}`);
  if (ctx.attempt !== undefined) parts.push(`attempt ${ctx.attempt}`);
  return parts.length === 0 ? '' : `${parts.join(', ')}: `;
}

/**
 * The base class of every error meshlet throws. `instanceof` works across duplicate
 * installs of meshlet (the check uses a `Symbol.for` brand).
 * @category Errors
 */
export class MeshletError extends Error {
  /** Stable machine-readable code. */
  readonly code: MeshletErrorCode;
  /** Where it happened, when known. */
  readonly route: string | undefined;
  /** Cluster name, when known. */
  readonly cluster: string | undefined;
  /** Endpoint, when known. */
  readonly endpoint: string | undefined;
  /** Attempt number, when known. */
  readonly attempt: number | undefined;
  /** Envoy response flags, comma-separated (`URX,UF`), or '' when none. */
  readonly flags: string;
  /** HTTP status a sidecar would answer with, or undefined when this never becomes a response. */
  readonly httpStatus: number | undefined;
  /** gRPC status a sidecar would answer with, or undefined. */
  readonly grpcStatus: number | undefined;
  /** The body of the answer when it is not Envoy's text for the code (a global rate limit refusal's: the service's `raw_body`). */
  readonly body: string | undefined;

  constructor(code: MeshletErrorCode, message: string, options: MeshletErrorOptions = {}) {
    super(prefix(options) + message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MeshletError';
    this.code = code;
    this.route = options.route;
    this.cluster = options.cluster;
    this.endpoint = options.endpoint;
    this.attempt = options.attempt;
    const st = ERROR_STATUS[code];
    this.flags = options.flags ?? st.flag ?? '';
    this.httpStatus = options.httpStatus ?? st.http;
    this.grpcStatus = options.grpcStatus ?? st.grpc;
    this.body = options.body;
    Object.defineProperty(this, BRAND, { value: true });
  }

  /** The status a sidecar would answer with for this error. */
  get status(): ErrorStatus {
    return ERROR_STATUS[this.code];
  }

  /**
   * `x instanceof MeshletError` holds for errors from any copy of meshlet (the brand); for a
   * subclass (`x instanceof ConfigError`) the usual prototype check applies.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class on the right of instanceof (a subclass or MeshletError)
    if (this !== MeshletError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

/**
 * A problem found in configuration: location and message, printed by `meshlet validate`.
 * @category Errors
 */
export interface ConfigIssueLike {
  readonly level: 'error' | 'warning' | 'info';
  toString(): string;
}

/**
 * Thrown when configuration is rejected; `issues` holds every problem found, not only the first.
 * @category Errors
 */
export class ConfigError<I extends ConfigIssueLike = ConfigIssueLike> extends MeshletError {
  /** Every issue found (errors, and the warnings that came with them). */
  readonly issues: readonly I[];
  constructor(issues: readonly I[], options: MeshletErrorOptions = {}) {
    const errors = issues.filter((i) => i.level === 'error');
    const shown = errors.slice(0, 20).map((i) => `  ${i.toString()}`);
    if (errors.length > shown.length) shown.push(`  … and ${errors.length - shown.length} more`);
    super('MESHLET_ERR_CONFIG_INVALID', `configuration rejected, ${errors.length} error(s):\n${shown.join('\n')}`, options);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/**
 * Thrown when an argument or option passed in code is invalid; thrown at construction, never per request.
 * @category Errors
 */
export class InvalidArgumentError extends MeshletError {
  constructor(message: string, options: MeshletErrorOptions = {}) {
    super('MESHLET_ERR_INVALID_ARG', message, options);
    this.name = 'InvalidArgumentError';
  }
}

/**
 * Type guard: is `value` a {@link MeshletError}, optionally with this `code`?
 * @category Errors
 */
export function isMeshletError(value: unknown, code?: MeshletErrorCode): value is MeshletError {
  return value instanceof MeshletError && (code === undefined || (value as MeshletError).code === code);
}

/**
 * The status table entry for an error code.
 * @category Errors
 */
export function statusFor(code: MeshletErrorCode): ErrorStatus {
  return ERROR_STATUS[code];
}

/** What mesh.fetch rejects with: the mesh's own error when fetch wrapped one (`TypeError('fetch failed')` with it as the cause). */
export function meshCause(e: unknown): unknown {
  const cause = (e as { cause?: unknown } | null | undefined)?.cause;
  return cause instanceof MeshletError ? cause : e;
}

/** Throws {@link meshCause} of `e` (a rejection handler). */
export function rejectWithMeshCause(e: unknown): never {
  throw meshCause(e);
}
