/**
 * The one table of gRPC status codes: names (as Istio's `abort.grpcStatus` and `retryOn` spell
 * them) and numbers, and Envoy's mappings between gRPC and HTTP statuses
 * (`Grpc::Utility::grpcToHttpStatus` / `httpToGrpcStatus`, source/common/grpc/status.cc), which
 * outlier detection, the retry rules, local replies and telemetry all use.
 *
 * @module
 */

/** gRPC status codes by name. */
export const GRPC_STATUS = Object.freeze({
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const);

/** A gRPC status name. */
export type GrpcStatusName = keyof typeof GRPC_STATUS;

/** Every gRPC status name, in code order. */
export const GRPC_STATUS_NAMES: readonly GrpcStatusName[] = Object.freeze(Object.keys(GRPC_STATUS) as GrpcStatusName[]);

/** The code of a status name, or undefined for a name that is none. */
export function grpcStatusCode(name: string): number | undefined {
  return Object.hasOwn(GRPC_STATUS, name) ? GRPC_STATUS[name as GrpcStatusName] : undefined;
}

/** The name of a status code (`UNAVAILABLE`), or the number as text for codes outside the table. */
export function grpcStatusName(code: number): string {
  return GRPC_STATUS_NAMES[code] ?? String(code);
}

// Indexed by gRPC code: Envoy's grpcToHttpStatus (codes outside 0..16 map to 500).
const TO_HTTP: readonly number[] = [200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401];

/** The HTTP status Envoy charges a gRPC status as (outlier detection, stats): UNAVAILABLE → 503, … */
export function grpcToHttp(code: number): number {
  return TO_HTTP[code] ?? 500;
}

/** The gRPC status of a non-gRPC HTTP answer (gRPC's http-grpc-status-mapping, as Envoy applies it). */
export function httpToGrpc(status: number): number {
  switch (status) {
    case 400:
      return GRPC_STATUS.INTERNAL;
    case 401:
      return GRPC_STATUS.UNAUTHENTICATED;
    case 403:
      return GRPC_STATUS.PERMISSION_DENIED;
    case 404:
      return GRPC_STATUS.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GRPC_STATUS.UNAVAILABLE;
    default:
      return GRPC_STATUS.UNKNOWN;
  }
}

/** The `grpc-status` of a header or trailer map, or -1 when there is none (or it is not a number). */
export function grpcStatusOf(headers: Readonly<Record<string, string | readonly string[] | undefined>> | undefined): number {
  if (headers === undefined) return -1;
  const v = headers['grpc-status'];
  const s = typeof v === 'string' ? v : Array.isArray(v) ? v[0] : undefined;
  if (s === undefined || s === '') return -1;
  const n = Number(s);
  return Number.isInteger(n) && n >= 0 ? n : -1;
}
