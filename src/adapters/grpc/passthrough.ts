/**
 * The gRPC transport's connections to hosts outside the mesh (Resolution NONE / PASSTHROUGH, and
 * ALLOW_ANY's PassthroughCluster): a channel per address the caller named, without stream limits,
 * drained by close().
 *
 * An address's channel is closed once no call has used it for a cleanup interval, as Envoy
 * removes the hosts of an ORIGINAL_DST cluster (Istio's PassthroughCluster sets no
 * `cleanup_interval`: Envoy's default, 5 s) that were not used since the last cleanup, draining
 * their connections. A process that calls many addresses over its life (pod IPs, per-tenant
 * hosts) keeps only those it still calls, as the undici side (an Agent whose per-origin pools
 * close with their last idle connection) does.
 *
 * @module
 */
import type { ChannelInterface as Channel } from '@grpc/grpc-js';
import type { Clock, Timer } from '../../core/clock.ts';
import { type Admitted, type AttemptOwner, Conn, type EndpointChannel, Live } from './channels.ts';
import { type GrpcJs, grpcJs } from './grpc-js.ts';

/** Envoy's default `cleanup_interval` of an ORIGINAL_DST cluster. */
export const PASSTHROUGH_CLEANUP_MS = 5000;

/** Calls to addresses outside the mesh: a channel per address, closed when unused, drained on close. */
export class PassthroughChannels implements AttemptOwner {
  readonly live = new Live();
  readonly clock: Clock;
  readonly #conns = new Map<string, Conn>();
  #sweep: Timer | undefined;
  #closed = false;
  readonly envoyHeaders: boolean;

  constructor(clock: Clock, envoyHeaders = true) {
    this.clock = clock;
    this.envoyHeaders = envoyHeaders;
  }

  get grpc(): GrpcJs {
    return grpcJs();
  }

  /** How many addresses have a channel. */
  get size(): number {
    return this.#conns.size;
  }

  /** The channel to `authority`, made with `open` when there is none. */
  get(authority: string, open: () => Channel): Conn {
    let c = this.#conns.get(authority);
    if (c === undefined) {
      c = new Conn(open());
      this.#conns.set(authority, c);
      // Background housekeeping: the timer does not keep the process alive.
      if (this.#sweep === undefined && !this.#closed) this.#sweep = this.clock.setTimer(() => this.#cleanup(), PASSTHROUGH_CLEANUP_MS);
    }
    return c;
  }

  admit(_e: EndpointChannel | undefined, a: Admitted): 'go' {
    if (a.liveIndex === -1 && a.conn !== undefined) {
      a.conn.active++;
      a.conn.used = true;
    }
    this.live.add(a);
    return 'go';
  }

  done(_e: EndpointChannel | undefined, a: Admitted): void {
    if (a.liveIndex !== -1 && a.conn !== undefined) {
      a.conn.active--;
      // Used until now: an idle interval starts when the last call ends.
      a.conn.used = true;
    }
    this.live.delete(a);
  }

  /** Envoy's cleanup: a channel with no call in flight and none since the last cleanup is closed. */
  #cleanup(): void {
    this.#sweep = undefined;
    for (const [authority, c] of this.#conns) {
      if (c.active > 0 || c.used) c.used = false;
      else {
        this.#conns.delete(authority);
        c.close();
      }
    }
    if (this.#conns.size > 0 && !this.#closed) this.#sweep = this.clock.setTimer(() => this.#cleanup(), PASSTHROUGH_CLEANUP_MS);
  }

  /** Closes the channels: calls in flight may finish for `graceMs`, then they are cancelled. */
  async close(graceMs: number): Promise<void> {
    this.#closed = true;
    this.#sweep?.clear();
    this.#sweep = undefined;
    for (const c of this.#conns.values()) c.close();
    this.#conns.clear();
    await this.live.drain(graceMs, this.clock);
  }
}
