/**
 * The start of an inbound request's body, read before the app runs (an external authorizer's
 * `includeRequestBodyInCheck`) and put back, so the app reads the body whole as if nothing had
 * touched it.
 *
 * As Envoy's `ext_authz` buffers (`with_request_body`): a request whose headers end it (no
 * `content-length` above 0, no `transfer-encoding`) has no body to wait for; otherwise the body is
 * read until it ends — or, with `allowPartial`, until `max` bytes are in. Without `allowPartial` a
 * body over `max` bytes is too large (Envoy answers 413 and never asks the authorizer).
 *
 * The bytes are read from the stream as they come and, in the same turn as the last read,
 * unshifted back in one piece: before the stream can emit `'end'`, so the app's `'data'`
 * listeners, `pipe()` or body parser see every byte, then the end. The stream then reads as
 * unread again (`readableDidRead`, `stream.isDisturbed()` false, as before the mesh read it):
 * readers that refuse a body someone already read — Hono's node adapter answers 500 "Body is
 * unusable" — take it as the app's own.
 *
 * @module
 */
import type { Readable } from 'node:stream';

/** A request body as node:http gives it: `IncomingMessage` (`complete` once the whole message arrived). */
export type BodyStream = Readable & { readonly complete?: boolean };

/** What was read: the bytes (at most `max`), whether the body has more, how many bytes came; or that it is over `max` (no partial message allowed). */
export type BufferedBody = { readonly bytes: Buffer; readonly partial: boolean; readonly received: number } | 'too-large';

/** The request's headers say it has a body (HTTP/1.1: `transfer-encoding`, or `content-length` above 0). */
export function hasBody(headers: Readonly<Record<string, string | readonly string[] | undefined>>): boolean {
  if (headers['transfer-encoding'] !== undefined) return true;
  const cl = headers['content-length'];
  const v = typeof cl === 'string' ? cl : cl?.[0];
  return v !== undefined && /^\s*\d+\s*$/.test(v) && Number(v) > 0;
}

/**
 * Reads the body's start (see the module notes). Rejects when the stream fails or closes first
 * (the caller went away).
 */
export function bufferBody(stream: BodyStream, max: number, allowPartial: boolean): Promise<BufferedBody> {
  const unread = !stream.readableDidRead;
  return new Promise<BufferedBody>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    const stop = (): void => {
      stream.removeListener('readable', onReadable);
      stream.removeListener('error', onError);
      stream.removeListener('close', onClose);
      stream.removeListener('end', onEnd);
    };
    const onError = (err: Error): void => {
      stop();
      reject(err);
    };
    const onClose = (): void => {
      stop();
      reject(new Error('the request closed before its body arrived'));
    };
    // Only a stream whose 'end' came before any read (nothing here to put back) ends this way.
    const onEnd = (): void => {
      stop();
      resolve({ bytes: Buffer.concat(chunks, n), partial: false, received: n });
    };
    function onReadable(): void {
      let c: unknown = stream.read();
      while (c !== null) {
        const b = typeof c === 'string' ? Buffer.from(c) : (c as Buffer);
        chunks.push(b);
        n += b.length;
        c = stream.read();
      }
      const complete = stream.complete === true;
      if (!complete && !(allowPartial ? n >= max : n > max)) return;
      stop();
      const all = Buffer.concat(chunks, n);
      // Back into the stream for the app, in this same turn (before the stream's 'end').
      if (n > 0) stream.unshift(all);
      if (unread) markUnread(stream);
      if (!allowPartial && n > max) resolve('too-large');
      else resolve({ bytes: n > max ? all.subarray(0, max) : all, partial: n > max, received: n });
    }
    stream.on('readable', onReadable);
    stream.on('error', onError);
    stream.on('close', onClose);
    stream.on('end', onEnd);
  });
}

/**
 * `readableDidRead` is the stream state's `dataEmitted` flag, which `read()` sets and nothing
 * public clears (Node ≥ 20 keeps it behind a settable accessor of `_readableState`).
 */
function markUnread(stream: Readable): void {
  const state = (stream as { _readableState?: { dataEmitted?: boolean } })._readableState;
  if (state !== undefined && state.dataEmitted === true) state.dataEmitted = false;
}

/**
 * The body as Envoy puts it in a check's `body` text (`MessageUtil::sanitizeUtf8String`): UTF-8,
 * each byte that is not part of a well-formed sequence replaced by `!` (the length stays).
 */
export function sanitizeUtf8(bytes: Buffer): string {
  let out: Buffer | undefined;
  let i = 0;
  while (i < bytes.length) {
    const len = validSequenceAt(bytes, i);
    if (len > 0) {
      i += len;
      continue;
    }
    out ??= Buffer.from(bytes);
    out[i] = 0x21;
    i++;
  }
  return (out ?? bytes).toString('utf8');
}

/** The length of the well-formed UTF-8 sequence at `i` (RFC 3629: no overlongs, surrogates or code points above U+10FFFF), 0 when there is none. */
function validSequenceAt(b: Buffer, i: number): number {
  const c = b[i] as number;
  if (c < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean => i + k < b.length && (b[i + k] as number) >= lo && (b[i + k] as number) <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c === 0xee || c === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}
