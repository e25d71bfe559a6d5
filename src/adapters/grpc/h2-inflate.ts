/**
 * A compressed response message inflated as grpc-js's compression filter inflates it (1.14): on
 * zlib's thread pool, not on the event loop, and no further than the caller's receive limit
 * (`grpc.max_receive_message_length`), so a small message that inflates to gigabytes costs at
 * most the limit and ends the call `RESOURCE_EXHAUSTED` with grpc-js's words.
 *
 * @module
 */
import { constants as bufferConstants } from 'node:buffer';
import { gunzip, inflate } from 'node:zlib';
import { INTERNAL, RESOURCE_EXHAUSTED } from './h2-status.ts';

/** Why a message was not inflated: the status the call ends with (`tooLarge`: past the limit, refused as an oversized message is). */
export interface InflateFailure {
  readonly code: number;
  readonly details: string;
  readonly tooLarge: boolean;
}

/** Inflates `body` (`enc`: the response's `grpc-encoding`, '' for identity) to at most `max` bytes (-1: any); `done` is called once, on a later turn. */
export function inflateMessage(enc: string, body: Buffer, max: number, done: (failure: InflateFailure | undefined, message?: Buffer) => void): void {
  if (enc !== 'gzip' && enc !== 'deflate') {
    const details = enc === '' ? 'Received compressed message but "grpc-encoding" header was identity' : `Compression method not supported: ${enc}`;
    queueMicrotask(() => done({ code: INTERNAL, details, tooLarge: false }));
    return;
  }
  const tooLarge: InflateFailure = { code: RESOURCE_EXHAUSTED, details: `Received message that decompresses to a size larger than ${max}`, tooLarge: true };
  const cb = (err: (Error & { code?: string }) | null, m: Buffer): void => {
    // zlib's least limit is 1 byte: a limit of 0 is checked here.
    if (err === null) done(max !== -1 && m.length > max ? tooLarge : undefined, m);
    else if (err.code === 'ERR_BUFFER_TOO_LARGE') done(tooLarge);
    else done({ code: INTERNAL, details: `Failed to decompress ${enc}-encoded message`, tooLarge: false });
  };
  // Inflated no further than the caller takes (a small message may inflate to gigabytes). zlib
  // takes a limit up to the largest Buffer only (4 GiB on Node 20): a larger one bounds nothing a
  // Buffer could hold, and is left out rather than thrown out of the stream's 'data' handler.
  const options = max < 0 || max > bufferConstants.MAX_LENGTH ? {} : { maxOutputLength: Math.max(1, max) };
  if (enc === 'gzip') gunzip(body, options, cb);
  else inflate(body, options, cb);
}
