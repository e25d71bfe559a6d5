/**
 * The status mapping of grpc-js's HTTP/2 calls (`Http2SubchannelCall`, grpc-js 1.14) that
 * h2-call.ts applies: its status codes, an HTTP status without `grpc-status`, trailers that
 * carry only the status, and the 5-byte message framing.
 *
 * @module
 */
import type * as http2 from 'node:http2';
import type { StatusObject } from '@grpc/grpc-js';
import type { GrpcJs } from './grpc-js.ts';

/** grpc-js's statuses. */
export const OK = 0;
export const CANCELLED = 1;
export const UNKNOWN = 2;
export const RESOURCE_EXHAUSTED = 8;
export const PERMISSION_DENIED = 7;
export const UNIMPLEMENTED = 12;
export const INTERNAL = 13;
export const UNAVAILABLE = 14;
export const UNAUTHENTICATED = 16;

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

/** What grpc-js's Metadata takes as a value of a name not ending in `-bin` (metadata.js `validate`). */
const LEGAL_VALUE = /^[ -~]*$/;

/**
 * The status of trailers that carry nothing but `grpc-status` and `grpc-message` (almost every
 * answer), read straight from them: what the Metadata path below makes of them (a status with
 * empty metadata), without a Metadata made, read and emptied per call. Anything else (other
 * names, a missing status, several values, a value grpc-js would refuse): undefined.
 */
export function plainStatus(headers: http2.IncomingHttpHeaders, g: GrpcJs): StatusObject | undefined {
  let code: string | undefined;
  let message: string | undefined;
  for (const k in headers) {
    const v = headers[k];
    if (k === 'grpc-status') code = v as string;
    else if (k === 'grpc-message') message = v as string;
    else if (k.charCodeAt(0) !== 58 /* : */) return undefined;
    if (k.charCodeAt(0) !== 58 && (typeof v !== 'string' || !LEGAL_VALUE.test(v))) return undefined;
  }
  if (code === undefined) return undefined;
  let details = '';
  if (message !== undefined) {
    try {
      details = decodeURI(message);
    } catch {
      details = message;
    }
  }
  return { code: Number(code), details, metadata: new g.Metadata() };
}

/** A message with gRPC's 5-byte prefix (uncompressed, its length). */
export function frame(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(message.length + 5);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}
