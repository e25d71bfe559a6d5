/**
 * The text of the answers the mesh makes itself, as Envoy words them (`no healthy upstream`,
 * `upstream request timeout`, …): an HTTP adapter sends it as the body, a gRPC adapter as the
 * `grpc-message`. Protocol-neutral: no headers, no content types.
 *
 * @module
 */
import type { MeshletError } from './errors.ts';

/** Envoy's text for a mesh-made failure. */
export function localReplyText(e: MeshletError): string {
  switch (e.code) {
    case 'MESHLET_ERR_NO_HEALTHY_UPSTREAM':
      return 'no healthy upstream';
    case 'MESHLET_ERR_TIMEOUT':
      return 'upstream request timeout';
    case 'MESHLET_ERR_FAULT_ABORT':
      return 'fault filter abort';
    case 'MESHLET_ERR_NO_ROUTE':
    case 'MESHLET_ERR_REGISTRY_ONLY': // istiod's BlackHole route: a direct_response 502 without a body
      return '';
    case 'MESHLET_ERR_RATE_LIMITED':
      return e.body ?? 'local_rate_limited';
    case 'MESHLET_ERR_OVERLOADED':
      return 'upstream connect error or disconnect/reset before headers. reset reason: overflow';
    case 'MESHLET_ERR_UPSTREAM_CONNECT':
    case 'MESHLET_ERR_UPSTREAM_TLS':
    case 'MESHLET_ERR_UPSTREAM_RESET':
    case 'MESHLET_ERR_UPSTREAM_PROTOCOL':
    case 'MESHLET_ERR_RETRIES_EXHAUSTED':
      return e.message.slice(Math.max(0, e.message.indexOf('upstream connect error')));
    default:
      return e.message;
  }
}
