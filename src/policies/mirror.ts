/**
 * Traffic mirroring (`mirror`/`mirrors` with percentages): a copy of the request goes to
 * the mirror destination, fire-and-forget. The copy's response is read and thrown away, its
 * failures are ignored, and at most `maxInFlight` copies run at once (more are dropped and
 * counted), so mirroring never slows or fails the primary call. Bodies held in memory
 * go out at once; a streamed body (undici's `fetch` streams every body, strings included) is
 * mirrored once the primary attempt has sent all of it while the retry buffer still held it —
 * the copy never reads the stream itself, so it cannot slow the primary call. A streamed body
 * larger than the retry buffer is not mirrored (counted as dropped), nor is a copy whose
 * destination has no cluster (no such service or subset, or a reload removed it). As Istio configures Envoy's
 * mirrors (`trace_sampled: false`), the copy's trace context says "not sampled", so the mirror
 * destination's spans do not join the caller's trace.
 *
 * @module
 */
import { setImmediate } from 'node:timers';
import type { Random } from '../core/clock.ts';
import type { DeadlineNode, DeadlineQueue } from '../core/deadlines.ts';
import { MeshletError } from '../core/errors.ts';
import { ReplayableBody } from '../core/body.ts';
import { isStaticBody, OversizedBody } from '../core/replay.ts';
import type { Exchange, ResponseHandler } from '../core/exchange.ts';
import type { Headers } from '../core/handler.ts';
import type { Dispatch, Layer } from '../core/layer.ts';
import { channels, type MirrorDroppedMessage } from '../core/observe.ts';
import type { MirrorTarget } from '../routing/route-table.ts';
import { callerDue } from './timeout.ts';

/** What the mirror layer needs. */
export interface MirrorLayerOptions {
  readonly random: Random;
  now(): number;
  mirrors(ex: Exchange): readonly MirrorTarget[];
  /** Prepares a mirror copy (sets its cluster); false when the mirror destination has no cluster. */
  prepare(copy: Exchange, target: MirrorTarget): boolean;
  /**
   * Just before a prepared copy is sent: false when its cluster is gone by then (a reload removed
   * it while the primary's body was still arriving), and the copy is not sent — as Envoy sends no
   * shadow to a cluster it no longer has. True counts the copy on its cluster until it ends.
   */
  claim(copy: Exchange): boolean;
  /** Sends a copy down the upstream part of the pipeline (no retries, no timeout). */
  readonly send: Dispatch;
  /** @defaultValue 64 */
  readonly maxInFlight: number;
  readonly deadlines: DeadlineQueue;
  /** The route's timeout (Envoy gives shadows the route timeout), or undefined. */
  timeoutMs(ex: Exchange): number | undefined;
  /** How long a copy may take when nothing bounds it (no route timeout, no caller deadline). */
  readonly defaultTimeoutMs: number;
}

/**
 * The deadline a copy carries upstream (`grpc-timeout`, `x-envoy-expected-rq-timeout-ms`): the
 * route timeout from now or the caller's own deadline, the sooner — what the primary's request
 * carries, which Envoy's shadow copies with the request's headers. Infinity when neither is set.
 */
function sentDeadline(o: MirrorLayerOptions, now: number, ex: Exchange): number {
  const routeMs = o.timeoutMs(ex);
  return Math.min(routeMs === undefined ? Number.POSITIVE_INFINITY : now + routeMs, callerDue(ex, o));
}

/**
 * Marks the trace context a copy carries as not sampled (W3C `traceparent` flags, B3's
 * `x-b3-sampled` and single `b3`; a B3 debug flag, which forces sampling, is dropped): Istio
 * sets `trace_sampled: false` on every mirror policy, so Envoy's shadow request is not sampled.
 */
export function unsampleTraceContext(h: Headers): void {
  const tp = h.traceparent;
  // 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>: the flags are at 53..55.
  if (typeof tp === 'string' && tp.length >= 55 && tp[52] === '-') {
    const flags = Number.parseInt(tp.slice(53, 55), 16);
    if (!Number.isNaN(flags) && (flags & 1) === 1) h.traceparent = `${tp.slice(0, 53)}${(flags & 0xfe).toString(16).padStart(2, '0')}${tp.slice(55)}`;
  }
  if (h['x-b3-traceid'] !== undefined || h['x-b3-sampled'] !== undefined) h['x-b3-sampled'] = '0';
  if (h['x-b3-flags'] !== undefined) delete h['x-b3-flags'];
  const b3 = h.b3;
  if (typeof b3 === 'string') {
    const parts = b3.split('-');
    if (parts.length >= 3) {
      parts[2] = '0';
      h.b3 = parts.join('-');
    } else if (parts.length === 2) h.b3 = `${b3}-0`;
    else h.b3 = '0';
  }
}

/** Mirror copies whose timeout has not passed, so closing the mesh can cancel them. */
export type LiveMirrors = Set<Exchange>;

class MirrorDeadline implements DeadlineNode {
  due: number;
  heapIndex = -1;
  readonly #copy: Exchange;
  constructor(copy: Exchange, due: number) {
    this.#copy = copy;
    this.due = due;
  }
  expire(): void {
    this.#copy.expire(new MeshletError('MESHLET_ERR_TIMEOUT', 'mirror request timeout'));
  }
}

/** Counters for mirrored requests. */
export interface MirrorStats {
  sent: number;
  dropped: number;
  failed: number;
  inFlight: number;
}

/** Counts a copy not sent and publishes it when `meshlet:mirror:dropped` has subscribers. */
function dropped(stats: MirrorStats, ex: Exchange, m: MirrorTarget, reason: MirrorDroppedMessage['reason']): void {
  stats.dropped++;
  const ch = channels.mirrorDropped;
  if (ch.hasSubscribers) ch.publish({ workload: ex.workload, call: ex, cluster: mirrorClusterName(m), reason } satisfies MirrorDroppedMessage);
}

/** The mirror's cluster name: the cluster's, or the one the route names when no such cluster exists (as Envoy's route names it). */
function mirrorClusterName(m: MirrorTarget): string {
  const t = m.target;
  return t.cluster?.name ?? `outbound|${t.port}|${t.subset ?? ''}|${t.host}`;
}

/** Builds the mirror layer; `stats` is updated in place and `live` holds the copies in flight. */
export function mirrorLayer(o: MirrorLayerOptions, stats: MirrorStats, live: LiveMirrors): Layer {
  const launch = (ex: Exchange, m: MirrorTarget, copy: Exchange, due: number): void => {
    if (!o.claim(copy)) {
      // Its cluster went away (a reload) or the mesh is closing: not sent, and counted.
      dropped(stats, ex, m, 'no-cluster');
      return;
    }
    stats.inFlight++;
    stats.sent++;
    live.add(copy);
    // A copy that hangs must not hold its slot (or the mesh's close) forever; the copy takes the
    // entry out of the queue when it ends.
    const node = new MirrorDeadline(copy, due);
    o.deadlines.add(node);
    copy.deadlineNode = node;
    copy.deadlineQueue = o.deadlines;
    o.send(copy, copy);
  };
  // The copy is the controller its handler is called with.
  const done: ResponseHandler = {
    onResponseEnd(copy) {
      stats.inFlight--;
      live.delete(copy as Exchange);
    },
    onResponseError(copy) {
      stats.inFlight--;
      stats.failed++;
      live.delete(copy as Exchange);
    },
  };
  return (next: Dispatch): Dispatch =>
    (ex, handler) => {
      const ms = o.mirrors(ex);
      const streamed = ex.body instanceof ReplayableBody ? ex.body : undefined;
      const oversized = ex.body instanceof OversizedBody;
      if (ms.length !== 0 && (streamed !== undefined || oversized || isStaticBody(ex.body))) {
        // One draw for every mirror of the call: Envoy decides each shadow policy with the same
        // stable random value, the stream id (router.cc FilterUtility::shouldShadow), so a copy to
        // a 30% mirror always comes with a copy to a 60% mirror of the same route.
        const draw = o.random.next();
        for (const m of ms) {
          if (m.fraction < 1 && draw >= m.fraction) continue;
          if (oversized) {
            // A string or bytes past the retry buffer: as a streamed body past it, not copied (Envoy abandons the shadow).
            dropped(stats, ex, m, 'body-too-large');
            continue;
          }
          if (stats.inFlight >= o.maxInFlight) {
            dropped(stats, ex, m, 'max-in-flight');
            continue;
          }
          const copy = ex.copy(done, o.now());
          copy.route = ex.route;
          unsampleTraceContext(copy.headers);
          if (!o.prepare(copy, m)) {
            // No such service or subset (any more): Envoy sends no shadow to a cluster it does not have.
            dropped(stats, ex, m, 'no-cluster');
            continue;
          }
          const now = o.now();
          const sent = sentDeadline(o, now, ex);
          copy.deadline = sent;
          const due = sent !== Number.POSITIVE_INFINITY ? sent : now + o.defaultTimeoutMs;
          if (streamed === undefined) {
            // Later, so the primary call goes out first.
            setImmediate(() => launch(ex, m, copy, due));
            continue;
          }
          // Not counted in flight while waiting: a body the primary never finishes sending
          // (failed call, early response) leaves nothing behind but this unresolved promise.
          void streamed.forCopy().then((body) => {
            if (body === undefined || stats.inFlight >= o.maxInFlight) {
              dropped(stats, ex, m, body === undefined ? 'body-too-large' : 'max-in-flight');
              return;
            }
            copy.body = body;
            launch(ex, m, copy, due);
          });
        }
      }
      next(ex, handler);
    };
}
