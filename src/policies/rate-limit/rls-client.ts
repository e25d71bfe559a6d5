/**
 * Calls a rate limit service: `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`, as
 * Envoy's rate limit client does (`filters/common/ratelimit/ratelimit_impl.cc`): the domain and
 * the request's descriptors go out; `OVER_LIMIT` is over limit and any other answer is OK; a
 * failed call (unreachable, an RPC error, an answer that does not parse) and the filter's
 * `timeout` are errors.
 *
 * The call goes through the mesh (a grpc-js client on the mesh's channel, as the gRPC external
 * authorizer is called), marked as the mesh's own so that the outbound rate limit filters do not
 * judge it: Envoy calls the service through its cluster, not through a listener.
 *
 * @module
 */
import type { Clock } from '../../core/clock.ts';
import type { Descriptor } from './local-rate-limiter.ts';
import { decodeRateLimitResponse, encodeRateLimitRequest, RLS_CODE, type RateLimitResponse } from './rls-wire.ts';

/** What the client needs of a grpc-js client (its `makeUnaryRequest`). */
export interface RlsCaller {
  makeUnaryRequest(
    method: string,
    serialize: (value: Buffer) => Buffer,
    deserialize: (value: Buffer) => Buffer,
    argument: Buffer,
    options: { deadline?: number },
    callback: (err: Error | null, value?: Buffer) => void,
  ): { cancel(): void };
}

/** Makes the grpc-js client the calls to `host:port` go through (the mesh's). */
export type RlsClientFactory = (target: string) => RlsCaller;

/** The answer of one call. */
export type RlsOutcome =
  | { readonly status: 'ok' | 'over'; readonly response: RateLimitResponse }
  | { readonly status: 'error'; readonly reason: string };

const METHOD = '/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit';

const identity = (b: Buffer): Buffer => b;

/**
 * The rate limit services of a mesh: one grpc-js client per `host:port`, made at its first call.
 * @category Policies
 */
export class RateLimitServiceClient {
  readonly #factory: RlsClientFactory;
  readonly #clock: Clock;
  readonly #clients = new Map<string, RlsCaller>();

  constructor(factory: RlsClientFactory, clock: Clock) {
    this.#factory = factory;
    this.#clock = clock;
  }

  /** Asks the service at `target`; `signal` (the caller going away) cancels the call. */
  shouldRateLimit(target: string, domain: string, descriptors: readonly Descriptor[], timeoutMs: number, signal?: AbortSignal): Promise<RlsOutcome> {
    const request = encodeRateLimitRequest(domain, descriptors);
    return new Promise<RlsOutcome>((resolve) => {
      let settled = false;
      let call: { cancel(): void } | undefined;
      const settle = (o: RlsOutcome): void => {
        if (settled) return;
        settled = true;
        timer.clear();
        signal?.removeEventListener('abort', cancel);
        resolve(o);
      };
      const timer = this.#clock.setTimer(() => {
        call?.cancel();
        settle({ status: 'error', reason: `timed out after ${timeoutMs}ms` });
      }, timeoutMs, true);
      const cancel = (): void => {
        call?.cancel();
        settle({ status: 'error', reason: 'the request went away' });
      };
      signal?.addEventListener('abort', cancel, { once: true });
      try {
        let client = this.#clients.get(target);
        if (client === undefined) {
          client = this.#factory(target);
          this.#clients.set(target, client);
        }
        call = client.makeUnaryRequest(METHOD, identity, identity, request, {}, (err, value) => {
          if (err !== null || value === undefined) return settle({ status: 'error', reason: err?.message ?? 'no answer' });
          let response: RateLimitResponse;
          try {
            response = decodeRateLimitResponse(value);
          } catch (e) {
            return settle({ status: 'error', reason: `malformed answer: ${(e as Error).message}` });
          }
          settle({ status: response.overallCode === RLS_CODE.OVER_LIMIT ? 'over' : 'ok', response });
        });
      } catch (e) {
        settle({ status: 'error', reason: (e as Error).message });
      }
    });
  }
}
