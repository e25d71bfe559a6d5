/**
 * The request router of the control-plane server: health, status, watch, ack, and the
 * workloads and resources APIs, with authentication in front of everything but `/healthz`.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  ACK_PATH,
  type AckRequest,
  HEALTH_PATH,
  parseLabelQuery,
  RESOURCES_PATH,
  STATUS_PATH,
  type StatusDocument,
  WATCH_PATH,
  WORKLOADS_PATH,
} from '../control-plane/protocol.ts';
import { resourcesApi } from './api-resources.ts';
import { workloadsApi } from './api-workloads.ts';
import { ControlPlaneError } from './errors.ts';
import { authenticate, type Caller, readJson, remoteAddress, type RequestContext, requireSameWorkload, sendError, sendJson } from './http.ts';

/** The status document of this replica. */
export function statusDocument(ctx: RequestContext): StatusDocument {
  return ctx.board.document({
    server: ctx.serverId,
    startedAt: ctx.startedAt,
    configVersion: ctx.store.current().version,
    endpointsVersion: ctx.registry.version(),
    source: ctx.store.health,
    rejections: ctx.store.rejections(),
    findings: ctx.store.current().findings,
    registered: ctx.registry.list().length,
  });
}

function watch(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, caller: Caller, q: URLSearchParams): void {
  const own = caller?.role === 'workload' ? caller : undefined;
  const service = q.get('service') || own?.service;
  const namespace = q.get('namespace') || own?.namespace || 'default';
  if (service === undefined) throw new ControlPlaneError('INVALID', 'watch: the service query parameter is required');
  let labels: Record<string, string>;
  try {
    labels = parseLabelQuery(q.get('labels'));
  } catch (err) {
    throw new ControlPlaneError('INVALID', `watch: ${(err as Error).message}`);
  }
  requireSameWorkload(caller, service, namespace, 'watch');
  ctx.hub.open(req, res, { service, namespace, labels }, `${remoteAddress(req)}:${req.socket.remotePort ?? 0}`);
}

async function ack(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, caller: Caller): Promise<void> {
  const b = await readJson(req, ctx.maxBodyBytes);
  if (typeof b.connection !== 'string' || typeof b.version !== 'string') throw new ControlPlaneError('INVALID', 'ack: connection and version must be strings');
  if (b.kind !== 'config' && b.kind !== 'endpoints') throw new ControlPlaneError('INVALID', 'ack: kind must be "config" or "endpoints"');
  if (b.status !== 'ACK' && b.status !== 'NACK') throw new ControlPlaneError('INVALID', 'ack: status must be "ACK" or "NACK"');
  if (b.reasons !== undefined && !(Array.isArray(b.reasons) && b.reasons.every((r) => typeof r === 'string'))) {
    throw new ControlPlaneError('INVALID', 'ack: reasons must be a list of strings');
  }
  const owner = ctx.board.owner(b.connection);
  if (owner === undefined) throw new ControlPlaneError('NOT_FOUND', `ack: connection ${b.connection} is not connected to this server`);
  requireSameWorkload(caller, owner.service, owner.namespace, 'ack');
  ctx.board.ack(b as unknown as AckRequest);
  sendJson(res, 200, { ok: true });
}

function under(path: string, prefix: string): string[] | undefined {
  if (path === prefix || path === `${prefix}/`) return [];
  if (!path.startsWith(`${prefix}/`)) return undefined;
  return path
    .slice(prefix.length + 1)
    .split('/')
    .filter((s) => s !== '')
    .map((s) => decodeURIComponent(s));
}

async function handle(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://control-plane');
  const path = url.pathname;
  const method = req.method ?? 'GET';
  if (path === HEALTH_PATH) {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    return;
  }
  const caller = await authenticate(req, ctx);
  if (path === STATUS_PATH && method === 'GET') return sendJson(res, 200, statusDocument(ctx));
  if (path === WATCH_PATH && method === 'GET') return watch(req, res, ctx, caller, url.searchParams);
  if (path === ACK_PATH && method === 'POST') return ack(req, res, ctx, caller);
  const workloads = under(path, WORKLOADS_PATH);
  if (workloads !== undefined) return workloadsApi(req, res, ctx, caller, workloads);
  const resources = under(path, RESOURCES_PATH);
  if (resources !== undefined) return resourcesApi(req, res, ctx, caller, resources, url.searchParams);
  throw new ControlPlaneError('NOT_FOUND', `no such endpoint: ${method} ${path}`);
}

/** The server's request listener. */
export function createRequestHandler(ctx: RequestContext): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    handle(req, res, ctx).catch((err: unknown) => {
      if (err instanceof URIError) err = new ControlPlaneError('INVALID', 'malformed path');
      try {
        sendError(res, err, ctx.logger);
      } catch (e) {
        ctx.logger.warn(`answering an error failed: ${(e as Error).message}`);
        res.destroy();
      }
    });
  };
}
