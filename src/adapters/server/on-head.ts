/**
 * What the mesh does to a response when its head is written — the app's own headers, set with
 * `setHeader` or passed to `writeHead` (an object in any letter case, a flat raw list, or a list
 * of pairs; Fastify passes all of its reply's there):
 *
 * 1. the app's hop-by-hop headers taken off (hop-by-hop.ts: Envoy's `mutateResponseHeaders`;
 *    a 101 keeps its `connection` and `upgrade`), once the request is the app's;
 * 2. headers added after the app's (an external authorizer's `headersToDownstreamOnAllow`,
 *    rate-limit headers), as Envoy appends them (`addCopy`: a `set-cookie` of the app's and one
 *    of the authorizer's are two lines);
 * 3. one header set over the app's (Istio's `proxyHeaders.server.value`: Envoy's
 *    `server_header_transformation: OVERWRITE`), on the mesh's own answers too.
 *
 * One hook per response, whatever of the three it does: `writeHead` replaced once by a shared
 * function — not a closure per step wrapped around the last (three closures and three argument
 * lists per request). The common plans (strip, `server`, both) have a hook of their own shared by
 * every response: the response gains its `writeHead` property and nothing else; any other plan
 * is kept beside the response.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HOP_BY_HOP, isHopByHopName, namesUpgrade, UPGRADE_HOP_BY_HOP } from '../../core/hop-by-hop.ts';
import { responseChannels } from '../../core/observe-response.ts';
import { SERVICE_TIME_HEADER } from '../../core/upstream-service-time.ts';
import { requestTimed, serviceTime } from './service-time.ts';

type AddedHeaders = Readonly<Record<string, string | readonly string[]>>;

/** A response's plan (made at the first step asked of it that no shared hook covers). */
interface OnHead {
  /** The `writeHead` the hook replaced (node's, or a wrapper someone installed before it). */
  readonly writeHead: ServerResponse['writeHead'];
  strip: boolean;
  /** Writes `x-envoy-upstream-service-time` (since the request's end: service-time.ts). */
  timed: boolean;
  add: AddedHeaders | undefined;
  overName: string | undefined;
  overValue: string;
}

/** Told of a response head as it is written: its status, the names of its headers (lower-cased) and its `grpc-status`, if any. */
export type HeadSeen = (status: number, names: string[], grpcStatus: string | undefined) => void;

const kOnHead = Symbol('meshlet.onHead');
type Res = ServerResponse & { [kOnHead]?: OnHead };

/** What a shared hook does (kept on the hook itself). */
interface SharedState {
  readonly strip: boolean;
  readonly timed: boolean;
  readonly overName: string | undefined;
  readonly overValue: string;
}
const kShared = Symbol('meshlet.sharedHead');
type SharedHook = ServerResponse['writeHead'] & { [kShared]: SharedState };

/**
 * The hooks of the common plans — strip, overwrite one header, or both — shared by every
 * response whose `writeHead` is still its prototype's: one own property per response (`writeHead`)
 * and no plan object. A response with another wrapper already installed, headers to add, or a
 * watcher gets a plan of its own ({@link planOf}).
 */
const sharedHooks = new Map<string, SharedHook>();

function sharedHook(strip: boolean, timed: boolean, overName: string | undefined, overValue: string): SharedHook {
  const key = `${strip ? 's' : '-'}${timed ? 't' : '-'}${overName === undefined ? '' : `${overName}\n${overValue}`}`;
  let hook = sharedHooks.get(key);
  if (hook === undefined) {
    const state: SharedState = { strip, timed, overName, overValue };
    hook = function sharedOnHead(this: ServerResponse, status: number, a?: unknown, b?: unknown): ServerResponse {
      const writeHead = (Object.getPrototypeOf(this) as ServerResponse).writeHead;
      this.writeHead = writeHead;
      // biome-ignore lint/complexity/noArguments: how many were given, without a rest list per response
      return run(this, writeHead, state.strip, state.timed, undefined, state.overName, state.overValue, status, arguments.length, a, b);
    } as SharedHook;
    hook[kShared] = state;
    sharedHooks.set(key, hook);
  }
  return hook;
}

/** The shared hook's state when `res.writeHead` is one, undefined otherwise. */
function sharedStateOf(res: ServerResponse): SharedState | undefined {
  return (res.writeHead as Partial<SharedHook>)[kShared];
}

/** True when `res.writeHead` is its prototype's (nobody wrapped it on this response). */
function unwrapped(res: ServerResponse): boolean {
  return !Object.hasOwn(res, 'writeHead');
}

const NOTHING: SharedState = { strip: false, timed: false, overName: undefined, overValue: '' };

/**
 * Gives the response the shared hook of its plan with `strip` (when given) or the overwrite of
 * `overName` (when given) added; false when it cannot have one (a plan of its own, or a
 * `writeHead` someone else wrapped), and the plan is to change instead.
 */
function toShared(res: ServerResponse, strip: boolean | undefined, timed: boolean | undefined, overName: string | undefined, overValue: string): boolean {
  const now = sharedStateOf(res) ?? ((res as Res)[kOnHead] === undefined && unwrapped(res) ? NOTHING : undefined);
  if (now === undefined) return false;
  res.writeHead = overName === undefined ? sharedHook(strip ?? now.strip, timed ?? now.timed, now.overName, now.overValue) : sharedHook(strip ?? now.strip, timed ?? now.timed, overName, overValue);
  return true;
}

function planOf(res: Res): OnHead {
  let p = res[kOnHead];
  if (p === undefined) {
    const shared = sharedStateOf(res);
    if (shared !== undefined) p = { writeHead: (Object.getPrototypeOf(res) as ServerResponse).writeHead, strip: shared.strip, timed: shared.timed, add: undefined, overName: shared.overName, overValue: shared.overValue };
    else p = { writeHead: res.writeHead, strip: false, timed: false, add: undefined, overName: undefined, overValue: '' };
    res[kOnHead] = p;
    res.writeHead = onHead as ServerResponse['writeHead'];
  }
  return p;
}

/** Takes the app's hop-by-hop headers off its response when the head is written (installed once the request is the app's, so the mesh's own answers — a denial's `connection: close` — keep theirs). */
export function stripHopByHopOnHead(res: ServerResponse): void {
  if (!toShared(res, true, undefined, undefined, '')) planOf(res).strip = true;
}

/**
 * The request is the app's now: its hop-by-hop headers come off its response head
 * ({@link stripHopByHopOnHead}) and, when `timed` (Istio's `proxyHeaders.envoyDebugHeaders` not
 * disabled), the head gets `x-envoy-upstream-service-time`, replacing the app's own — as the
 * inbound sidecar's router writes it on the app's response (source/common/router/router.cc
 * `Filter::onUpstreamHeaders`, `setEnvoyUpstreamServiceTime`; istiod's inbound router has
 * `suppress_envoy_headers` only when the debug headers are disabled:
 * pilot/pkg/networking/core/listener_inbound.go): the ms from the end of the request to the head
 * (service-time.ts). Timed with `performance.now()`, as the inbound deadlines are; the time
 * is kept on the request's `meshlet` (made for it anyway), not on the response.
 */
export function admittedOnHead(res: ServerResponse, timed: boolean): void {
  if (timed) requestTimed((res as { req?: IncomingMessage }).req);
  if (toShared(res, true, timed || undefined, undefined, '')) return;
  const p = planOf(res);
  p.strip = true;
  if (timed) p.timed = true;
}

/** Adds `headers` to the response when its head is written, after whatever the app set. */
export function addOnHead(res: ServerResponse, headers: AddedHeaders): void {
  const p = planOf(res);
  if (p.add === undefined) p.add = headers;
  else {
    // Asked twice: both sets, in order.
    const both: Record<string, string[]> = {};
    for (const h of [p.add, headers]) for (const [k, v] of Object.entries(h)) both[k] = [...(both[k] ?? []), ...lines(v)];
    p.add = both;
  }
}

/** Sets `name` to `value` on the response when its head is written, replacing whatever the app set. */
export function overwriteOnHead(res: ServerResponse, name: string, value: string): void {
  if (toShared(res, undefined, undefined, name, value)) return;
  const p = planOf(res);
  p.overName = name;
  p.overValue = value;
}

/**
 * Who is told of each response's head (`meshlet:inbound:response`), kept aside rather than in
 * the plan: a field there would cost every response's plan its bytes while nobody listens.
 */
const watchers = new WeakMap<ServerResponse, HeadSeen>();

/** Tells `seen` of the response head when it is written (the app's, or the mesh's own answer); only while `meshlet:inbound:response` has subscribers. */
export function seeHead(res: ServerResponse, seen: HeadSeen): void {
  planOf(res);
  watchers.set(res, seen);
}

function onHead(this: Res, status: number, a?: unknown, b?: unknown): ServerResponse {
  const p = this[kOnHead] as OnHead;
  this.writeHead = p.writeHead;
  // biome-ignore lint/complexity/noArguments: how many were given, without a rest list per response
  return run(this, p.writeHead, p.strip, p.timed, p.add, p.overName, p.overValue, status, arguments.length, a, b);
}

/** The plan's steps on the head `writeHead(status, a, b)` (`count`: how many arguments were given), then the replaced `writeHead`. */
function run(res: ServerResponse, writeHead: ServerResponse['writeHead'], strip: boolean, timed: boolean, add: AddedHeaders | undefined, overName: string | undefined, overValue: string, status: number, count: number, a: unknown, b: unknown): ServerResponse {
  // writeHead(status, headers), writeHead(status, statusMessage, headers), or any third argument
  // given (node's writeHead reads its headers there whenever it is not null: `obj ??= reason`).
  const third = typeof a === 'string' || (count > 2 && b != null);
  const given = third ? b : a;
  let out = given;
  if (strip) out = stripped(res, status, out);
  if (add !== undefined) out = added(res, add, out);
  if (timed) {
    const v = serviceTime(res);
    // None before the request is complete (a premature answer).
    if (v !== undefined) out = overwritten(res, SERVICE_TIME_HEADER, v, out);
  }
  if (overName !== undefined) out = overwritten(res, overName, overValue, out);
  // What is written: the headers set on the response and those given here (node merges them in writeHead).
  if (responseChannels.inbound.hasSubscribers) {
    const w = watchers.get(res);
    if (w !== undefined) seen(res, w, status, out);
  }
  const call = writeHead as (this: ServerResponse, ...x: unknown[]) => ServerResponse;
  // The arguments as given, the headers among them replaced when a step changed them.
  if (third) return call.call(res, status, a, out !== given ? out : b);
  if (out !== given) return call.call(res, status, out);
  if (count <= 1) return call.call(res, status);
  return count === 2 ? call.call(res, status, a) : call.call(res, status, a, b);
}

function seen(res: ServerResponse, fn: HeadSeen, status: number, given: unknown): void {
  const names = new Set(res.getHeaderNames());
  if (given !== null && typeof given === 'object') {
    if (!Array.isArray(given)) for (const k of Object.keys(given)) names.add(k.toLowerCase());
    else if (given.length > 0 && Array.isArray(given[0])) for (const pair of given as unknown[][]) names.add(String(pair[0]).toLowerCase());
    else for (let i = 0; i + 1 < given.length; i += 2) names.add(String(given[i]).toLowerCase());
  }
  let grpc: string | undefined;
  if (names.has('grpc-status')) {
    const v = res.getHeader('grpc-status') ?? headerIn(given, 'grpc-status');
    grpc = v === undefined ? undefined : String(v);
  }
  fn(status, [...names], grpc);
}

function headerIn(given: unknown, name: string): unknown {
  if (given === null || typeof given !== 'object') return undefined;
  if (!Array.isArray(given)) {
    for (const k of Object.keys(given)) if (k.toLowerCase() === name) return (given as Record<string, unknown>)[k];
    return undefined;
  }
  if (given.length > 0 && Array.isArray(given[0])) return (given as unknown[][]).find((pair) => String(pair[0]).toLowerCase() === name)?.[1];
  for (let i = 0; i + 1 < given.length; i += 2) if (String(given[i]).toLowerCase() === name) return given[i + 1];
  return undefined;
}

/** Removed from an upgrade's answer (a 101, or any answer to an upgrade request that is an upgrade by its headers): all but its `connection` and `upgrade`. */
const ON_UPGRADE = UPGRADE_HOP_BY_HOP;

/**
 * Whether the request asked for an upgrade (`connection` naming it, and `upgrade`: its own are
 * left on an upgrade request, hop-by-hop.ts) and the answer, whatever its status, is one by its
 * headers: Envoy keeps such an answer's `connection` and `upgrade`
 * (source/common/http/conn_manager_utility.cc `mutateResponseHeaders`:
 * `Utility::isUpgrade(*request_headers) && Utility::isUpgrade(response_headers)`). A request
 * without `upgrade` — nearly all — costs one property read.
 */
function upgradeAnswer(res: ServerResponse, given: unknown): boolean {
  const req = (res as { req?: IncomingMessage }).req;
  if (req?.headers.upgrade === undefined || !namesUpgrade(req.headers.connection)) return false;
  return headerOf(res, given, 'upgrade') !== undefined && namesUpgrade(headerOf(res, given, 'connection'));
}

/** A response header as the head will have it: `writeHead`'s own over what was set with `setHeader` (node merges them so). */
function headerOf(res: ServerResponse, given: unknown, name: string): unknown {
  return headerIn(given, name) ?? res.getHeader(name);
}

function stripped(res: ServerResponse, status: number, given: unknown): unknown {
  let names = HOP_BY_HOP;
  if (status === 101) names = ON_UPGRADE;
  else if (upgradeAnswer(res, given)) {
    names = ON_UPGRADE;
    // Envoy gives an upgrade answer with no framing of its own `content-length: 0` unless it is a
    // 1xx (`no_body && !is_1xx`; "we ignore 204 because this is an upgrade"). node:http frames
    // every other answer itself (content-length or chunked): those it leaves unframed are a 204,
    // a 304 and the answer to a HEAD.
    if ((status === 204 || status === 304 || (res as { req?: IncomingMessage }).req?.method === 'HEAD') && headerOf(res, given, 'content-length') === undefined) given = overwritten(res, 'content-length', '0', given);
  }
  for (const n of names) if (res.hasHeader(n)) res.removeHeader(n);
  if (given === null || typeof given !== 'object') return given;
  if (!Array.isArray(given)) {
    let any = false;
    for (const k in given) if (isHopByHopName(k, names)) any = true;
    if (!any) return given;
    // A copy: the app's own object left as it was.
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(given)) if (!isHopByHopName(k, names)) out[k] = (given as Record<string, unknown>)[k];
    return out;
  }
  if (given.length > 0 && Array.isArray(given[0])) return given.filter((pair: unknown[]) => !isHopByHopName(String(pair[0]), names));
  const out: unknown[] = [];
  for (let i = 0; i + 1 < given.length; i += 2) if (!isHopByHopName(String(given[i]), names)) out.push(given[i], given[i + 1]);
  return out;
}

function added(res: ServerResponse, headers: AddedHeaders, given: unknown): unknown {
  // A list of pairs: the lines go after the app's, in the list — node:http takes a list of pairs
  // only while nothing was set with setHeader (it throws on one otherwise).
  if (Array.isArray(given) && given.length > 0 && Array.isArray(given[0])) return [...given, ...Object.entries(headers).flatMap(([k, v]) => lines(v).map((x) => [k, x]))];
  const obj = given !== null && typeof given === 'object' && !Array.isArray(given) ? { ...(given as Record<string, number | string | string[]>) } : undefined;
  for (const [k, v] of Object.entries(headers)) {
    const inObj = obj === undefined ? undefined : Object.keys(obj).find((n) => n.toLowerCase() === k);
    if (obj !== undefined && inObj !== undefined) obj[inObj] = [...lines(obj[inObj] as string), ...lines(v)];
    else {
      const had = res.getHeader(k);
      res.setHeader(k, had === undefined ? v : [...lines(had), ...lines(v)]);
    }
  }
  return obj ?? given;
}

function overwritten(res: ServerResponse, name: string, value: string, given: unknown): unknown {
  if (Array.isArray(given)) {
    // A list of pairs, or a raw list [name, value, name, value, …]: the app's lines of `name` dropped, the mesh's added.
    if (given.length > 0 && Array.isArray(given[0])) return [...given.filter((pair: unknown[]) => String(pair[0]).toLowerCase() !== name), [name, value]];
    const out: unknown[] = [];
    for (let i = 0; i + 1 < given.length; i += 2) if (String(given[i]).toLowerCase() !== name) out.push(given[i], given[i + 1]);
    out.push(name, value);
    return out;
  }
  if (given === null || typeof given !== 'object') {
    res.setHeader(name, value);
    return given;
  }
  // writeHead's own headers: the header goes into a copy of them (the app's object left as it
  // was). Set with setHeader instead, it would put node's writeHead on its slow path — every
  // header of the object through setHeader — for a response the app set nothing on before.
  if (res.hasHeader(name)) res.removeHeader(name);
  const obj: Record<string, unknown> = {};
  for (const k in given) if (!(k.length === name.length && k.toLowerCase() === name)) obj[k] = (given as Record<string, unknown>)[k];
  obj[name] = value;
  return obj;
}

/** One header's value as a list of lines. */
function lines(v: number | string | readonly string[]): string[] {
  return typeof v === 'number' ? [String(v)] : typeof v === 'string' ? [v] : [...v];
}
