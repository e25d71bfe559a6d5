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
import { callUnary, type UnaryRequester } from '../../core/unary-call.ts';
import type { Descriptor } from './local-rate-limiter.ts';
import { decodeRateLimitResponse, encodeRateLimitRequest, RLS_CODE, type RateLimitResponse } from './rls-wire.ts';

/** What the client needs of a grpc-js client (its `makeUnaryRequest`). */
export type RlsCaller = UnaryRequester;

/** Makes the grpc-js client the calls to `host:port` go through (the mesh's). */
export type RlsClientFactory = (target: string) => RlsCaller;

/** The answer of one call. */
export type RlsOutcome =
  | { readonly status: 'ok' | 'over'; readonly response: RateLimitResponse }
  | { readonly status: 'error'; readonly reason: string };

const METHOD = '/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit';

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
  async shouldRateLimit(target: string, domain: string, descriptors: readonly Descriptor[], timeoutMs: number, signal?: AbortSignal): Promise<RlsOutcome> {
    const request = encodeRateLimitRequest(domain, descriptors);
    const o = await callUnary(() => this.#client(target), METHOD, request, { clock: this.#clock, timeoutMs, signal });
    if (o.kind === 'timeout') return { status: 'error', reason: `timed out after ${timeoutMs}ms` };
    if (o.kind === 'cancelled') return { status: 'error', reason: 'the request went away' };
    if (o.kind === 'failed') return { status: 'error', reason: o.reason };
    let response: RateLimitResponse;
    try {
      response = decodeRateLimitResponse(o.value);
    } catch (e) {
      return { status: 'error', reason: `malformed answer: ${(e as Error).message}` };
    }
    return { status: response.overallCode === RLS_CODE.OVER_LIMIT ? 'over' : 'ok', response };
  }

  #client(target: string): RlsCaller {
    let client = this.#clients.get(target);
    if (client === undefined) {
      client = this.#factory(target);
      this.#clients.set(target, client);
    }
    return client;
  }
}
