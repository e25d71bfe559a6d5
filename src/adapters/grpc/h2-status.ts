/**
 * The status mapping of grpc-js's HTTP/2 calls (`Http2SubchannelCall`, grpc-js 1.14) that
 * h2-call.ts applies: its status codes, an HTTP status without `grpc-status`, a stream closed without a status (its RST_STREAM code), trailers that
 * carry only the status, and the 5-byte message framing.
 *
 * @module
 */
import * as http2 from 'node:http2';
import type { Metadata, StatusObject } from '@grpc/grpc-js';
import type { FailureKind } from '../../core/outcome.ts';
import type { GrpcJs } from './grpc-js.ts';
import { storeOf } from './wire-metadata.ts';

const { NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_INADEQUATE_SECURITY, NGHTTP2_INTERNAL_ERROR } = http2.constants;

/** What an attempt is told of its stream. */
export interface H2Listener {
  onReceiveMetadata(metadata: Metadata): void;
  onReceiveMessage(message: Buffer): void;
  /**
   * The status: the server's (`failure` undefined), or the one grpc-js makes up for a stream that
   * ended without one, and what kind of transport failure that was (Envoy's reset reasons: a
   * dropped connection is `reset` — connection termination —, RST_STREAM `remote-reset`,
   * REFUSED_STREAM `refused-stream`).
   */
  onReceiveStatus(status: StatusObject, failure: FailureKind | undefined): void;
  /**
   * A response message is larger than the caller takes (`grpc.max_receive_message_length`): its
   * length prefix says so, or it inflates to more. Refused there, as grpc-js refuses it, before
   * its bytes are kept (or inflated further); the listener cancels the call with `details` (RESOURCE_EXHAUSTED).
   */
  onMessageTooLarge(details: string): void;
}

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
  return { code: Number(code), details: message === undefined ? '' : statusDetails(message), metadata: new g.Metadata() };
}

/** A `grpc-message` as grpc-js reads it: percent-decoded (`decodeURI`), or as sent when that fails. */
export function statusDetails(message: string): string {
  try {
    return decodeURI(message);
  } catch {
    return message;
  }
}

/** What grpc-js's Metadata takes as a name (metadata.js `validate`). */
const LEGAL_NAME = /^[:0-9a-z_.-]+$/;

/**
 * The response metadata of a head whose entries are all one printable value under a name not
 * ending in `-bin` (almost every head), without `grpc-encoding` / `grpc-accept-encoding` (the
 * compression filter's, not the caller's): what `Metadata.fromHttp2Headers` and the removal of
 * those two make of it, its entries put in grpc-js's store directly rather than added, checked
 * and removed one by one. Anything else (a `-bin` name, several values, a name or value grpc-js
 * would refuse and log): undefined, for that path.
 */
export function plainMetadata(headers: http2.IncomingHttpHeaders, g: GrpcJs): Metadata | undefined {
  for (const k in headers) {
    if (k.charCodeAt(0) === 58 /* : */) continue;
    const v = headers[k];
    if (typeof v !== 'string' || k.endsWith('-bin') || !LEGAL_NAME.test(k) || !LEGAL_VALUE.test(v)) return undefined;
  }
  const md = new g.Metadata();
  const store = storeOf(md);
  if (store === undefined) return undefined;
  for (const k in headers) {
    if (k.charCodeAt(0) === 58 || k === 'grpc-encoding' || k === 'grpc-accept-encoding') continue;
    store.set(k, [headers[k] as string]);
  }
  return md;
}

/** A message with gRPC's 5-byte prefix (uncompressed, its length). */
export function frame(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(message.length + 5);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

/**
 * The status grpc-js makes up for a stream that closed without one of its own (subchannel-call.ts),
 * and its kind: `rst` its RST_STREAM code, `http` the response's HTTP status (0: none),
 * `dropped` its connection went away under it, `answered` a status came already (then a
 * NO_ERROR close needs none: undefined), `internalError` the client's own error that broke it.
 */
export function closedStatus(rst: number, http: number, dropped: boolean, answered: boolean, internalError: (Error & { code?: string }) | undefined): { code: number; details: string; kind: FailureKind } | undefined {
  let code = INTERNAL;
  let details: string;
  // A stream the server reset: Envoy's remote reset (UR); the connection gone under it: connection termination (UC).
  let kind: FailureKind = 'remote-reset';
  if (dropped && rst !== NGHTTP2_REFUSED_STREAM && !answered) {
    code = UNAVAILABLE;
    details = 'Connection dropped';
    kind = 'reset';
  } else
    switch (rst) {
      case NGHTTP2_NO_ERROR:
        if (answered) return undefined;
        // Ended without a status: not a reset of the server's, but no answer either.
        kind = 'reset';
        if (http !== 0 && http !== 200) {
          code = httpStatusCode(http);
          details = `Received HTTP status code ${http}`;
        } else details = `Received RST_STREAM with code ${rst} (Call ended without gRPC status)`;
        break;
      case NGHTTP2_REFUSED_STREAM:
        code = UNAVAILABLE;
        details = 'Stream refused by server';
        kind = 'refused-stream';
        break;
      case NGHTTP2_CANCEL:
        code = CANCELLED;
        details = 'Call cancelled';
        break;
      case NGHTTP2_ENHANCE_YOUR_CALM:
        code = RESOURCE_EXHAUSTED;
        details = 'Bandwidth exhausted or memory limit exceeded';
        break;
      case NGHTTP2_INADEQUATE_SECURITY:
        code = PERMISSION_DENIED;
        details = 'Protocol not secure enough';
        break;
      case NGHTTP2_INTERNAL_ERROR: {
        const e = internalError;
        if (e === undefined) details = `Received RST_STREAM with code ${rst} (Internal server error)`;
        else {
          // The client's own error broke the stream (its socket reset): connection termination.
          kind = 'reset';
          if (e.code === 'ECONNRESET' || e.code === 'ETIMEDOUT') {
            code = UNAVAILABLE;
            details = e.message;
          } else details = `Received RST_STREAM with code ${rst} triggered by internal client error: ${e.message}`;
        }
        break;
      }
      default:
        details = `Received RST_STREAM with code ${rst}`;
    }
  return { code, details, kind };
}
