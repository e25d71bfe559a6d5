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
  CA_PATH,
  CA_ROTATE_PATH,
  CERTIFICATES_PATH,
  ENDPOINTS_DELTA_FEATURE,
  HEALTH_PATH,
  METRICS_PATH,
  parseLabelQuery,
  REPORT_PATH,
  RESOURCES_PATH,
  STATUS_PATH,
  type StatusDocument,
  WATCH_PATH,
  WORKLOADS_PATH,
} from '../control-plane/protocol.ts';
import { issueCertificate, rotateCa, showCa } from './api-certificates.ts';
import { report } from './api-report.ts';
import { resourcesApi } from './api-resources.ts';
import { workloadsApi } from './api-workloads.ts';
import { ControlPlaneError } from './errors.ts';
import { EXPOSITION_CONTENT_TYPE } from './metrics/registry.ts';
import { authenticate, type Caller, readJson, remoteAddress, type RequestContext, requireReader, requireSameWorkload, sendError, sendJson, type WriterCaller } from './http.ts';
import { gate, requireWriter, under } from './viewer-gate.ts';
import { formatHostPort } from '../core/host-port.ts';

/** The status document of this replica. */
export function statusDocument(ctx: RequestContext): StatusDocument {
  // The registry's skipped records join the config store's (etcd keeps both).
  const health = ctx.store.health;
  const records = ctx.registry.skipped?.() ?? [];
  const source =
    records.length === 0
      ? health
      : {
          ...health,
          healthy: false,
          error: [health.error, `${records.length} registry record(s) skipped as invalid: ${records.map((v) => v.key).join(', ')}`].filter((e) => e !== undefined).join('; '),
          skipped: [...(health.skipped ?? []), ...records],
        };
  return ctx.board.document({
    server: ctx.serverId,
    startedAt: ctx.startedAt,
    configVersion: ctx.store.current().version,
    endpointsVersion: ctx.registry.version(),
    source,
    rejections: ctx.store.rejections(),
    findings: ctx.store.current().findings,
    registered: ctx.registry.list().length,
    ca: caSummary(ctx),
    meshConfig: ctx.meshConfig?.(),
  });
}

function caSummary(ctx: RequestContext): StatusDocument['ca'] {
  const info = ctx.ca.info();
  return { trustDomain: info.trustDomain, trustBundleVersion: info.trustBundleVersion, roots: info.roots.length, rotating: info.rotating, signerNotAfter: info.signer.notAfter };
}

/**
 * The labels a watch is filtered by. A workload token proves `app` (its service) and the labels of
 * its `labels` claim: those are used, whatever the query says. A query label that contradicts
 * them is refused (403); one the token does not name is ignored (it cannot widen what the
 * workload is sent) and reported back in `hello`. Admin and insecure callers are trusted with the query's labels.
 */
export function watchLabels(caller: WriterCaller, service: string, query: Readonly<Record<string, string>>): { labels: Record<string, string>; ignored: string[] } {
  if (caller?.role !== 'workload') return { labels: { ...query }, ignored: [] };
  const proven: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [k, v] of Object.entries(caller.labels)) proven[k] = v;
  proven.app = service;
  const ignored: string[] = [];
  for (const [k, v] of Object.entries(query)) {
    if (!Object.hasOwn(proven, k)) ignored.push(k);
    else if (proven[k] !== v) throw new ControlPlaneError('FORBIDDEN', `watch: label ${k}=${v} contradicts the token, which proves ${k}=${proven[k]}`);
  }
  return { labels: { ...proven }, ignored: ignored.sort() };
}

function watch(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, caller: WriterCaller, q: URLSearchParams): void {
  const own = caller?.role === 'workload' ? caller : undefined;
  const service = q.get('service') || own?.service;
  const namespace = q.get('namespace') || own?.namespace || 'default';
  if (service === undefined) throw new ControlPlaneError('INVALID', 'watch: the service query parameter is required');
  let asked: Record<string, string>;
  try {
    asked = parseLabelQuery(q.get('labels'));
  } catch (err) {
    throw new ControlPlaneError('INVALID', `watch: ${(err as Error).message}`);
  }
  requireSameWorkload(caller, service, namespace, 'watch');
  const { labels, ignored } = watchLabels(caller, service, asked);
  const features = new Set((q.get('features') ?? '').split(',').map((f) => f.trim()));
  ctx.hub.open(req, res, { service, namespace, labels }, formatHostPort(remoteAddress(req), req.socket.remotePort ?? 0), {
    delta: features.has(ENDPOINTS_DELTA_FEATURE),
    ignoredLabels: ignored,
  });
}

/** Room for an ACK's other fields around its reasons. */
const ACK_OVERHEAD_BYTES = 4096;

async function ack(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, caller: WriterCaller): Promise<void> {
  const { maxNackReasons, maxNackBytes } = ctx.limits;
  const b = await readJson(req, Math.min(ctx.maxBodyBytes, maxNackBytes * 2 + ACK_OVERHEAD_BYTES));
  if (typeof b.connection !== 'string' || typeof b.version !== 'string') throw new ControlPlaneError('INVALID', 'ack: connection and version must be strings');
  if (b.kind !== 'config' && b.kind !== 'endpoints') throw new ControlPlaneError('INVALID', 'ack: kind must be "config" or "endpoints"');
  if (b.status !== 'ACK' && b.status !== 'NACK') throw new ControlPlaneError('INVALID', 'ack: status must be "ACK" or "NACK"');
  if (b.reasons !== undefined && !(Array.isArray(b.reasons) && b.reasons.every((r) => typeof r === 'string'))) {
    throw new ControlPlaneError('INVALID', 'ack: reasons must be a list of strings');
  }
  const reasons = (b.reasons ?? []) as string[];
  if (reasons.length > maxNackReasons) {
    throw new ControlPlaneError('TOO_LARGE', `ack: ${reasons.length} reasons, more than the ${maxNackReasons} one NACK may carry (maxNackReasons); send the first ones`);
  }
  const bytes = reasons.reduce((n, r) => n + Buffer.byteLength(r), 0);
  if (bytes > maxNackBytes) {
    throw new ControlPlaneError('TOO_LARGE', `ack: the reasons are ${bytes} bytes, more than the ${maxNackBytes} one NACK may carry (maxNackBytes); shorten them`);
  }
  const owner = ctx.board.owner(b.connection);
  if (owner === undefined) throw new ControlPlaneError('NOT_FOUND', `ack: connection ${b.connection} is not connected to this server`);
  requireSameWorkload(caller, owner.service, owner.namespace, 'ack');
  ctx.board.ack(b as unknown as AckRequest);
  ctx.metrics.acked(b.connection, b.kind, b.version, b.status);
  sendJson(res, 200, { ok: true });
}

/**
 * `GET /metrics`: this replica's metrics in the Prometheus text format. No token, as istiod's
 * monitoring port (15014) asks none: the page holds counts by event type and resource kind, no
 * workload, address or config text. Served on the API port and on the monitoring port when one
 * is set (docs/control-plane.md).
 */
export function serveMetrics(req: IncomingMessage, res: ServerResponse, ctx: Pick<RequestContext, 'metrics'>): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('GET /metrics\n');
    return;
  }
  const text = ctx.metrics.expose();
  res.writeHead(200, { 'content-type': EXPOSITION_CONTENT_TYPE, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : text);
}

/** Authenticates a request and passes it through the viewer {@link gate} (every request but `/healthz` and `/metrics`). */
async function authorize(req: IncomingMessage, ctx: RequestContext, method: string, path: string): Promise<Caller> {
  const caller = await authenticate(req, ctx);
  gate(caller, method, path);
  return caller;
}

/** Authorizes a certificate request, counting a refusal as istiod's `citadel_server_authentication_failure_count`. */
async function authorizeCsr(req: IncomingMessage, ctx: RequestContext, method: string, path: string): Promise<WriterCaller> {
  ctx.metrics.csrReceived();
  try {
    return requireWriter(await authorize(req, ctx, method, path), 'a certificate');
  } catch (err) {
    ctx.metrics.csrFailed('authentication');
    throw err;
  }
}

async function handle(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://control-plane');
  const path = url.pathname;
  const method = req.method ?? 'GET';
  if (path === HEALTH_PATH) {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    return;
  }
  if (path === METRICS_PATH) return serveMetrics(req, res, ctx);
  if (path === CERTIFICATES_PATH && method === 'POST') return issueCertificate(req, res, ctx, await authorizeCsr(req, ctx, method, path));
  const caller = await authorize(req, ctx, method, path);
  if (path === STATUS_PATH && method === 'GET') {
    // The status names every workload, its peer address, NACK texts and refused changes (file paths).
    requireReader(caller, 'the status');
    return sendJson(res, 200, statusDocument(ctx));
  }
  if (path === WATCH_PATH && method === 'GET') return watch(req, res, ctx, requireWriter(caller, 'a watch'), url.searchParams);
  if (path === ACK_PATH && method === 'POST') return ack(req, res, ctx, requireWriter(caller, 'an ACK'));
  if (path === REPORT_PATH && method === 'POST') return report(req, res, ctx, requireWriter(caller, 'a report'));
  if (path === CA_PATH && method === 'GET') return showCa(res, ctx);
  if (path === CA_ROTATE_PATH && method === 'POST') return rotateCa(req, res, ctx, caller);
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
