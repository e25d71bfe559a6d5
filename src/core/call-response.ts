/**
 * The `meshlet:call:response` message of an {@link ExchangeState} whose response head is going to
 * its caller (see observe-response.ts). Built only when the channel has subscribers.
 *
 * @module
 */
import type { ExchangeState, HostRef } from './exchange-state.ts';
import type { Headers } from './handler.ts';
import { type CallResponseMessage, responseChannels } from './observe-response.ts';

/** Publishes `ex`'s response head; `localAddress`: the answering connection's local end, when known. */
export function publishCallResponse(ex: ExchangeState, status: number, headers: Headers, localAddress: string | undefined): void {
  // A mirrored copy or a side call is not the caller's call (no call:start, no call:end either).
  if (ex.mirror || ex.sideCall) return;
  const local = ex.localReply;
  const m: CallResponseMessage = {
    workload: ex.workload,
    call: ex,
    protocol: ex.protocol,
    status,
    grpcStatus: ex.protocol === 'grpc' ? grpcStatusOf(headers['grpc-status']) : -1,
    headers,
    local,
    latencyMs: ex.clock === undefined ? 0 : ex.clock.now() - ex.startedAt,
    endpoint: local === undefined ? (ex.host as HostRef | undefined)?.key : undefined,
    localAddress: local === undefined ? localAddress : undefined,
  };
  responseChannels.call.publish(m);
}

function grpcStatusOf(v: string | string[] | undefined): number {
  if (typeof v !== 'string' || v === '') return -1;
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 ? n : -1;
}
