/**
 * The status grpc-js sent on a call itself, below the server's interceptors.
 *
 * grpc-js answers some calls from its base call without going through the interceptors'
 * `sendStatus`: a `grpc-timeout` it cannot parse (INTERNAL), a request message compressed with an
 * encoding it does not know (UNIMPLEMENTED), over `grpc.max_receive_message_length`
 * (RESOURCE_EXHAUSTED), one it cannot decompress, its deadline passing (DEADLINE_EXCEEDED)
 * (server-interceptors.js, BaseServerInterceptingCall). Its interceptors only hear that the call
 * ended (`onCancel`, which grpc-js also sends after every status). Behind a sidecar that answer
 * is the app's: Envoy's inbound listener records its `grpc-status` (`%GRPC_STATUS%`, Istio's
 * `grpc_response_status`, response code 200, no flag), not a downstream disconnect. The answer is
 * read here from the call's HTTP/2 stream — Node's `sentTrailers`, or `sentHeaders` for a
 * trailers-only answer — reached through grpc-js's chain of calls (`nextCall` of each
 * interceptor's call, `stream` of the base call; 1.14, pinned by test/grpc/server-status-by-grpc-js.test.ts).
 *
 * @module
 */
import type { PartialStatusObject } from '@grpc/grpc-js/build/src/call-interface.js';
import type { OutgoingHttpHeaders } from 'node:http2';
import { decodeGrpcMessage } from './metadata.ts';

/** The HTTP/2 stream of a server call, as this module reads it. */
interface CallStream {
  readonly sentHeaders?: OutgoingHttpHeaders;
  readonly sentTrailers?: OutgoingHttpHeaders;
}

/** The parts of grpc-js's server calls walked here (private in 1.14). */
interface CallLink {
  readonly nextCall?: unknown;
  readonly stream?: CallStream;
}

/** Interceptors a call goes through at most, walking to the base call. */
const MAX_LINKS = 64;

/** The HTTP/2 stream under `call` (the call an interceptor was given), or undefined when it cannot be reached (another grpc-js). */
function streamOf(call: unknown): CallStream | undefined {
  let c = call;
  for (let i = 0; i < MAX_LINKS && typeof c === 'object' && c !== null; i++) {
    const link = c as CallLink;
    const stream = link.stream;
    if (typeof stream === 'object' && stream !== null) return stream;
    c = link.nextCall;
  }
  return undefined;
}

/**
 * The status sent on the stream of `call`, or undefined when none was (the caller went away
 * first) or the stream cannot be reached.
 */
export function sentStatusOf(call: unknown): PartialStatusObject | undefined {
  const stream = streamOf(call);
  return stream === undefined ? undefined : (statusOf(stream.sentTrailers) ?? statusOf(stream.sentHeaders));
}

function statusOf(h: OutgoingHttpHeaders | undefined): PartialStatusObject | undefined {
  const v = h?.['grpc-status'];
  const code = typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,10}$/.test(v) ? Number(v) : undefined;
  if (code === undefined) return undefined;
  const m = h?.['grpc-message'];
  return { code, details: decodeGrpcMessage(typeof m === 'string' ? m : undefined), metadata: null };
}

/** The part of a server call's HTTP/2 stream {@link overwriteServerOnStream} changes. */
interface RespondingStream {
  respond?: (headers: OutgoingHttpHeaders, options?: unknown) => void;
}

/**
 * Makes the response head of `call` carry `server: value` (Istio's `proxyHeaders.server.value`,
 * Envoy's `server_header_transformation: OVERWRITE`) whoever writes it — the handler's answer
 * through the interceptors, or grpc-js's own from its base call below them (a message over
 * `grpc.max_receive_message_length`, one it cannot deserialize or decompress, its deadline): the
 * HTTP/2 stream's `respond`, once. False when the stream cannot be reached (another grpc-js).
 */
export function overwriteServerOnStream(call: unknown, value: string): boolean {
  const stream = streamOf(call) as (CallStream & RespondingStream) | undefined;
  const respond = stream?.respond;
  if (stream === undefined || typeof respond !== 'function') return false;
  stream.respond = function (this: unknown, headers: OutgoingHttpHeaders, options?: unknown): void {
    stream.respond = respond;
    const h: OutgoingHttpHeaders = {};
    for (const k of Object.keys(headers)) if (k.toLowerCase() !== 'server') h[k] = headers[k];
    h.server = value;
    respond.call(this, h, options);
  };
  return true;
}
