/**
 * Istio's metadata exchange on the server side (the proxy's `peer_metadata` filter, inbound): a
 * caller in the mesh sends its workload metadata in `x-envoy-peer-metadata` (and its node ID in
 * `x-envoy-peer-metadata-id`); the server takes both off the request — the app never sees them —
 * keeps them for its metrics (`source_*` labels), and answers with its own, one header for each
 * one received, so the caller's metrics can name this workload (`destination_app`, …). A caller
 * that sent none gets none.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Headers } from '../../core/handler.ts';
import { PEER_ID_HEADER, PEER_METADATA_HEADER } from '../../telemetry/metrics/peer-metadata.ts';
import { setRawHeaders } from './headers.ts';

/** The exchange headers of one side. */
export interface PeerHeaders {
  /** `x-envoy-peer-metadata-id` ('' when not sent). */
  readonly id: string;
  /** `x-envoy-peer-metadata` ('' when not sent). */
  readonly value: string;
}

function one(v: string | string[] | undefined): string {
  return typeof v === 'string' ? v : (v?.[0] ?? '');
}

/**
 * Takes the caller's exchange headers off the request (`headers`, the mesh's view, and what the
 * app reads: `req.headers`, `req.rawHeaders`), sets this workload's on the response, and returns
 * the caller's — or undefined when it sent none (nothing is touched then).
 */
export function exchangePeerMetadata(own: PeerHeaders, headers: Headers, req: IncomingMessage, res: ServerResponse): PeerHeaders | undefined {
  const id = headers[PEER_ID_HEADER];
  const value = headers[PEER_METADATA_HEADER];
  if (id === undefined && value === undefined) return undefined;
  delete headers[PEER_ID_HEADER];
  delete headers[PEER_METADATA_HEADER];
  if (req.headers !== headers) {
    delete req.headers[PEER_ID_HEADER];
    delete req.headers[PEER_METADATA_HEADER];
  }
  const raw = req.rawHeaders;
  const kept: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = (raw[i] as string).toLowerCase();
    if (k === PEER_ID_HEADER || k === PEER_METADATA_HEADER) continue;
    kept.push(raw[i] as string, raw[i + 1] as string);
  }
  // HTTP/2's compatibility request has rawHeaders through a getter only: assigning them threw (and the exception took the process down).
  setRawHeaders(req, kept);
  if (!res.headersSent) {
    if (id !== undefined) res.setHeader(PEER_ID_HEADER, own.id);
    if (value !== undefined) res.setHeader(PEER_METADATA_HEADER, own.value);
  }
  return { id: one(id), value: one(value) };
}
