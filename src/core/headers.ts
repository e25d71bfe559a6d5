/**
 * Header normalisation shared by adapters: every form a client library uses becomes one
 * object with lower-cased names that the exchange owns.
 *
 * @module
 */
import type { Headers } from './handler.ts';

/**
 * The request's header object: nothing inherited (its prototype is an empty object with no
 * prototype), but made by a constructor, so V8 keeps it in fast mode — `Object.create(null)`
 * objects are dictionaries, slower to fill and to list (undici lists the headers of every
 * request it sends).
 */
function HeaderBag(): void {}
HeaderBag.prototype = Object.create(null);

/** An empty header object in fast mode that inherits nothing (see HeaderBag): for per-call header objects. */
export function newHeaders<T = Headers>(): T {
  return new (HeaderBag as unknown as new () => T)();
}

function lower(k: string): string {
  for (let i = 0; i < k.length; i++) {
    const c = k.charCodeAt(i);
    if (c >= 65 && c <= 90) return k.toLowerCase();
  }
  return k;
}

function put(out: Headers, k: string, v: unknown): void {
  if (v === undefined || v === null) return;
  const name = lower(k);
  const val = Array.isArray(v) ? v.map(String) : String(v);
  const cur = out[name];
  if (cur === undefined) out[name] = val;
  else if (typeof cur === 'string') out[name] = [cur, ...(Array.isArray(val) ? val : [val])];
  else cur.push(...(Array.isArray(val) ? val : [val]));
}

/**
 * Copies undici's header forms (object, flat array, pairs, iterable) into a lower-cased object.
 * The object inherits nothing (see HeaderBag): a header named `constructor`, `__proto__`
 * or `toString` is a header like any other.
 */
export function normalizeHeaders(h: unknown): Headers {
  const out = newHeaders();
  if (h == null) return out;
  if (Array.isArray(h)) {
    if (h.length > 0 && Array.isArray(h[0])) for (const [k, v] of h as [string, unknown][]) put(out, k, v);
    else for (let i = 0; i + 1 < h.length; i += 2) put(out, String(h[i]), h[i + 1]);
    return out;
  }
  if (typeof (h as Iterable<unknown>)[Symbol.iterator] === 'function' && !(h.constructor === Object)) {
    for (const [k, v] of h as Iterable<[string, unknown]>) put(out, k, v);
    return out;
  }
  const o = h as Record<string, unknown>;
  for (const k in o) put(out, k, o[k]);
  return out;
}


/** Lower-cases the names of a plain header object into a new object. */
export function normalizeHeaderObject(h: Readonly<Record<string, string | readonly string[]>>): Headers {
  return normalizeHeaders(h);
}
