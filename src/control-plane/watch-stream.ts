/**
 * One stream of `GET /v1/watch`: the request (this workload, the `endpoints-delta` feature, and
 * in `Last-Event-ID` the versions the client has), the SSE events read from it, and a dead
 * stream told by silence — no `hello` within the connect timeout, then no data for
 * {@link HEARTBEAT_MISSES} heartbeats. What the events mean is the watch's (`watch.ts`).
 *
 * @module
 */
import { setImmediate } from 'node:timers';
import type { Clock, Timer } from '../core/clock.ts';
import type { WorkloadInfo } from '../routing/compile.ts';
import { type ControlPlaneHttp, readBounded, statusError } from './http.ts';
import { ENDPOINTS_DELTA_FEATURE, formatLabels, HEARTBEAT_MISSES, WATCH_PATH } from './protocol.ts';
import { type SseEvent, SseParser } from './sse.ts';

/** Largest error answer read when a watch is refused (the server's are a few hundred bytes). */
const MAX_ERROR_ANSWER_BYTES = 64 * 1024;

/** What a stream needs of its watch's options. */
export interface WatchStreamOptions {
  readonly http: ControlPlaneHttp;
  readonly workload: Required<WorkloadInfo>;
  readonly clock: Clock;
  /** Longest wait for the response headers and `hello`. */
  readonly connectTimeoutMs: number;
}

/** What a stream hands its watch, as it reads them. */
export interface WatchStreamHandlers {
  /** The `hello` event: checks it (throws when it is malformed) and returns the heartbeat interval it announced. */
  hello(e: SseEvent): number;
  /** Any other event. */
  event(e: SseEvent): void;
  /** A comment (the server's heartbeat). */
  comment(): void;
}

/**
 * Reads one stream on `url` until it ends, fails, or `ac` is aborted (by the watch, or here when
 * the stream goes silent); resolves with why it ended and whether it got as far as `hello`.
 * `lastEventId`: the versions the client has ('' when none); `closed`: the watch was closed.
 */
export async function readWatchStream(o: WatchStreamOptions, url: string, lastEventId: string, ac: AbortController, closed: () => boolean, h: WatchStreamHandlers): Promise<{ error: unknown; wasConnected: boolean }> {
  const { clock, http, workload } = o;
  let connected = false;
  let last = clock.now();
  let limit = o.connectTimeoutMs;
  let timer: Timer | undefined;
  // After a stall of this process (GC, a long synchronous task) timers run before the data
  // already waiting in the socket is read: silence is only a verdict once the loop has polled.
  const check = (polled: boolean): void => {
    if (ac.signal.aborted || closed()) return;
    const idle = clock.now() - last;
    if (idle < limit) arm(limit - idle);
    else if (!polled) setImmediate(check, true);
    else ac.abort(new Error(connected ? `no data for ${limit} ms (${HEARTBEAT_MISSES} heartbeats missed)` : `no hello within ${limit} ms`));
  };
  const arm = (ms: number) => {
    timer = clock.setTimer(() => check(false), ms);
  };
  arm(limit);
  try {
    const query = new URLSearchParams({ service: workload.service, namespace: workload.namespace, labels: formatLabels(workload.labels), features: ENDPOINTS_DELTA_FEATURE });
    const extra: Record<string, string> = { accept: 'text/event-stream', 'cache-control': 'no-cache' };
    if (lastEventId !== '') extra['last-event-id'] = lastEventId;
    const res = await http.agent.request({
      origin: url,
      path: `${WATCH_PATH}?${query}`,
      method: 'GET',
      headers: http.headers(extra),
      signal: ac.signal,
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    if (res.statusCode !== 200) throw statusError(res.statusCode, await readBounded(res.body, MAX_ERROR_ANSWER_BYTES, `the watch's ${res.statusCode} answer`, true));
    const parser = new SseParser({
      onEvent: (e) => {
        // After a resync was decided, the rest of the chunk is stale.
        if (closed() || ac.signal.aborted) return;
        if (e.event === 'hello') {
          const heartbeatMs = h.hello(e);
          connected = true;
          limit = HEARTBEAT_MISSES * heartbeatMs;
          timer?.clear();
          arm(limit);
        } else h.event(e);
      },
      onComment: () => h.comment(),
    });
    for await (const chunk of res.body) {
      last = clock.now();
      parser.push(chunk as Uint8Array);
    }
    throw new Error('the server ended the stream');
  } catch (e) {
    const reason: unknown = ac.signal.aborted ? ac.signal.reason : e;
    return { error: reason, wasConnected: connected };
  } finally {
    timer?.clear();
    if (!ac.signal.aborted) ac.abort();
  }
}
