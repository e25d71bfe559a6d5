/**
 * The load-balancing layer: picks the endpoint for each attempt from the cluster's picker —
 * never an ejected one, avoiding hosts already tried when the route asks for it
 * (`retryIgnorePreviousHosts`, default on; with consistent hashing only when set to true) — and computes the
 * consistent-hash key from the header, cookie, query parameter or source IP the
 * DestinationRule names (as compiled into the cluster's settings: nothing is parsed per
 * request). A cookie the policy must generate (`httpCookie.ttl`) is set on the response.
 *
 * @module
 */
import type { Random } from '../core/clock.ts';
import { MeshletError } from '../core/errors.ts';
import { type Exchange, NO_CONTROLLER, type ResponseHandler, type Waiter } from '../core/exchange.ts';
import type { Dispatch, Layer } from '../core/layer.ts';
import { headerValue, parseQuery } from '../routing/request-head.ts';
import { hash32 } from '../routing/balancer/hash.ts';
import type { HashKeyPolicy } from '../routing/balancer/lb-settings.ts';
import type { HostState } from '../routing/balancer/host.ts';
import type { PickRequest } from '../routing/balancer/picker.ts';
import type { CompiledRoute } from '../routing/route-table.ts';
import type { ClusterState } from './cluster-state.ts';

/** What the balance layer needs. */
export interface BalanceLayerOptions {
  readonly random: Random;
  /** This workload's IP (the key of `useSourceIp`). */
  readonly sourceIp: string;
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
  }
  return undefined;
}

/** The consistent-hash key of a request, hashed, or -1 when it has none. */
export function hashKey(k: HashKeyPolicy, ex: Exchange, o: BalanceLayerOptions): number {
  let key: string | undefined;
  switch (k.from) {
    case 'header':
      key = headerValue(ex.headers, k.name);
      break;
    case 'source-ip':
      key = o.sourceIp;
      break;
    case 'query':
      key = parseQuery(ex.path, ex.path.indexOf('?')).get(k.name);
      break;
    case 'cookie': {
      key = cookieValue(headerValue(ex.headers, 'cookie'), k.name);
      const g = k.generate;
      if (key === undefined && g !== undefined) {
        // Envoy generates the cookie when it is missing and a ttl is set (ttl 0 = session cookie).
        key = Math.floor(o.random.next() * 2 ** 52).toString(16);
        const attrs = [`${k.name}="${key}"`];
        if (g.maxAgeS !== undefined) attrs.push(`Max-Age=${g.maxAgeS}`);
        if (g.path !== undefined) attrs.push(`Path=${g.path}`);
        for (const a of g.attributes) attrs.push(a);
        attrs.push('HttpOnly');
        ex.responseOps ??= [];
        ex.responseOps.push({ set: [], add: [['set-cookie', attrs.join('; ')]], remove: [] });
      }
      break;
    }
  }
  return key === undefined ? -1 : hash32(key);
}

/**
 * A call waiting for the first DNS answer of its STRICT_DNS cluster (Envoy warms such a cluster
 * before using it): an abort or a deadline meanwhile ends it.
 */
class DnsWait implements Waiter {
  #done = false;
  readonly ex: Exchange;
  readonly handler: ResponseHandler;
  readonly again: Dispatch;
  readonly cs: ClusterState;
  readonly go = (): void => {
    if (this.#done) return;
    this.#done = true;
    if (this.ex.waiting === this) this.ex.waiting = undefined;
    this.again(this.ex, this.handler);
  };
  constructor(ex: Exchange, handler: ResponseHandler, again: Dispatch, cs: ClusterState) {
    this.ex = ex;
    this.handler = handler;
    this.again = again;
    this.cs = cs;
  }
  cancel(reason: Error): void {
    if (this.#done) return;
    this.#done = true;
    // Forgotten at once: a resolver that never answers does not pile up the calls it timed out.
    this.cs.stopWaitingForDns(this.go);
    this.handler.onResponseError?.(NO_CONTROLLER, reason);
  }
}

/** Builds the balance layer. */
export function balanceLayer(o: BalanceLayerOptions): Layer {
  const req: { hash: number; avoid: readonly HostState[] | undefined } = { hash: -1, avoid: undefined };
  return (next: Dispatch): Dispatch => {
    const dispatch: Dispatch = (ex, handler) => {
      const cs = ex.cluster as ClusterState;
      if (cs.passthrough) {
        ex.host = undefined;
        next(ex, handler);
        return;
      }
      if (cs.dnsPending) {
        const w = new DnsWait(ex, handler, dispatch, cs);
        if (cs.waitForDns(w.go)) {
          ex.waiting = w;
          return;
        }
      }
      const ch = cs.hash;
      req.hash = ch === undefined ? -1 : hashKey(ch, ex, o);
      const retry = (ex.route as CompiledRoute).retry;
      // Istio: with consistent hashing, only an explicit retryIgnorePreviousHosts: true avoids tried hosts (Set: true as well on a default route or a weighted rule, whose policy istiod converts without the hash policy).
      req.avoid = (ch === undefined ? retry.retryIgnorePreviousHosts : retry.retryIgnorePreviousHostsSet) ? (ex.tried as HostState[] | undefined) : undefined;
      const host = cs.picker.pick(req as PickRequest);
      if (host === undefined) {
        const err = new MeshletError('MESHLET_ERR_NO_HEALTHY_UPSTREAM', 'no healthy upstream', { ...ex.errorContext(), endpoint: undefined });
        queueMicrotask(() => handler.onResponseError?.(NO_CONTROLLER, err));
        return;
      }
      ex.host = host;
      next(ex, handler);
    };
    return dispatch;
  };
}
