/**
 * How the undici adapter renders what the mesh says, as an Istio sidecar would on the wire:
 * Envoy's response flags in `x-meshlet-response-flags`, `x-envoy-overloaded` on overflow,
 * `text/plain` bodies with Envoy's texts, gRPC calls answered trailers-only (HTTP 200 with
 * `grpc-status` and `grpc-message`, as Envoy's local replies to gRPC requests are), and the raw
 * header lists undici's handlers read.
 *
 * @module
 */
import type { Headers } from '../../core/handler.ts';

/**
 * The header that carries Envoy response flags to callers.
 * @category Mesh
 */
export const FLAGS_HEADER = 'x-meshlet-response-flags';

/** Envoy's header on an overflow answer (UO). Like the flags header, only the mesh sets it. */
export const OVERLOADED_HEADER = 'x-envoy-overloaded';

/** {@link FLAGS_HEADER} as bytes, for appending to a raw header list. */
export const FLAGS_HEADER_RAW = Buffer.from(FLAGS_HEADER);

/** Headers as undici's raw list (name, value, name, value…), for handlers that read `rawHeaders`. */
export function rawFrom(headers: Headers): Buffer[] {
  const raw: Buffer[] = [];
  for (const k in headers) {
    const v = headers[k];
    if (v === undefined) continue;
    if (typeof v === 'string') raw.push(Buffer.from(k), Buffer.from(v, 'latin1'));
    else for (const x of v) raw.push(Buffer.from(k), Buffer.from(x, 'latin1'));
  }
  return raw;
}

/**
 * Headers of a mesh-made failure response: `text/plain`, the flags, and `x-envoy-overloaded` for
 * UO unless `envoyHeaders` is false (Istio's `proxyHeaders.envoyDebugHeaders` disabled: Envoy's
 * router leaves it out of its local replies under `suppress_envoy_headers`).
 */
export function failureHeaders(flags: string, envoyHeaders = true): Headers {
  const h: Headers = Object.create(null) as Headers;
  h['content-type'] = 'text/plain';
  if (flags !== '') {
    h[FLAGS_HEADER] = flags;
    if (envoyHeaders && flags.split(',').includes('UO')) h[OVERLOADED_HEADER] = 'true';
  }
  return h;
}

/** Headers of a trailers-only gRPC answer (Envoy's local reply to a gRPC request, or a gRPC fault abort); `envoyHeaders` as {@link failureHeaders}. */
export function grpcAnswerHeaders(grpcStatus: number, message: string, flags: string, envoyHeaders = true): Headers {
  const h: Headers = Object.create(null) as Headers;
  h['content-type'] = 'application/grpc';
  h['grpc-status'] = String(grpcStatus);
  // grpc-message is percent-encoded (gRPC's HTTP/2 spec): keep it to printable ASCII.
  if (message !== '') h['grpc-message'] = encodeURIComponent(message).replace(/%20/g, ' ');
  if (flags !== '') {
    h[FLAGS_HEADER] = flags;
    if (envoyHeaders && flags.split(',').includes('UO')) h[OVERLOADED_HEADER] = 'true';
  }
  return h;
}
