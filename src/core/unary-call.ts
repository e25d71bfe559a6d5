/**
 * One unary gRPC call the mesh makes for a filter (an external authorizer's check, a rate limit
 * service's `ShouldRateLimit`), as Envoy's filters make theirs with their async client: the
 * filter's own timeout runs on the mesh's clock, the caller going away (`signal`) cancels it, and
 * whatever happens first settles the call once. Typed by the one method of a grpc-js client it
 * uses, so it needs no grpc-js at run time.
 *
 * @module
 */
import type { Clock } from './clock.ts';

/** What a call needs of a grpc-js client (its `makeUnaryRequest`, with raw `Buffer` messages). */
export interface UnaryRequester {
  makeUnaryRequest(
    method: string,
    serialize: (value: Buffer) => Buffer,
    deserialize: (value: Buffer) => Buffer,
    argument: Buffer,
    options: { deadline?: number },
    callback: (err: Error | null, value?: Buffer) => void,
  ): { cancel(): void };
}

/** How a call ended: an answer, a failure (unreachable, an RPC error), the timeout, or the caller gone. */
export type UnaryOutcome =
  | { readonly kind: 'answer'; readonly value: Buffer }
  | { readonly kind: 'failed'; readonly reason: string }
  | { readonly kind: 'timeout' }
  | { readonly kind: 'cancelled' };

export interface UnaryCallOptions {
  readonly clock: Clock;
  readonly timeoutMs: number;
  /** The caller going away: cancels the call. An already aborted signal makes no call. */
  readonly signal?: AbortSignal | undefined;
  /** Also send the timeout as the call's deadline (`grpc-timeout`), as Envoy's ext_authz does. */
  readonly sendDeadline?: boolean | undefined;
  /** The timeout keeps the process alive while the call runs (a request waits on it); false for a call nothing waits on. @defaultValue true */
  readonly keepAlive?: boolean | undefined;
}

const identity = (b: Buffer): Buffer => b;
const CANCELLED: UnaryOutcome = Object.freeze({ kind: 'cancelled' });
const TIMEOUT: UnaryOutcome = Object.freeze({ kind: 'timeout' });

/** Calls `method` with `request` on the client `client()` gives (made lazily: its errors are failures). */
export function callUnary(client: () => UnaryRequester, method: string, request: Buffer, o: UnaryCallOptions): Promise<UnaryOutcome> {
  const signal = o.signal;
  if (signal?.aborted === true) return Promise.resolve(CANCELLED);
  return new Promise<UnaryOutcome>((resolve) => {
    let settled = false;
    let call: { cancel(): void } | undefined;
    const settle = (outcome: UnaryOutcome): void => {
      if (settled) return;
      settled = true;
      timer.clear();
      signal?.removeEventListener('abort', cancel);
      resolve(outcome);
    };
    const timer = o.clock.setTimer(
      () => {
        call?.cancel();
        settle(TIMEOUT);
      },
      o.timeoutMs,
      o.keepAlive !== false,
    );
    const cancel = (): void => {
      call?.cancel();
      settle(CANCELLED);
    };
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      call = client().makeUnaryRequest(method, identity, identity, request, o.sendDeadline === true ? { deadline: Date.now() + o.timeoutMs } : {}, (err, value) => {
        if (err !== null || value === undefined) settle({ kind: 'failed', reason: err?.message ?? 'no answer' });
        else settle({ kind: 'answer', value });
      });
    } catch (e) {
      settle({ kind: 'failed', reason: (e as Error).message });
    }
  });
}
