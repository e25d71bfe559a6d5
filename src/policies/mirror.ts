/**
 * Traffic mirroring (`mirror`/`mirrors` with percentages): a copy of the request goes to
 * the mirror destination, fire-and-forget. The copy's response is read and thrown away, its
 * failures are ignored, and at most `maxInFlight` copies run at once (more are dropped and
 * counted), so mirroring never slows or fails the primary call. Only bodies held in memory
 * are mirrored (a streamed body would have to be buffered, which would slow the primary call);
 * a request with a streamed body is not mirrored.
 *
 * @module
 */
import type { Random } from '../core/clock.ts';
import { isStaticBody } from '../core/body.ts';
import { type Dispatch, Exchange, type Headers, type Layer, type ResponseHandler } from '../core/exchange.ts';
import type { MirrorTarget } from '../routing/route-table.ts';

/** What the mirror layer needs. */
export interface MirrorLayerOptions {
  readonly random: Random;
  now(): number;
  mirrors(ex: Exchange): readonly MirrorTarget[];
  /** Prepares a mirror copy (sets its cluster); false when the mirror destination has no cluster. */
  prepare(copy: Exchange, target: MirrorTarget): boolean;
  /** Sends a copy down the upstream part of the pipeline (no retries, no timeout). */
  readonly send: Dispatch;
  /** @defaultValue 64 */
  readonly maxInFlight: number;
}

/** Counters for mirrored requests. */
export interface MirrorStats {
  sent: number;
  dropped: number;
  failed: number;
  inFlight: number;
}

/** Builds the mirror layer; `stats` is updated in place. */
export function mirrorLayer(o: MirrorLayerOptions, stats: MirrorStats): Layer {
  const done: ResponseHandler = {
    onResponseEnd() {
      stats.inFlight--;
    },
    onResponseError() {
      stats.inFlight--;
      stats.failed++;
    },
  };
  return (next: Dispatch): Dispatch =>
    (ex, handler) => {
      const ms = o.mirrors(ex);
      if (ms.length !== 0 && isStaticBody(ex.body)) {
        for (const m of ms) {
          if (m.fraction < 1 && o.random.next() >= m.fraction) continue;
          if (stats.inFlight >= o.maxInFlight) {
            stats.dropped++;
            continue;
          }
          const headers: Headers = { ...ex.headers };
          const copy = new Exchange(done, 'throw', o.now(), ex.method, ex.scheme, ex.authority, ex.path, headers, ex.body, undefined);
          copy.route = ex.route;
          if (!o.prepare(copy, m)) continue;
          stats.inFlight++;
          stats.sent++;
          // Later, so the primary call goes out first.
          setImmediate(() => o.send(copy, copy));
        }
      }
      next(ex, handler);
    };
}
