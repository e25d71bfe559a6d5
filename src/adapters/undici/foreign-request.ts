/**
 * A WHATWG `Request` made by another copy of undici — Node's global `Request`, an app's own
 * undici — is not an instance of the `Request` class of the undici meshlet's `mesh.fetch` runs
 * on, and that fetch would read it as a string (`"[object Request]"`). {@link asOwnRequest}
 * rebuilds it as one of ours, with every field fetch reads (its body stream is taken over, not
 * copied).
 *
 * @module
 */
import { Request as UndiciRequest } from 'undici';

/** The fields of a WHATWG Request that fetch reads. */
interface RequestLike {
  readonly url: string;
  readonly method: string;
  readonly headers: Iterable<[string, string]>;
  readonly body: ReadableStream<Uint8Array> | null;
  readonly redirect: string;
  readonly signal: AbortSignal;
  readonly referrer: string;
  readonly referrerPolicy: string;
  readonly mode: string;
  readonly credentials: string;
  readonly cache: string;
  readonly integrity: string;
  readonly keepalive: boolean;
}

/** Whether `input` is a Request of another undici copy (a string, a URL or one of ours is not). */
export function isForeignRequest(input: unknown): input is RequestLike {
  return typeof input === 'object' && input !== null && !(input instanceof URL) && !(input instanceof UndiciRequest) && typeof (input as { url?: unknown }).url === 'string' && typeof (input as { method?: unknown }).method === 'string';
}

/** `r` as a Request of the undici `mesh.fetch` runs on. */
export function asOwnRequest(r: RequestLike): UndiciRequest {
  return new UndiciRequest(r.url, {
    method: r.method,
    headers: [...r.headers],
    body: r.body,
    redirect: r.redirect,
    signal: r.signal,
    referrer: r.referrer === 'about:client' ? undefined : r.referrer,
    referrerPolicy: r.referrerPolicy,
    mode: r.mode,
    credentials: r.credentials,
    cache: r.cache,
    integrity: r.integrity,
    keepalive: r.keepalive,
    ...(r.body === null ? {} : { duplex: 'half' as const }),
  } as ConstructorParameters<typeof UndiciRequest>[1]);
}
