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
 * function, the plan kept beside it — not a closure per step wrapped around the last (three
 * closures and three argument lists per request).
 *
 * @module
 */
import type { ServerResponse } from 'node:http';
import { HOP_BY_HOP, isHopByHopName } from '../../core/hop-by-hop.ts';
import { responseChannels } from '../../core/observe-response.ts';

type AddedHeaders = Readonly<Record<string, string | readonly string[]>>;

/** A response's plan (made at the first step asked of it). */
interface OnHead {
  /** The `writeHead` the hook replaced (node's, or a wrapper someone installed before it). */
  readonly writeHead: ServerResponse['writeHead'];
  strip: boolean;
  add: AddedHeaders | undefined;
  overName: string | undefined;
  overValue: string;
}

/** Told of a response head as it is written: its status, the names of its headers (lower-cased) and its `grpc-status`, if any. */
export type HeadSeen = (status: number, names: string[], grpcStatus: string | undefined) => void;

const kOnHead = Symbol('meshlet.onHead');
type Res = ServerResponse & { [kOnHead]?: OnHead };

function planOf(res: Res): OnHead {
  let p = res[kOnHead];
  if (p === undefined) {
    p = { writeHead: res.writeHead, strip: false, add: undefined, overName: undefined, overValue: '' };
    res[kOnHead] = p;
    res.writeHead = onHead as ServerResponse['writeHead'];
  }
  return p;
}

/** Takes the app's hop-by-hop headers off its response when the head is written (installed once the request is the app's, so the mesh's own answers — a denial's `connection: close` — keep theirs). */
export function stripHopByHopOnHead(res: ServerResponse): void {
  planOf(res).strip = true;
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

function onHead(this: Res, status: number, ...rest: unknown[]): ServerResponse {
  const p = this[kOnHead] as OnHead;
  this.writeHead = p.writeHead;
  const at = typeof rest[0] === 'string' ? 1 : 0;
  const given = rest[at];
  let out = given;
  if (p.strip) out = stripped(this, status, out);
  if (p.add !== undefined) out = added(this, p.add, out);
  if (p.overName !== undefined) out = overwritten(this, p.overName, p.overValue, out);
  if (out !== given) rest[at] = out;
  // What is written: the headers set on the response and those given here (node merges them in writeHead).
  if (responseChannels.inbound.hasSubscribers) {
    const w = watchers.get(this);
    if (w !== undefined) seen(this, w, status, out);
  }
  return (p.writeHead as (this: ServerResponse, ...a: unknown[]) => ServerResponse).call(this, status, ...rest);
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

/** Removed from an upgrade's answer (101): all but its `connection` and `upgrade`. */
const ON_UPGRADE = HOP_BY_HOP.filter((n) => n !== 'connection' && n !== 'upgrade');

function stripped(res: ServerResponse, status: number, given: unknown): unknown {
  const names = status === 101 ? ON_UPGRADE : HOP_BY_HOP;
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
  res.setHeader(name, value);
  if (given === null || typeof given !== 'object') return given;
  let any = false;
  for (const k in given) if (k.length === name.length && k.toLowerCase() === name) any = true;
  if (!any) return given;
  const obj = { ...(given as Record<string, unknown>) };
  for (const k of Object.keys(obj)) if (k.toLowerCase() === name) delete obj[k];
  return obj;
}

/** One header's value as a list of lines. */
function lines(v: number | string | readonly string[]): string[] {
  return typeof v === 'number' ? [String(v)] : typeof v === 'string' ? [v] : [...v];
}
