/**
 * grpc-js's status for an HTTP response that came without `grpc-status` (h2-call.ts).
 *
 * @module
 */

const UNKNOWN = 2;
const PERMISSION_DENIED = 7;
const UNIMPLEMENTED = 12;
const INTERNAL = 13;
const UNAVAILABLE = 14;
const UNAUTHENTICATED = 16;

/** grpc-js's mapping of an HTTP status that came without `grpc-status` (subchannel-call.ts `mapHttpStatusCode`). */
export function httpStatusCode(status: number): number {
  switch (status) {
    case 400:
      return INTERNAL;
    case 401:
      return UNAUTHENTICATED;
    case 403:
      return PERMISSION_DENIED;
    case 404:
      return UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return UNAVAILABLE;
    default:
      return UNKNOWN;
  }
}
