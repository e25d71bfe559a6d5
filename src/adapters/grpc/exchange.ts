/**
 * The gRPC adapter's Exchange: what the mesh says reaches a grpc-js caller as gRPC statuses,
 * never as HTTP. A mesh-made failure is answered trailers-only with the status Envoy gives
 * (`UNAVAILABLE` for no healthy upstream and overflow, `DEADLINE_EXCEEDED` for a timeout, the
 * configured code of a fault abort — or its HTTP status mapped as gRPC maps it —, …), Envoy's
 * text as `grpc-message` and the response flags in `x-meshlet-response-flags`.
 *
 * @module
 */
import type { Metadata } from '@grpc/grpc-js';
import { MeshletError } from '../../core/errors.ts';
import { Exchange, type Controller, type Headers, type LocalReplyKind } from '../../core/exchange.ts';
import { GRPC_STATUS, httpToGrpc } from '../../core/grpc-status.ts';
import { responseChannels } from '../../core/observe-response.ts';
import { localReplyText } from '../../core/local-reply.ts';
import { OVERLOADED_HEADER } from '../undici/render.ts';
import { SERVICE_TIME_HEADER, serviceTimeAt } from '../../core/upstream-service-time.ts';
import { MessageBody, PREFIX_BYTES } from './body.ts';
import { encodeGrpcMessage, FLAGS_KEY } from './metadata.ts';
import { storeOf } from './wire-metadata.ts';

/** The gRPC status a sidecar answers a mesh-made failure with. */
export function grpcCodeOf(e: MeshletError): number {
  if (e.grpcStatus !== undefined) return e.grpcStatus;
  if (e.httpStatus !== undefined) return httpToGrpc(e.httpStatus);
  return GRPC_STATUS.UNAVAILABLE;
}

/**
 * The status a grpc-js caller gets for a call that failed with `err`: a mesh-made failure's
 * code, the status grpc-js reported (`grpcCode`: a reset, a refused connection, the caller's own
 * cancel), CANCELLED for an abort, else UNKNOWN.
 */
export function grpcStatusOfError(err: Error): number {
  if (err instanceof MeshletError) return grpcCodeOf(err);
  const code = (err as { grpcCode?: unknown }).grpcCode;
  if (typeof code === 'number') return code;
  return err.name === 'AbortError' ? GRPC_STATUS.CANCELLED : GRPC_STATUS.UNKNOWN;
}

/**
 * The local end of the connection each call's answering attempt used, kept only while
 * `meshlet:call:response` has subscribers (no field on every call for it).
 */
const answeredOn = new WeakMap<object, string>();

/** Notes the local end (`address:port`) of the connection an attempt of `ex` got its answer on (only while `meshlet:call:response` has subscribers). */
export function noteAnsweredOn(ex: object, localAddress: string | undefined): void {
  if (localAddress !== undefined && responseChannels.call.hasSubscribers) answeredOn.set(ex, localAddress);
}

/** An Exchange whose caller is a grpc-js call. */
export class GrpcExchange extends Exchange {
  /** Set when the mesh answers itself with a direct response or a redirect (not a gRPC answer). */
  localKind: LocalReplyKind | undefined = undefined;
  /** Endpoints' heads get `x-envoy-upstream-service-time`, the mesh's overflow answers `x-envoy-overloaded` (false: Istio's `proxyHeaders.envoyDebugHeaders` disabled). */
  envoyHeaders = true;
  /** Response messages delivered to the caller (`call:end`'s `responseMessages`). */
  responseMessages = 0;
  /** The caller's `grpc.max_receive_message_length` (-1: any): a response message declared larger is refused at its length prefix. */
  receiveLimit = -1;
  /** The caller's call: such a message cancels it (RESOURCE_EXHAUSTED), as grpc-js's decoder fails its calls. */
  caller: { cancelWithStatus(code: number, details: string): void } | undefined = undefined;
  /** The caller's metadata the request headers were made from (an attempt's metadata starts from it). */
  callerMetadata: Metadata | undefined = undefined;
  /** The request headers as they were made from it, before the pipeline changed any. */
  callerHeaders: Headers | undefined = undefined;
  /** The last head or trailers an attempt got, and the grpc-js Metadata they were made from. */
  #answer: Headers | undefined = undefined;
  #answerMetadata: Metadata | undefined = undefined;
  /** The head delivered to the caller is the attempt's, unchanged: its Metadata. */
  #headMetadata: Metadata | undefined = undefined;
  /** The `x-envoy-upstream-service-time` added to the head (its Metadata gets it too when the caller is handed that). */
  #serviceTime: string | undefined = undefined;

  protected override answeredOn(): string | undefined {
    return answeredOn.get(this);
  }

  /** An attempt got a head or trailers (`headers`), made from `metadata`. */
  upstreamAnswer(headers: Headers, metadata: Metadata): void {
    this.#answer = headers;
    this.#answerMetadata = metadata;
  }

  /**
   * The Metadata an attempt got for `headers` (the head just delivered, or trailers), when the
   * caller can have it as it is: the same object, and for a head, no header operation or
   * subscriber changed it on the way (their changes are in `headers`, not in the Metadata).
   * Undefined otherwise: the caller's Metadata is made from `headers`.
   */
  answerMetadata(headers: Headers, head: boolean): Metadata | undefined {
    if (headers !== this.#answer) return undefined;
    const md = head ? this.#headMetadata : this.#answerMetadata;
    this.#answer = undefined;
    this.#answerMetadata = undefined;
    this.#headMetadata = undefined;
    return md;
  }

  /**
   * A response message: the response size counts it as it came on the wire, with its 5-byte gRPC
   * prefix, and it is one of the call's response messages (a direct response's body is not messages).
   */
  override onResponseData(controller: Controller, chunk: Buffer): void {
    if (!this.done && this.localKind === undefined) {
      this.responseBytes += PREFIX_BYTES;
      this.responseMessages++;
    }
    super.onResponseData(controller, chunk);
  }

  /**
   * As Envoy's router (router.cc `Filter::onUpstreamHeaders`, unless `suppress_envoy_headers`):
   * the endpoint's head — response metadata, or a trailers-only answer — gets
   * `x-envoy-upstream-service-time`, the ms from the caller's half-close (retries and backoffs
   * included) to it; none when the head came before the half-close (a stream still sending).
   */
  protected override upstreamHead(headers: Headers): boolean {
    const clock = this.clock;
    const body = this.body;
    if (!this.envoyHeaders || clock === undefined || !(body instanceof MessageBody)) return false;
    const v = serviceTimeAt(clock.now(), body.endedAt, this.routedAt);
    if (v === undefined) return false;
    const replaced = headers[SERVICE_TIME_HEADER] !== undefined;
    headers[SERVICE_TIME_HEADER] = v;
    if (!replaced) this.#serviceTime = v;
    return replaced;
  }

  protected override deliverHead(_controller: Controller, statusCode: number, headers: Headers, statusMessage: string | undefined, changed: boolean): void {
    // Only the mesh says what the mesh did: an upstream's own copies of its signals are dropped.
    delete headers[FLAGS_KEY];
    delete headers[OVERLOADED_HEADER];
    if (this.flags !== '') headers[FLAGS_KEY] = this.flags;
    const md = !changed && headers === this.#answer ? this.#answerMetadata : undefined;
    const time = this.#serviceTime;
    if (md !== undefined && time !== undefined) {
      // The endpoint's Metadata goes to the caller as it is: the header the mesh added joins it
      // (in grpc-js's store directly: the name and value are the mesh's, valid already).
      const store = storeOf(md);
      if (store !== undefined) store.set(SERVICE_TIME_HEADER, [time]);
      else md.set(SERVICE_TIME_HEADER, time);
    }
    this.#headMetadata = md;
    this._handler.onResponseStart?.(this, statusCode, headers, statusMessage);
  }

  /**
   * A failure with no status from the server (a reset or timeout after the response metadata, a
   * cancel): the call ends with the status the caller gets, so `call:end` (and
   * `grpc_response_status`) report it.
   */
  override onResponseError(controller: Controller, error: Error): void {
    if (!this.done && this.grpcStatus === -1) this.grpcStatus = grpcStatusOfError(error);
    super.onResponseError(controller, error);
  }

  override fail(error: MeshletError): void {
    if (!this.done && this.grpcStatus === -1) this.grpcStatus = this.aborted ? grpcStatusOfError(this.reason ?? error) : grpcCodeOf(error);
    super.fail(error);
  }

  protected override renderFailure(error: MeshletError): boolean {
    const code = grpcCodeOf(error);
    this.grpcStatus = code;
    const h = Object.create(null) as Headers;
    h['content-type'] = 'application/grpc';
    h['grpc-status'] = String(code);
    const text = localReplyText(error);
    if (text !== '') h['grpc-message'] = encodeGrpcMessage(text);
    this.reply('failure', 200, h, undefined);
    return true;
  }

  protected override localHead(kind: LocalReplyKind, _status: number, headers: Headers, _body: Buffer | undefined): void {
    if (kind !== 'failure') this.localKind = kind;
    delete headers[FLAGS_KEY];
    if (this.flags !== '') {
      headers[FLAGS_KEY] = this.flags;
      // Envoy's overflow local reply says so in a header (for gRPC, the trailers-only answer's).
      if (kind === 'failure' && this.envoyHeaders && this.flags.split(',').includes('UO')) headers[OVERLOADED_HEADER] = 'true';
    }
  }
}
