/**
 * The undici adapter's Exchange: renders what the mesh says as an Istio sidecar's HTTP answers
 * (render.ts) and keeps the raw header lists undici's handlers read (undici's `fetch` reads
 * `controller.rawHeaders`; the older handler API gets them as arguments).
 *
 * @module
 */
import type { BodySentListener } from '../../core/body.ts';
import type { Controller, Headers, LocalReplyKind } from '../../core/exchange.ts';
import { Exchange } from '../../core/exchange.ts';
import type { MeshletError } from '../../core/errors.ts';
import { httpToGrpc } from '../../core/grpc-status.ts';
import { localReplyText } from '../../core/local-reply.ts';
import { FLAGS_HEADER, FLAGS_HEADER_RAW, failureHeaders, grpcAnswerHeaders, OVERLOADED_HEADER, rawFrom } from './render.ts';
import { HOP_BY_HOP, namesUpgrade, removeHopByHop, UPGRADE_HOP_BY_HOP } from '../../core/hop-by-hop.ts';
import { SERVICE_TIME_HEADER, serviceTimeAt } from '../../core/upstream-service-time.ts';

/** undici's controllers carry the raw header lists as received. */
interface RawController extends Controller {
  rawHeaders?: unknown;
  rawTrailers?: unknown;
}

/** undici's handlers may hear when the response began (its clients call it before the head). */
interface StartedHandler {
  onResponseStarted?(): void;
}

const SERVICE_TIME_HEADER_RAW = Buffer.from(SERVICE_TIME_HEADER);

/** The header's raw values below 1 s, made once each. */
const SERVICE_TIMES_RAW: Buffer[] = [];

/** The raw value of `text` (shared for values below 1 s: raw header lists are read, never written). */
function rawServiceTime(text: string): Buffer {
  const ms = text.length <= 3 ? Number(text) : 1000;
  if (ms >= 1000) return Buffer.from(text);
  let b = SERVICE_TIMES_RAW[ms];
  if (b === undefined) {
    b = Buffer.from(text);
    SERVICE_TIMES_RAW[ms] = b;
  }
  return b;
}

/** An Exchange whose caller is an undici handler. */
export class UndiciExchange extends Exchange implements BodySentListener {
  /** Raw response headers as the caller's handler should read them (the same headers as the object). */
  rawHeaders: unknown = null;
  rawTrailers: unknown = null;
  /**
   * When the request was complete, on the mesh clock (Envoy's downstream_request_complete_time):
   * -1 while a streamed body is still being read; undefined when the mesh does not write
   * `x-envoy-upstream-service-time` (Istio's `proxyHeaders.envoyDebugHeaders` disabled).
   */
  requestCompleteAt: number | undefined = undefined;
  /** The mesh's overflow answers carry `x-envoy-overloaded` (false: Istio's `proxyHeaders.envoyDebugHeaders` disabled). */
  envoyHeaders = true;
  /** The `x-envoy-upstream-service-time` added to a head whose raw list lacks it (appended there). */
  #serviceTime: string | undefined = undefined;

  /** The streamed request body was read to its end. */
  bodySent(): void {
    if (this.requestCompleteAt === -1 && this.clock !== undefined) this.requestCompleteAt = this.clock.now();
  }

  /**
   * As Envoy's router (unless `suppress_envoy_headers`): the upstream's response gets
   * `x-envoy-upstream-service-time`, the ms from the end of the request (retries and backoffs
   * included) to this head — not when the upstream answered before the request's end.
   */
  protected override upstreamHead(headers: Headers): boolean {
    const complete = this.requestCompleteAt;
    if (complete === undefined || complete < 0 || this.clock === undefined) return false;
    // From the request's end, or from the end of a fault delay (the router sees the request after the fault filter).
    const v = serviceTimeAt(this.clock.now(), complete, this.routedAt) as string;
    const replaced = headers[SERVICE_TIME_HEADER] !== undefined;
    headers[SERVICE_TIME_HEADER] = v;
    if (!replaced) this.#serviceTime = v;
    return replaced;
  }

  /** An upgrade's answer (101) goes on with its raw headers: undici's WebSocket reads them from `controller.rawHeaders`. */
  override onRequestUpgrade(controller: Controller, statusCode: number, headers: Headers, socket: unknown): void {
    const raw = (controller as RawController).rawHeaders;
    // Envoy keeps a 101's connection and upgrade, and takes the rest of its hop-by-hop headers off (mutateResponseHeaders).
    if (headers['keep-alive'] !== undefined || headers['proxy-connection'] !== undefined || headers['transfer-encoding'] !== undefined) headers = removeHopByHop(headers, raw, UPGRADE_HOP_BY_HOP);
    this.rawHeaders = Array.isArray(raw) ? raw : rawFrom(headers);
    super.onRequestUpgrade(controller, statusCode, headers, socket);
  }

  protected override deliverHead(controller: Controller, statusCode: number, headers: Headers, statusMessage: string | undefined, changed: boolean): void {
    let raw = (controller as RawController).rawHeaders ?? null;
    // Only the mesh says what the mesh did: an upstream's own copies of its signals are dropped.
    let rebuild = changed;
    if (headers[FLAGS_HEADER] !== undefined || headers[OVERLOADED_HEADER] !== undefined) {
      delete headers[FLAGS_HEADER];
      delete headers[OVERLOADED_HEADER];
      rebuild = true;
    }
    // The upstream connection's own headers are not the app's: Envoy's connection manager removes
    // them from every response (mutateResponseHeaders; an upgrade's 101 does not come here) — but
    // an upgrade request's answer that is an upgrade by its headers (`connection` naming upgrade,
    // and `upgrade`), whatever its status, keeps those two (`isUpgrade(request) && isUpgrade(response)`).
    if (headers.connection !== undefined || headers['keep-alive'] !== undefined || headers['transfer-encoding'] !== undefined || headers['proxy-connection'] !== undefined || headers.upgrade !== undefined) {
      headers = removeHopByHop(headers, raw, headers.upgrade !== undefined && typeof (this.options as { upgrade?: unknown } | undefined)?.upgrade === 'string' && namesUpgrade(headers.connection) ? UPGRADE_HOP_BY_HOP : HOP_BY_HOP);
    }
    if (this.flags !== '') headers[FLAGS_HEADER] = this.flags;
    // The mesh's own headers go at the end of the upstream's raw list, unless it is rebuilt from the object.
    const time = this.#serviceTime;
    if (!rebuild && Array.isArray(raw) && (this.flags !== '' || time !== undefined)) {
      // The upstream's list is this response's own (undici's parser makes one per response): appended to in place.
      if (time !== undefined) raw.push(SERVICE_TIME_HEADER_RAW, rawServiceTime(time));
      if (this.flags !== '') raw.push(FLAGS_HEADER_RAW, Buffer.from(this.flags));
    } else if (rebuild || this.flags !== '' || time !== undefined) raw = rawFrom(headers);
    // Clients that read raw headers (undici's fetch) must see the same headers as the object.
    this.rawHeaders = raw;
    // undici's clients tell a handler the response began before its head (fetch takes resource
    // timing's responseStart from it); only the attempt that answers the caller says so here.
    (this._handler as StartedHandler).onResponseStarted?.();
    this._handler.onResponseStart?.(this, statusCode, headers, statusMessage);
  }

  protected override deliverEnd(controller: Controller): void {
    this.rawTrailers = (controller as RawController).rawTrailers ?? null;
  }

  /**
   * A sidecar's answer for a mesh-made failure: an HTTP status with Envoy's text, or — for a gRPC
   * call — a trailers-only gRPC answer with the status Envoy gives. A fault abort with a
   * `grpcStatus` only is HTTP 200 (Envoy's fault filter), so a plain HTTP request gets 200 with
   * the text, as Envoy's local reply to a request that is not gRPC.
   */
  protected override renderFailure(error: MeshletError): boolean {
    const text = localReplyText(error);
    const grpcOnly = error.httpStatus === undefined && error.grpcStatus !== undefined && error.code === 'MESHLET_ERR_FAULT_ABORT';
    if (this.protocol === 'grpc') {
      if (error.httpStatus === undefined && error.grpcStatus === undefined) return false;
      const grpc = error.grpcStatus ?? httpToGrpc(error.httpStatus as number);
      this.grpcStatus = grpc;
      this.reply('failure', 200, grpcAnswerHeaders(grpc, text, this.flags, this.envoyHeaders), undefined);
      return true;
    }
    const status = grpcOnly ? 200 : error.httpStatus;
    if (status === undefined) return false;
    this.reply('failure', status, failureHeaders(this.flags, this.envoyHeaders), Buffer.from(text));
    return true;
  }

  protected override localHead(kind: LocalReplyKind, _status: number, headers: Headers, body: Buffer | undefined): void {
    if (this.flags !== '' && headers[FLAGS_HEADER] === undefined) headers[FLAGS_HEADER] = this.flags;
    // Envoy's direct_response sends its body as text/plain.
    if (kind === 'direct' && body !== undefined && headers['content-type'] === undefined) headers['content-type'] = 'text/plain';
    if (body !== undefined && headers['content-length'] === undefined) headers['content-length'] = String(body.length);
    this.rawHeaders = rawFrom(headers);
    this.rawTrailers = null;
  }

  protected override released(): void {
    this.rawHeaders = null;
    this.rawTrailers = null;
  }
}
