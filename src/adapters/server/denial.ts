/**
 * The mesh's own answers on Node's response objects: a denial as Envoy writes its local replies
 * (text, or a trailers-only gRPC status), and the refusals made when admission itself fails.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { hasBody } from '../../core/request-body.ts';
import type { Denial } from '../../inbound/pipeline.ts';
import { closeConnection } from './close-connection.ts';
import { finishRequestHopByHop } from './hop-by-hop.ts';

/** Writes a denial the way Envoy answers: text, or a trailers-only gRPC status for a gRPC caller. */
export function writeDenial(res: ServerResponse, denial: Denial, grpc: boolean): void {
  // The request is answered here, not handed on: its headers lose what stripRequestHopByHop left them.
  finishRequestHopByHop(res.req);
  if (denial.closeConnection === true) {
    closeConnection(res.socket ?? res);
    res.destroy();
    return;
  }
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const extra = denial.headers ?? {};
  if (grpc) {
    res.writeHead(200, { ...extra, 'content-type': 'application/grpc', 'grpc-status': String(denial.grpcStatus), 'grpc-message': encodeURIComponent(denial.body) });
    res.end();
    return;
  }
  const body = Buffer.from(denial.body);
  const req = (res as { req?: IncomingMessage }).req;
  const close = req !== undefined && answeredBeforeBody(req) ? CLOSE : undefined;
  // Envoy's local reply: the filter's headers first, then text/plain only where they set no content-type.
  res.writeHead(denial.status, { 'content-type': 'text/plain', ...extra, ...close, 'content-length': String(body.length) });
  res.end(body);
}

const CLOSE = { connection: 'close' } as const;

/**
 * True for an HTTP/1 request refused before its body is in: Envoy's connection manager then
 * answers with `Connection: close` and closes the connection rather than wait for (and read) the
 * rest of the upload — node:http would read it all to keep the connection.
 */
export function answeredBeforeBody(req: IncomingMessage): boolean {
  return req.httpVersionMajor === 1 && !req.complete && hasBody(req.headers);
}

/** The refusal when admission itself failed: fail closed. */
export function internalError(err: unknown): Denial {
  return { status: 500, grpcStatus: 13, body: 'internal error', reason: String(err), phase: 'path' };
}

/** The refusal of a request routed on a path other than the one the mesh would judge. */
export function notNormalized(reason: string): Denial {
  return { status: 400, grpcStatus: 13, body: 'Bad Request', reason, phase: 'path' };
}
