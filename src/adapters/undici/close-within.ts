/**
 * Closing the undici dispatchers of a mesh within `closeTimeoutMs`: calls in flight may finish,
 * then what is left is cancelled with `MESHLET_ERR_CLOSED` — including the calls of an Agent's
 * per-origin pools, which undici's own `Agent.destroy()` no longer reaches once `close()` began.
 *
 * @module
 */
import { upstreamClient } from './untraced.ts';
import { Agent, type Client, type Dispatcher, Pool } from 'undici';
import type { Clock, Timer } from '../../core/clock.ts';
import { MeshletError } from '../../core/errors.ts';

/**
 * Closes dispatchers gracefully (calls in flight finish), but for at most `graceMs`: then what is
 * left is destroyed, and its callers get MESHLET_ERR_CLOSED (a call to a hung upstream on a route
 * without a timeout must not hold `mesh.close()` forever).
 */
export async function closeWithin(dispatchers: readonly (Pool | Agent)[], graceMs: number, clock: Clock): Promise<void> {
  if (dispatchers.length === 0) return;
  const closing = Promise.all(dispatchers.map((d) => d.close().catch(() => undefined)));
  if (graceMs === Number.POSITIVE_INFINITY) {
    await closing;
    return;
  }
  let timer: Timer | undefined;
  // On the mesh clock, and keeping the process alive: the caller awaits close().
  const timedOut = await Promise.race([closing.then(() => false), new Promise<boolean>((r) => (timer = clock.setTimer(() => r(true), graceMs, true)))]);
  timer?.clear();
  if (!timedOut) return;
  const err = new MeshletError('MESHLET_ERR_CLOSED', `mesh.close(): the call was still running after closeTimeoutMs (${graceMs} ms) and was cancelled`);
  // An Agent's own pools: it forgot them when close() began, so destroying the Agent alone fails nothing.
  const all = dispatchers.flatMap((d) => [d, ...(AGENT_POOLS.get(d) ?? [])]);
  await Promise.all(all.map((d) => d.destroy(err).catch(() => undefined)));
}

/** The per-origin dispatchers each {@link trackedAgent} made and has not seen destroyed. */
const AGENT_POOLS = new WeakMap<Dispatcher, Set<Pool | Client>>();

/** How many per-origin dispatchers `agent` (a {@link trackedAgent}) holds. @internal */
export function trackedPools(agent: Dispatcher): number {
  return AGENT_POOLS.get(agent)?.size ?? 0;
}

/**
 * An undici Agent whose per-origin pools {@link closeWithin} can still cancel: undici's Agent
 * drops its pools from view as soon as `close()` starts, so its `destroy()` afterwards cancels
 * none of the calls still waiting (a call to a hung host outside the mesh held on past
 * `closeTimeoutMs`). Pools are made as undici's default factory makes them.
 *
 * A pool is forgotten when it is destroyed — the end of every close (undici's `close()` destroys
 * the dispatcher once its calls finished), and what cancels whatever it still had — never when it
 * only began to close: a pool closing with a call still queued (the Agent closing, its connection
 * dropped) reconnects for that call, which `closeWithin` must still reach. So the Agent's pools
 * whose last connection went are forgotten as soon as their close ends, also when undici
 * postpones that close, and not at the next new origin.
 */
export function trackedAgent(options: Agent.Options): Agent {
  const pools = new Set<Pool | Client>();
  const agent = new Agent({
    ...options,
    factory: (origin: string | URL, opts: object) => {
      // Connections opened outside the suppressed context the mesh's requests are handed over in (untraced.ts).
      const d = (opts as { connections?: number | null }).connections === 1 ? upstreamClient(origin, opts) : new Pool(origin, { ...opts, factory: upstreamClient });
      pools.add(d);
      const destroy = d.destroy;
      d.destroy = function (this: typeof d, ...args: unknown[]) {
        pools.delete(d);
        return (destroy as (...a: unknown[]) => unknown).apply(this, args);
      } as typeof d.destroy;
      return d;
    },
  });
  AGENT_POOLS.set(agent, pools);
  return agent;
}
