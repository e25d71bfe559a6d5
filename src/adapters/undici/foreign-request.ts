/**
 * A WHATWG `Request` made by another copy of undici — Node's global `Request`, an app's own
 * undici — is not an instance of the `Request` class of the undici meshlet's `mesh.fetch` runs
 * on, and that fetch would read it as a string (`"[object Request]"`). {@link asOwnRequest}
 * rebuilds it as one of ours, with every field fetch reads (its body stream is taken over, not
 * copied). A `FormData` of another copy (Node's global one) in `init.body` would be sent as the
 * text `"[object FormData]"` the same way: {@link asOwnFormData} rebuilds it as ours.
 *
 * @module
 */
import { FormData as UndiciFormData, Request as UndiciRequest } from 'undici';
import { isFormDataLike } from '../../core/call-body.ts';

/** The fields of a WHATWG Request that fetch reads. */
interface RequestLike {
  readonly url: string;
  readonly method: string;
  readonly headers: Iterable<[string, string]>;
  readonly body: ReadableStream<Uint8Array> | null;
  readonly bodyUsed: boolean;
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

/**
 * `r` as a Request of the undici `mesh.fetch` runs on. With `replacedBody` (fetch's `init.body`
 * takes the place of `r`'s) its body is left alone, as fetch leaves it — a body already read is
 * then no error; without, a body already read is the `TypeError` fetch gives for it.
 */
export function asOwnRequest(r: RequestLike, replacedBody = false): UndiciRequest {
  const body = replacedBody ? null : r.body;
  if (body !== null && (r.bodyUsed || body.locked)) throw new TypeError('Cannot construct a Request with a Request object that has already been used.');
  return new UndiciRequest(r.url, {
    method: r.method,
    headers: [...r.headers],
    body,
    redirect: r.redirect,
    signal: r.signal,
    referrer: r.referrer === 'about:client' ? undefined : r.referrer,
    referrerPolicy: r.referrerPolicy,
    mode: r.mode,
    credentials: r.credentials,
    cache: r.cache,
    integrity: r.integrity,
    keepalive: r.keepalive,
    ...(body === null ? {} : { duplex: 'half' as const }),
  } as ConstructorParameters<typeof UndiciRequest>[1]);
}

/**
 * Whether a fetch body is a FormData of another undici copy (Node's global `FormData`), which
 * the undici `mesh.fetch` runs on would send as `"[object FormData]"`. Callers check
 * `typeof body === 'object'` first.
 */
export function isForeignFormData(body: object | null): body is FormData {
  return body !== null && isFormDataLike(body) && !(body instanceof UndiciFormData);
}

/** `fd` as a FormData of the undici `mesh.fetch` runs on: the same entries, files with their names and types. */
export function asOwnFormData(fd: FormData): UndiciFormData {
  const out = new UndiciFormData();
  for (const [name, value] of fd.entries()) {
    if (typeof value === 'string') out.append(name, value);
    else out.append(name, value, (value as File).name);
  }
  return out;
}
