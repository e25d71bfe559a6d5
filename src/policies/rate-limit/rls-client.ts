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
import { setImmediate } from 'node:timers';
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
/** The gRPC health check (`grpc.health.v1.Health/Check`, every service: a request of no fields): the warm-up call. */
const HEALTH_CHECK = '/grpc.health.v1.Health/Check';
const EMPTY = Buffer.alloc(0);
/** How long a warm-up call may take (on the mesh's clock); its outcome is not read, and its timer keeps no process alive. */
const WARM_TIMEOUT_MS = 10_000;

/**
 * The rate limit services of a mesh: one grpc-js client per `host:port`, made when a config names
 * the service ({@link RateLimitServiceClient.warm}), else at its first call.
 * @category Policies
 */
export class RateLimitServiceClient {
  readonly #factory: RlsClientFactory;
  readonly #clock: Clock;
  readonly #clients = new Map<string, RlsCaller>();
  /** Targets a warm-up was started for and has not ended. */
  readonly #warming = new Set<string>();

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

  /**
   * Gets the services of `targets` ready before a request needs them: for each one not called
   * yet, its client is made (grpc-js loaded) and one gRPC health check is sent to it through the
   * mesh, which opens the connection and runs the mesh's gRPC path a first time — on a cold
   * process those take longer than the filters' default 20 ms `timeout`. Its answer is not read (a
   * service without the health service answers UNIMPLEMENTED). After the current turn: a mesh
   * still being made has no gRPC channel to call through yet. Without grpc-js, nothing is done
   * (the first call fails as before).
   */
  warm(targets: Iterable<string>): void {
    const todo = [...new Set(targets)].filter((t) => !this.#clients.has(t) && !this.#warming.has(t));
    if (todo.length === 0) return;
    for (const t of todo) this.#warming.add(t);
    setImmediate(() => {
      for (const target of todo) {
        let client: RlsCaller;
        try {
          client = this.#client(target);
        } catch {
          this.#warming.delete(target);
          continue;
        }
        void callUnary(() => client, HEALTH_CHECK, EMPTY, { clock: this.#clock, timeoutMs: WARM_TIMEOUT_MS, keepAlive: false }).then(() => this.#warming.delete(target));
      }
    });
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
