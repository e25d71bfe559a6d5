/**
 * `mesh.grpc`: grpc-js clients whose calls go through the mesh.
 *
 * ```ts
 * const client = mesh.grpc.client(ReviewsClient, 'reviews:9090');
 * // or, constructing the client yourself:
 * const client = new ReviewsClient('reviews:9090', grpc.credentials.createInsecure(), mesh.grpc.channelOptions());
 * ```
 *
 * @module
 */
import type { ChannelCredentials, ClientOptions } from '@grpc/grpc-js';
import type { Clock } from '../../core/clock.ts';
import type { Dispatch, ErrorMode } from '../../core/exchange.ts';
import type { WorkloadIdentity } from '../../core/observe.ts';
import type { MeshCallContext } from './call.ts';
import { MeshChannel, targetAuthority } from './channel.ts';
import { grpcJs } from './grpc-js.ts';

/** What `mesh.grpc` needs from its mesh. */
export interface MeshGrpcOptions {
  readonly clock: Clock;
  readonly errors: ErrorMode;
  readonly retryBufferBytes: number;
  readonly workload: WorkloadIdentity | undefined;
  pipeline(): Dispatch;
  closed(): boolean;
}

/**
 * A grpc-js client class (what `grpc.makeGenericClientConstructor` or `@grpc/proto-loader`'s
 * `loadPackageDefinition` gives, or a generated client).
 * @category gRPC
 */
export type GrpcClientConstructor<C> = new (address: string, credentials: ChannelCredentials, options?: ClientOptions) => C;

/**
 * The mesh's gRPC client side (`mesh.grpc`).
 * @category gRPC
 */
export class MeshGrpc {
  readonly #o: MeshGrpcOptions;
  #ctx: MeshCallContext | undefined;

  /** @internal made by the mesh. */
  constructor(o: MeshGrpcOptions) {
    this.#o = o;
  }

  get #context(): MeshCallContext {
    const o = this.#o;
    this.#ctx ??= { grpc: grpcJs(), clock: o.clock, errors: o.errors, retryBufferBytes: o.retryBufferBytes, workload: o.workload, pipeline: o.pipeline, closed: o.closed };
    return this.#ctx;
  }

  /**
   * A channel to the mesh service `target` (`'reviews:9090'`), for a client's `channelOverride`.
   * The port is required: routes match on it.
   */
  channel(target: string): MeshChannel {
    return new MeshChannel(this.#context, target);
  }

  /**
   * A grpc-js client for the mesh service `target` (`'reviews:9090'`): `new ClientCtor(target, …)`
   * with the mesh as its channel. Other client options (interceptors, …) apply as usual; channel
   * options that configure grpc-js's own connections do not (the mesh's connections follow the
   * DestinationRule).
   */
  client<C>(ClientCtor: GrpcClientConstructor<C>, target: string, options?: ClientOptions): C {
    targetAuthority(target);
    const g = grpcJs();
    return new ClientCtor(target, g.credentials.createInsecure(), { ...options, channelOverride: this.channel(target) });
  }

  /**
   * Client options that put a client you construct yourself on the mesh:
   * `new ClientCtor('reviews:9090', grpc.credentials.createInsecure(), { ...mesh.grpc.channelOptions(), ...yours })`.
   * The credentials given to the constructor are not used: the mesh decides TLS per DestinationRule.
   */
  channelOptions(): ClientOptions {
    return { channelFactoryOverride: (address: string) => this.channel(address) };
  }
}
