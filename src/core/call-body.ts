/**
 * The body a call keeps, from what an undici caller passed: strings and bytes as they are, and
 * everything undici would stream (streams, sync and async iterables, Blobs) as a
 * {@link ReplayableBody}, so retries can replay it and mirrors copy it.
 *
 * @module
 */
import { ReplayableBody } from './body.ts';
import { capStatic } from './replay.ts';

/** A Blob or File (of any copy of the classes, as undici's isBlobLike tells). */
function isBlobLike(body: object): body is Blob {
  const tag = (body as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag];
  return (tag === 'Blob' || tag === 'File') && typeof (body as Blob).stream === 'function';
}

/** A FormData (of any copy of the class): undici encodes it itself; it is iterable, but not a body's chunks. */
export function isFormDataLike(body: object): boolean {
  return (body as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag] === 'FormData' && typeof (body as FormData).entries === 'function';
}

/** A sync iterable's chunks as an async iterable (what {@link ReplayableBody} reads). */
function fromSync(body: Iterable<unknown>): AsyncIterable<unknown> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<unknown> {
      const it = body[Symbol.iterator]();
      return {
        next: () => Promise.resolve(it.next()),
        return: () => Promise.resolve(it.return?.() ?? { done: true, value: undefined }),
      };
    },
  };
}

/**
 * The body a call keeps, from what an undici caller passed (undici accepts strings, bytes,
 * ArrayBuffers, streams, sync and async iterables, Blobs and FormData): what a retry can replay
 * and a mirror can copy. Strings, bytes and none are kept as they are (an ArrayBuffer as a
 * Buffer over the same memory), unless larger than `capBytes` (then sent once: `OversizedBody`); a stream, an async or sync iterable, or a Blob (read through
 * its stream, with the `content-length` and `content-type` undici would send for it) is
 * recorded as it is sent ({@link ReplayableBody}); anything else (FormData) goes to undici as
 * it is. `headers` are the call's, lower-cased.
 */
export function callBody(body: unknown, headers: Record<string, unknown>, capBytes: number): unknown {
  if (typeof body === 'string') return capStatic(body, capBytes);
  if (body == null || typeof body !== 'object') return body;
  if (ArrayBuffer.isView(body)) return capStatic(body, capBytes);
  if (body instanceof ArrayBuffer) return capStatic(Buffer.from(body), capBytes);
  if (typeof (body as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') return new ReplayableBody(body as AsyncIterable<unknown>, capBytes);
  if (isBlobLike(body)) {
    // What undici sends for a Blob: its size as content-length, its type unless the caller set one.
    if (headers['content-length'] === undefined) headers['content-length'] = String(body.size);
    if (headers['content-type'] === undefined && body.type !== '') headers['content-type'] = body.type;
    return new ReplayableBody(body.stream() as unknown as AsyncIterable<unknown>, capBytes);
  }
  if (typeof (body as Iterable<unknown>)[Symbol.iterator] === 'function' && !isFormDataLike(body)) return new ReplayableBody(fromSync(body as Iterable<unknown>), capBytes);
  return body;
}
