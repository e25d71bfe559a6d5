/**
 * The responses the mesh makes itself: Envoy's headers and body text for each mesh-made
 * failure, and the raw header list undici's handlers read.
 *
 * @module
 */
import type { MeshletError } from './errors.ts';
import type { Headers } from './handler.ts';

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

/** Headers of a mesh-made failure response (flags, and `x-envoy-overloaded` for UO). */
export function localHeaders(flags: string): Headers {
  const h: Headers = { 'content-type': 'text/plain' };
  if (flags !== '') {
    h[FLAGS_HEADER] = flags;
    if (flags.split(',').includes('UO')) h[OVERLOADED_HEADER] = 'true';
  }
  return h;
}

/** The body Envoy sends for a mesh-made failure. */
export function bodyFor(e: MeshletError): string {
  switch (e.code) {
    case 'MESHLET_ERR_NO_HEALTHY_UPSTREAM':
      return 'no healthy upstream';
    case 'MESHLET_ERR_TIMEOUT':
      return 'upstream request timeout';
    case 'MESHLET_ERR_FAULT_ABORT':
      return 'fault filter abort';
    case 'MESHLET_ERR_NO_ROUTE':
      return '';
    case 'MESHLET_ERR_OVERLOADED':
      return 'upstream connect error or disconnect/reset before headers. reset reason: overflow';
    case 'MESHLET_ERR_UPSTREAM_CONNECT':
    case 'MESHLET_ERR_UPSTREAM_RESET':
    case 'MESHLET_ERR_UPSTREAM_PROTOCOL':
    case 'MESHLET_ERR_RETRIES_EXHAUSTED':
      return e.message.slice(Math.max(0, e.message.indexOf('upstream connect error')));
    default:
      return e.message;
  }
}
