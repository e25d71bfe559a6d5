/**
 * The mesh as a grpc-js channel: pass it to a client as `channelOverride` (or let
 * `mesh.grpc.client()` do it) and every call the client makes goes through the mesh's outbound
 * pipeline — routing, retries, timeouts, faults, balancing, outlier detection, pool limits —
 * instead of grpc-js's own resolver and balancer. Interceptors the client was given still run
 * above it.
 *
 * The channel names a mesh service (`reviews:9090`, as a Kubernetes client would dial it) and
 * holds no connection itself: the mesh's gRPC transport keeps one per endpoint. It is READY
 * while the mesh is open.
 *
 * @module
 */
import type { ChannelInterface, ChannelOptions, connectivityState as ConnectivityState, Deadline, experimental } from '@grpc/grpc-js';
import type { ServerSurfaceCall } from '@grpc/grpc-js/build/src/server-call.js';
import type { ChannelRef } from '@grpc/grpc-js/build/src/channelz.js';
import { systemClock, type Timer } from '../../core/clock.ts';
import { InvalidArgumentError } from '../../core/errors.ts';
import { type CallSettings, DEFAULT_SETTINGS, MeshCall, type MeshCallContext, type ParentCall } from './call.ts';
import { grpcJsVersion } from './grpc-js.ts';

/** grpc-js's connectivity states (its enum's values). */
const READY = 2 as ConnectivityState;
const SHUTDOWN = 4 as ConnectivityState;
/** grpc-js's `Propagate.DEADLINE`, `Propagate.CANCELLATION` and `Propagate.DEFAULTS`. */
const PROPAGATE_DEADLINE = 1;
const PROPAGATE_CANCELLATION = 8;
const PROPAGATE_DEFAULTS = 0xffff;

let channelIds = 0;

/** @internal The channel option that marks a channel's calls as the mesh's own (a rate limit service's): `{ 'meshlet.side_call': 1 }`. */
export const SIDE_CALL_OPTION = 'meshlet.side_call';

/**
 * The `host:port` authority a gRPC target names (`reviews:9090`, `dns:///reviews:9090`,
 * `reviews.default.svc.cluster.local:9090`); a port is required, as the mesh routes on it.
 */
export function targetAuthority(target: string): string {
  if (typeof target !== 'string' || target === '') throw new InvalidArgumentError(`mesh.grpc: the target must be a "host:port" string, got ${JSON.stringify(target)}`);
  let t = target;
  const scheme = /^([a-z][a-z0-9+.-]*):(.*)$/i.exec(t);
  if (scheme !== null && !/^\d+$/.test(scheme[2] ?? '')) {
    if ((scheme[1] ?? '').toLowerCase() !== 'dns') throw new InvalidArgumentError(`mesh.grpc: target "${target}": only plain "host:port" and dns: targets name a mesh service (the mesh resolves and balances itself)`);
    t = (scheme[2] ?? '').replace(/^\/\/[^/]*\//, '').replace(/^\/+/, '');
  }
  const m = /^(\[[^\]]+\]|[^:/[\]]+):(\d{1,5})$/.exec(t);
  if (m !== null && (Number(m[2]) < 1 || Number(m[2]) > 65535)) throw new InvalidArgumentError(`mesh.grpc: target "${target}": port ${m[2]} is out of range (1-65535)`);
  if (m === null) {
    throw new InvalidArgumentError(`mesh.grpc: target "${target}" must name a host and a port (e.g. "reviews:9090"): the mesh routes on the port`);
  }
  return `${(m[1] as string).toLowerCase()}:${Number(m[2])}`;
}

/**
 * What a client's options say of its calls: message-size limits (grpc-js's defaults where they set
 * none) and its user agent. A limit of -1 takes any size; another negative one, as grpc-js reads it
 * (stream-decoder.js, compression-filter.js: `max !== -1 && size > max`), refuses every message.
 */
function callSettings(options: ChannelOptions | undefined): CallSettings {
  const limit = (key: string, dflt: number): number => {
    const v = options?.[key];
    return typeof v === 'number' && Number.isInteger(v) ? v : dflt;
  };
  const agent = (key: string): string | undefined => (typeof options?.[key] === 'string' && options[key] !== '' ? (options[key] as string) : undefined);
  // As grpc-js's transport writes it: the client's primary agent, grpc-js's own, its secondary.
  const userAgent = [agent('grpc.primary_user_agent'), `grpc-node-js/${grpcJsVersion()}`, agent('grpc.secondary_user_agent')].filter((x) => x !== undefined).join(' ');
  const sideCall = options?.[SIDE_CALL_OPTION] === 1;
  return { receive: limit('grpc.max_receive_message_length', DEFAULT_SETTINGS.receive), send: limit('grpc.max_send_message_length', DEFAULT_SETTINGS.send), userAgent, ...(sideCall ? { sideCall } : {}) };
}

/**
 * A grpc-js `Channel` whose calls run through the mesh.
 * @category gRPC
 */
export class MeshChannel implements ChannelInterface {
  readonly #o: MeshCallContext;
  readonly #target: string;
  readonly #authority: string;
  readonly #ref: ChannelRef;
  #closed = false;
  readonly #watchers = new Set<() => void>();
  readonly #limits: CallSettings;

  /** @internal made by `mesh.grpc.channel(target, options)`. */
  constructor(o: MeshCallContext, target: string, options?: ChannelOptions) {
    this.#o = o;
    this.#target = target;
    this.#authority = targetAuthority(target);
    this.#limits = callSettings(options);
    this.#ref = { kind: 'channel', id: --channelIds, name: `meshlet:${target}` } as ChannelRef;
  }

  /** Closes this channel (the mesh and its connections stay; `mesh.close()` closes those). */
  close(): void {
    this.#closed = true;
    for (const w of [...this.#watchers]) w();
  }

  getTarget(): string {
    return this.#target;
  }

  getConnectivityState(_tryToConnect: boolean): ConnectivityState {
    return this.#closed || this.#o.closed() ? SHUTDOWN : READY;
  }

  watchConnectivityState(currentState: ConnectivityState, deadline: Date | number, callback: (error?: Error) => void): void {
    if (this.getConnectivityState(false) !== currentState) {
      process.nextTick(callback);
      return;
    }
    const at = deadline instanceof Date ? deadline.getTime() : deadline;
    let timer: Timer | undefined;
    const w = (): void => {
      this.#watchers.delete(w);
      timer?.clear();
      callback();
    };
    this.#watchers.add(w);
    if (at !== Number.POSITIVE_INFINITY) {
      // The caller's Date, on real time as grpc-js's own channel times it — but waited in steps: a
      // deadline more than 24.8 days away (2^31-1 ms) handed to setTimeout fired after 1 ms, as it
      // does in grpc-js's channel.
      timer = systemClock.setTimer(() => {
        this.#watchers.delete(w);
        callback(new Error('Deadline passed without connectivity state change'));
      }, Math.max(0, at - Date.now()));
    }
  }

  getChannelzRef(): ChannelRef {
    return this.#ref;
  }

  createCall(method: string, deadline: Deadline, host: string | null | undefined, parentCall: ServerSurfaceCall | null, propagateFlags: number | null | undefined): experimental.CallStream {
    if (this.#closed) throw new Error('Channel has been shut down');
    let d = deadline instanceof Date ? deadline.getTime() : deadline;
    const flags = propagateFlags ?? PROPAGATE_DEFAULTS;
    // A server call's deadline carries over to the calls it makes (grpc-js's propagation).
    if (parentCall !== null && (flags & PROPAGATE_DEADLINE) !== 0) {
      const pd = parentCall.getDeadline();
      const p = pd instanceof Date ? pd.getTime() : pd;
      if (p < d) d = p;
    }
    const call = new MeshCall(this.#o, method, host !== null && host !== undefined && host !== '' ? host : this.#authority, d, this.#limits);
    // ...and so does its cancellation (the caller went away, or its deadline passed): the calls it made are cancelled.
    if (parentCall !== null && (flags & PROPAGATE_CANCELLATION) !== 0 && typeof (parentCall as Partial<ParentCall>).on === 'function') call.cancelWithParent(parentCall);
    return call;
  }
}
