/**
 * Response heads: `meshlet:call:response` when an outbound call's response head reaches its
 * caller (the attempt that answered, or a reply the mesh made itself: a direct response, a
 * redirect, a rendered failure), and `meshlet:inbound:response` when a server adapter of the mesh
 * writes a response head (the app's, or a denial's). Linkerd's tap shows this moment as its `rsp`
 * event (`:status`, `latency` to the head). Published only while someone subscribes, as the
 * channels of `observe.ts`: nothing is built otherwise.
 *
 * @module
 */
import { channel } from 'node:diagnostics_channel';
import type { Protocol } from './classify.ts';
import type { WorkloadIdentity } from './observe.ts';

/** `meshlet:call:response`: an outbound call's response head, as the caller gets it. */
export interface CallResponseMessage {
  readonly workload: WorkloadIdentity | undefined;
  /** The call (the Exchange of `call:start` and `call:end`). */
  readonly call: object;
  readonly protocol: Protocol;
  /** The status (200 for gRPC). */
  readonly status: number;
  /** The gRPC status of a trailers-only answer (the head carries it), else -1. */
  readonly grpcStatus: number;
  /** The head's headers (lower-cased names; read them, never change them). */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** A reply the mesh made itself (`direct`, `redirect`, `failure`), undefined for an upstream's answer. */
  readonly local: string | undefined;
  /** Since the call entered the mesh, on the mesh's clock. */
  readonly latencyMs: number;
  /** The endpoint that answered (`address:port`), when an upstream did. */
  readonly endpoint: string | undefined;
  /** The local end (`address:port`) of the connection the answering attempt used, when the transport knows it (the gRPC transport's connections). */
  readonly localAddress: string | undefined;
}

/** `meshlet:inbound:response`: a server adapter of the mesh wrote a response head. */
export interface InboundResponseMessage {
  readonly workload: WorkloadIdentity;
  /** The request (the object of `inbound:start` and `inbound:end`). */
  readonly request: object;
  readonly protocol: Protocol;
  /** The status written (200 for gRPC). */
  readonly status: number;
  /** The gRPC status of a trailers-only answer, else -1. */
  readonly grpcStatus: number;
  /** Names of the headers written, lower-cased (never their values). */
  readonly headerNames: readonly string[];
  /** Since the request reached the adapter, on the mesh's clock. */
  readonly latencyMs: number;
}

/** The channels. */
export const responseChannels = Object.freeze({
  call: channel('meshlet:call:response'),
  inbound: channel('meshlet:inbound:response'),
});
