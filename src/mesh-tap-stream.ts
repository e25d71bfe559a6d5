/**
 * One `GET /tap` client of a mesh's admin endpoint (`mesh-tap.ts` feeds it): its filters, its
 * `max_rps` budget on the mesh's clock, and its NDJSON stream — one JSON object a line, written as
 * each event happens. A reader that does not keep up never makes the mesh hold more than
 * {@link MAX_BUFFERED} bytes for it: past that, events are dropped and counted, and the counts
 * are reported in a `dropped` record once the stream moves again (as requests over `max_rps` are:
 * counted, never queued).
 *
 * @module
 */
import type { ServerResponse } from 'node:http';
import type { Clock, Timer } from './core/clock.ts';

/** Most bytes written to a tap client and not yet taken by its connection; past it, events are dropped (counted). */
export const MAX_BUFFERED = 1024 * 1024;

/** Linkerd's `--max-rps` default. */
export const DEFAULT_MAX_RPS = 100;
/** The highest `max_rps` accepted. */
export const MAX_MAX_RPS = 100_000;

/** What a `req` record says (before its id). */
export interface TapRequest {
  readonly direction: 'in' | 'out';
  readonly protocol: string;
  readonly method: string;
  readonly scheme: string;
  readonly authority: string;
  /** Without the query string (tokens travel in queries). */
  readonly path: string;
  readonly route?: string | undefined;
  readonly cluster?: string | undefined;
  readonly srcAddress?: string | undefined;
  readonly srcPrincipal?: string | undefined;
  readonly dstAddress?: string | undefined;
  readonly dstPrincipal?: string | undefined;
  readonly dstService?: string | undefined;
  readonly tls: boolean;
  /** A mirror copy of a call (VirtualService `mirror`), not a call of the app's. */
  readonly mirror?: true | undefined;
}

/** What an `rsp` record says (before its id): the response head, as Linkerd's tap's `rsp` event. */
export interface TapResponse {
  readonly direction: 'in' | 'out';
  readonly status: number;
  /** The gRPC status of a trailers-only answer (its head carries it), else absent. */
  readonly grpcStatus?: number | undefined;
  /** Microseconds from the request's start to the head. */
  readonly latencyUs: number;
  /** Outbound: this workload's address on the connection that answered, when it became known only now. */
  readonly srcAddress?: string | undefined;
  /** A reply the mesh made itself (`direct`, `redirect`, `cors`, `failure`), absent for the upstream's or the app's. */
  readonly local?: string | undefined;
  /** The names of the head's headers (never their values). */
  readonly headers?: readonly string[] | undefined;
}

/** What an `end` record says (before its id). */
export interface TapEnd {
  readonly direction: 'in' | 'out';
  /** HTTP status; 0 when no response came. */
  readonly status: number;
  /** gRPC status (gRPC calls), else absent. */
  readonly grpcStatus?: number | undefined;
  /** Envoy response flags, comma-separated, `-` for none (as Envoy's access log). */
  readonly flags: string;
  readonly latencyMs: number;
  readonly attempts?: number | undefined;
  readonly requestBytes?: number | undefined;
  readonly responseBytes?: number | undefined;
  /** Envoy's response code details of an inbound request (`via_upstream`, `rbac_access_denied_matched_policy[…]`). */
  readonly details?: string | undefined;
  /** Inbound: the caller's SPIFFE ID (mTLS), known once the request was judged. */
  readonly srcPrincipal?: string | undefined;
}

/** The filters of a tap (query parameters of `/tap`); each unset one lets everything through. */
export interface TapFilter {
  readonly direction?: 'in' | 'out' | undefined;
  /** Case-insensitive. */
  readonly method?: string | undefined;
  /** Case-insensitive; `reviews` also matches `reviews:9080`. */
  readonly authority?: string | undefined;
  /** A prefix of the path. */
  readonly path?: string | undefined;
  /** The route's name, exactly. */
  readonly route?: string | undefined;
  /** Text the cluster's name contains (as `meshlet proxy-config --cluster`). */
  readonly cluster?: string | undefined;
  /** A status class (`5xx`) or code (`503`); `0` for no response. Requests are then shown once they end. */
  readonly status?: string | undefined;
}

const FILTERS = ['direction', 'method', 'authority', 'path', 'route', 'cluster', 'status'] as const;

/** What is wrong with one `/tap` parameter: `param` and `problem` apart (the CLI names its flag), and as one message. */
export interface TapQueryError {
  readonly param: string;
  readonly problem: string;
  readonly error: string;
}

const bad = (param: string, problem: string): TapQueryError => ({ param, problem, error: `${param} ${problem}` });

/** Reads `/tap`'s query: its filters and `max_rps`, or what is wrong with them (`meshlet tap` checks its flags with it too). */
export function tapQuery(q: URLSearchParams): { filter: TapFilter; maxRps: number } | TapQueryError {
  for (const k of q.keys()) {
    if (k !== 'max_rps' && !(FILTERS as readonly string[]).includes(k)) return { param: k, problem: 'is not a parameter', error: `unknown parameter "${k}": /tap takes ${[...FILTERS, 'max_rps'].join(', ')}` };
  }
  const get = (k: string): string | undefined => {
    const v = q.get(k);
    return v === null || v === '' ? undefined : v;
  };
  const direction = get('direction');
  if (direction !== undefined && direction !== 'in' && direction !== 'out') return bad('direction', `must be in or out, got "${direction}"`);
  const status = get('status');
  if (status !== undefined && !/^(?:[1-5]xx|[1-5]\d\d|0)$/.test(status)) return bad('status', `must be a class (2xx, 5xx, …), a code (503) or 0 (no response), got "${status}"`);
  const path = get('path');
  if (path !== undefined && !path.startsWith('/')) return bad('path', `must be a prefix starting with /, got "${path}"`);
  let maxRps = DEFAULT_MAX_RPS;
  const r = get('max_rps');
  if (r !== undefined) {
    maxRps = Number(r);
    if (!Number.isFinite(maxRps) || maxRps <= 0 || maxRps > MAX_MAX_RPS) return bad('max_rps', `must be a number above 0 and at most ${MAX_MAX_RPS}, got "${r}"`);
  }
  const filter: TapFilter = { direction, method: get('method')?.toUpperCase(), authority: get('authority')?.toLowerCase(), path, route: get('route'), cluster: get('cluster'), status };
  return { filter, maxRps };
}

function matches(f: TapFilter, r: TapRequest): boolean {
  if (f.direction !== undefined && r.direction !== f.direction) return false;
  if (f.method !== undefined && r.method.toUpperCase() !== f.method) return false;
  if (f.authority !== undefined) {
    const a = r.authority.toLowerCase();
    if (a !== f.authority && a.replace(/:\d+$/, '') !== f.authority) return false;
  }
  if (f.path !== undefined && !r.path.startsWith(f.path)) return false;
  if (f.route !== undefined && r.route !== f.route) return false;
  if (f.cluster !== undefined && (r.cluster === undefined || !r.cluster.includes(f.cluster))) return false;
  return true;
}

function statusMatches(want: string, status: number): boolean {
  if (want.endsWith('xx')) return status > 0 && Math.floor(status / 100) === Number(want[0]);
  return status === Number(want);
}

/** Drops to report: requests over `max_rps`, events a slow reader missed. */
interface Drops {
  rateLimited: number;
  slowReader: number;
}

/** One tap client: filters, rate, buffer, NDJSON writing. */
export class TapStream {
  readonly #res: ServerResponse;
  readonly #filter: TapFilter;
  readonly #maxRps: number;
  readonly #clock: Clock;
  #tokens: number;
  #refilledAt: number;
  #nextId = 0;
  /** Calls shown to this client, by their call object: the id their `end` carries. */
  readonly #ids = new WeakMap<object, number>();
  /** With a status filter: requests held until their response head or end says whether they pass. */
  readonly #held = new WeakMap<object, TapRequest>();
  /** With a status filter: the response head of a held request whose status did not pass (its end decides). */
  readonly #heldResponse = new WeakMap<object, TapResponse>();
  readonly #dropped: Drops = { rateLimited: 0, slowReader: 0 };
  readonly #reported: Drops = { rateLimited: 0, slowReader: 0 };
  #timer: Timer | undefined;
  #ended = false;

  constructor(res: ServerResponse, filter: TapFilter, maxRps: number, clock: Clock) {
    this.#res = res;
    this.#filter = filter;
    this.#maxRps = maxRps;
    this.#clock = clock;
    this.#tokens = Math.max(1, maxRps);
    this.#refilledAt = clock.now();
  }

  /** A request started (or, outbound, went to its first endpoint). */
  request(call: object, r: TapRequest): void {
    if (this.#ended || !matches(this.#filter, r)) return;
    if (this.#filter.status !== undefined) {
      this.#held.set(call, r);
      return;
    }
    this.#show(call, r);
  }

  /** A request's response head was written (inbound) or reached its caller (outbound). */
  response(call: object, p: TapResponse): void {
    if (this.#ended) return;
    if (this.#filter.status !== undefined) {
      const r = this.#held.get(call);
      if (r !== undefined) {
        if (!statusMatches(this.#filter.status, p.status)) {
          // Its end may still pass (a stream that broke off ends with no status: `status=0`).
          this.#heldResponse.set(call, p);
          return;
        }
        this.#held.delete(call);
        this.#show(call, r);
      }
    }
    const id = this.#ids.get(call);
    if (id !== undefined) this.#write({ type: 'rsp', id, ...p });
  }

  /** A request ended. */
  end(call: object, e: TapEnd): void {
    if (this.#ended) return;
    if (this.#filter.status !== undefined) {
      const r = this.#held.get(call);
      if (r !== undefined) {
        this.#held.delete(call);
        const p = this.#heldResponse.get(call);
        this.#heldResponse.delete(call);
        if (!statusMatches(this.#filter.status, e.status)) return;
        this.#show(call, r);
        const id = this.#ids.get(call);
        if (p !== undefined && id !== undefined) this.#write({ type: 'rsp', id, ...p });
      }
    }
    const id = this.#ids.get(call);
    if (id === undefined) return;
    this.#ids.delete(call);
    this.#write({ type: 'end', id, ...e });
  }

  #show(call: object, r: TapRequest): void {
    if (!this.#take()) {
      this.#dropped.rateLimited++;
      this.#later();
      return;
    }
    const id = ++this.#nextId;
    if (this.#write({ type: 'req', id, ...r })) this.#ids.set(call, id);
  }

  /** A token of the `max_rps` bucket (refilled on the mesh's clock), or false. */
  #take(): boolean {
    const now = this.#clock.now();
    if (now > this.#refilledAt) {
      this.#tokens = Math.min(Math.max(1, this.#maxRps), this.#tokens + ((now - this.#refilledAt) * this.#maxRps) / 1000);
      this.#refilledAt = now;
    }
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Writes one record (after any drops not yet reported); false when it was dropped for a slow reader. */
  #write(record: object): boolean {
    if (this.#res.writableLength > MAX_BUFFERED || this.#res.destroyed) {
      this.#dropped.slowReader++;
      this.#later();
      return false;
    }
    this.#reportDrops();
    this.#res.write(`${JSON.stringify(record)}\n`);
    return true;
  }

  /** A `dropped` record with the totals, when they changed since the last one. */
  #reportDrops(): void {
    const d = this.#dropped;
    if (d.rateLimited === this.#reported.rateLimited && d.slowReader === this.#reported.slowReader) return;
    this.#reported.rateLimited = d.rateLimited;
    this.#reported.slowReader = d.slowReader;
    this.#res.write(`${JSON.stringify({ type: 'dropped', rateLimited: d.rateLimited, slowReader: d.slowReader })}\n`);
  }

  /** Reports drops within a second (of the mesh's clock) even when no event comes to carry them. */
  #later(): void {
    if (this.#timer !== undefined || this.#ended) return;
    this.#timer = this.#clock.setTimer(() => {
      this.#timer = undefined;
      if (this.#ended || this.#res.writableLength > MAX_BUFFERED) return;
      this.#reportDrops();
    }, 1000);
  }

  /** The first line: what this stream is. */
  start(workload: string): void {
    this.#res.write(`${JSON.stringify({ type: 'start', workload, maxRps: this.#maxRps, filter: this.#filter })}\n`);
  }

  /** Ends the stream (the mesh is closing), with the drops not yet reported; resolves once it is written out. */
  finish(reason: string): Promise<void> {
    this.stop();
    const res = this.#res;
    if (res.destroyed || res.writableEnded) return Promise.resolve();
    this.#reportDrops();
    return new Promise((resolve) => {
      res.once('close', resolve);
      res.end(`${JSON.stringify({ type: 'closed', reason })}\n`, resolve);
    });
  }

  /** Stops writing (the client went away, or the stream is ending). */
  stop(): void {
    this.#ended = true;
    this.#timer?.clear();
    this.#timer = undefined;
  }
}
