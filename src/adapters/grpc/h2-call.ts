/**
 * One attempt's HTTP/2 stream: the request as grpc-js writes it (its headers, 5-byte framed
 * messages, the half-close), and the answer as grpc-js reads it (`Http2SubchannelCall` and its
 * compression filter, grpc-js 1.14): response metadata without `grpc-encoding` /
 * `grpc-accept-encoding`, messages unframed (and inflated off the event loop, h2-inflate.ts), the status from
 * the trailers (or a trailers-only head) with `grpc-message` percent-decoded, an HTTP status
 * without `grpc-status` mapped as grpc-js maps it, and a stream that ends without one — reset
 * by the server (RST_STREAM), refused, dropped with its connection — as the status grpc-js
 * makes up for it, marked local (classify.ts tells its kind).
 *
 * Messages are handed over one per `startRead()`, as grpc-js's calls do: while one waits the
 * stream is paused (HTTP/2 flow control holds the server), and an OK status comes after the
 * last message was read.
 *
 * A mirrored copy's answer is thrown away ({@link DISCARD_MESSAGES}): its messages are neither
 * kept nor inflated, and its stream flows until its status.
 *
 * @module
 */
import * as http2 from 'node:http2';
import type { Metadata, StatusObject } from '@grpc/grpc-js';
import type { FailureKind } from '../../core/outcome.ts';
import type { GrpcJs } from './grpc-js.ts';
import { type InflateFailure, inflateMessage } from './h2-inflate.ts';
import { closedStatus, frame, type H2Listener, httpStatusCode, INTERNAL, OK, plainMetadata, plainStatus, RESOURCE_EXHAUSTED, statusDetails, UNAVAILABLE, UNKNOWN } from './h2-status.ts';

export { frame, type H2Listener } from './h2-status.ts';

/** `maxReceive` of a stream whose messages nobody reads (a mirror's): their bytes are dropped as they come. */
export const DISCARD_MESSAGES = Number.NEGATIVE_INFINITY;

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM } = http2.constants;

/** The stream flags of the call. */
const CAN_PUSH = 1;
const READS_CLOSED = 2;
const STATUS_OUT = 4;
const SERVER_ENDED = 8;

/** Where a stream's call is kept (the stream's handlers are shared: H2Call's static ones). */
const CALL = Symbol('meshlet.grpc.h2call');
type CallStream = http2.ClientHttp2Stream & { [CALL]: H2Call };

/** One attempt's stream, and the framing and status mapping of grpc-js around it. */
export class H2Call {
  readonly #g: GrpcJs;
  readonly #stream: http2.ClientHttp2Stream;
  readonly #listener: H2Listener;
  /** The connection dropped under it (its streams then end `Connection dropped`, as grpc-js's do). */
  readonly #conn: { readonly dropped: boolean };
  #bits = 0;
  #http = 0;
  /** `grpc-encoding` of the response ('' identity). */
  #encoding = '';
  #final: StatusObject | undefined;
  #failure: FailureKind | undefined;
  /** Decoded messages not pushed yet (the caller has not asked). */
  #unpushed: Buffer[] | undefined;
  /** While a compressed message inflates (on zlib's thread pool): the messages that came after it, in order (flag, body). */
  #inflating: [number, Buffer][] | undefined;
  /** A message split across DATA frames: its bytes so far (prefix included), and how many it has. */
  #partial: Buffer | undefined;
  #have = 0;
  #internalError: (Error & { code?: string }) | undefined;
  /** The largest response message the caller takes (-1: any; another negative: none, as grpc-js; DISCARD_MESSAGES: none is read). */
  readonly #maxReceive: number;

  constructor(g: GrpcJs, stream: http2.ClientHttp2Stream, listener: H2Listener, conn: { readonly dropped: boolean }, maxReceive = -1) {
    this.#g = g;
    this.#maxReceive = maxReceive;
    this.#stream = stream;
    this.#listener = listener;
    this.#conn = conn;
    // One set of handlers for every stream (no closures per call): each finds its call on the stream.
    (stream as CallStream)[CALL] = this;
    stream.on('response', H2Call.#onResponse);
    stream.on('trailers', H2Call.#onTrailers);
    stream.on('data', H2Call.#onData);
    stream.on('end', H2Call.#onEnd);
    stream.on('error', H2Call.#onError);
    stream.on('close', H2Call.#onClose);
  }

  static readonly #onResponse = function (this: CallStream, headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, flags: number): void {
    this[CALL].#response(headers, flags);
  };

  static readonly #onTrailers = function (this: CallStream, headers: http2.IncomingHttpHeaders): void {
    this[CALL].#trailers(headers);
  };

  static readonly #onData = function (this: CallStream, chunk: Buffer): void {
    this[CALL].#data(chunk);
  };

  static readonly #onEnd = function (this: CallStream): void {
    const c = this[CALL];
    c.#bits |= READS_CLOSED;
    c.#maybeOutput();
  };

  static readonly #onError = function (this: CallStream, err: Error & { code?: string }): void {
    // A reset the server sent comes as the close's rstCode; another error says why the stream broke.
    if (err.code !== 'ERR_HTTP2_STREAM_ERROR') this[CALL].#internalError = err;
  };

  static readonly #onClose = function (this: CallStream): void {
    // An OK status has nothing to wait for; another waits a tick, as grpc-js's does, for the
    // connection's close to be seen (its streams then end `Connection dropped`).
    const c = this[CALL];
    if (c.#final?.code !== OK) process.nextTick(H2Call.#closedLater, c);
  };

  static #closedLater(c: H2Call): void {
    c.#closed();
  }

  // ── the request ──

  /** Writes a message (framed); `cb` once the stream took it. */
  write(message: Buffer, cb: () => void): void {
    try {
      this.#stream.write(frame(message), (err?: Error | null) => {
        if (err !== null && err !== undefined) this.#end({ code: (err as { code?: string }).code === 'ERR_STREAM_WRITE_AFTER_END' ? INTERNAL : UNAVAILABLE, details: `Write error: ${err.message}`, metadata: new this.#g.Metadata() }, 'reset');
        cb();
      });
    } catch (err) {
      this.#end({ code: UNAVAILABLE, details: `Write failed with error ${(err as Error).message}`, metadata: new this.#g.Metadata() }, 'reset');
    }
  }

  /** The half-close. */
  halfClose(): void {
    const s = this.#stream;
    if (!s.destroyed && !s.writableEnded) s.end();
  }

  /** Cancels the stream (RST_STREAM CANCEL); its status is not delivered. */
  cancel(): void {
    this.#bits |= STATUS_OUT;
    this.#unpushed = undefined;
    this.#destroyStream(false);
  }

  /** The caller reads one more message. */
  startRead(): void {
    if (this.#final !== undefined && this.#final.code !== OK) {
      this.#bits |= READS_CLOSED;
      this.#maybeOutput();
      return;
    }
    this.#bits |= CAN_PUSH;
    const next = this.#unpushed?.shift();
    if (next !== undefined) {
      this.#push(next);
      return;
    }
    if (this.#inflating === undefined) this.#stream.resume();
  }

  // ── the answer ──

  #response(headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, flags: number): void {
    this.#http = headers[':status'] ?? 0;
    if ((flags & NGHTTP2_FLAG_END_STREAM) !== 0) {
      this.#trailers(headers);
      return;
    }
    const plain = plainMetadata(headers, this.#g);
    if (plain !== undefined) {
      const enc = headers['grpc-encoding'];
      if (typeof enc === 'string') this.#encoding = enc === 'identity' ? '' : enc;
      if ((this.#bits & STATUS_OUT) === 0) this.#listener.onReceiveMetadata(plain);
      return;
    }
    let md: Metadata;
    try {
      md = this.#g.Metadata.fromHttp2Headers(headers);
    } catch (err) {
      this.#end({ code: UNKNOWN, details: (err as Error).message, metadata: new this.#g.Metadata() }, 'protocol');
      return;
    }
    // grpc-js's compression filter: the encoding is the call's business, not the caller's metadata.
    const enc = md.get('grpc-encoding')[0];
    if (typeof enc === 'string') this.#encoding = enc === 'identity' ? '' : enc;
    md.remove('grpc-encoding');
    md.remove('grpc-accept-encoding');
    if ((this.#bits & STATUS_OUT) === 0) this.#listener.onReceiveMetadata(md);
  }

  #trailers(headers: http2.IncomingHttpHeaders): void {
    this.#bits |= SERVER_ENDED;
    const g = this.#g;
    const plain = plainStatus(headers, g);
    if (plain !== undefined) {
      this.#end(plain, undefined);
      return;
    }
    let md: Metadata;
    try {
      md = g.Metadata.fromHttp2Headers(headers);
    } catch {
      md = new g.Metadata();
    }
    const code = md.get('grpc-status')[0];
    let status: StatusObject;
    if (typeof code === 'string') {
      md.remove('grpc-status');
      let details = '';
      const message = md.get('grpc-message')[0];
      if (typeof message === 'string') {
        details = statusDetails(message);
        md.remove('grpc-message');
      }
      status = { code: Number(code), details, metadata: md };
    } else if (this.#http !== 0 && this.#http !== 200) {
      status = { code: httpStatusCode(this.#http), details: `Received HTTP status code ${this.#http}`, metadata: md };
    } else status = { code: UNKNOWN, details: 'No status information received', metadata: md };
    this.#end(status, undefined);
  }

  #data(chunk: Buffer): void {
    if ((this.#bits & STATUS_OUT) !== 0 || this.#maxReceive === DISCARD_MESSAGES) return;
    let at = 0;
    while (at < chunk.length) {
      let p = this.#partial;
      if (p === undefined) {
        // Most messages come whole in one DATA frame.
        if (chunk.length - at >= 5) {
          const len = chunk.readUInt32BE(at + 1);
          if (this.#tooLarge(len)) return;
          if (chunk.length - at >= 5 + len) {
            this.#message(chunk[at] as number, Buffer.from(chunk.subarray(at + 5, at + 5 + len)));
            at += 5 + len;
            continue;
          }
        }
        p = Buffer.allocUnsafe(5);
        this.#partial = p;
        this.#have = 0;
      }
      // The prefix first, then (once its length is known) the message.
      if (this.#have < 5) {
        const n = Math.min(5 - this.#have, chunk.length - at);
        chunk.copy(p, this.#have, at, at + n);
        this.#have += n;
        at += n;
        if (this.#have < 5) return;
        if (this.#tooLarge(p.readUInt32BE(1))) return;
        const whole = Buffer.allocUnsafe(5 + p.readUInt32BE(1));
        p.copy(whole, 0, 0, 5);
        this.#partial = p = whole;
      }
      const n = Math.min(p.length - this.#have, chunk.length - at);
      chunk.copy(p, this.#have, at, at + n);
      this.#have += n;
      at += n;
      if (this.#have === p.length) {
        this.#partial = undefined;
        this.#message(p[0] as number, p.subarray(5));
      }
    }
  }

  /** A message declared larger than the caller takes: refused at its prefix (the listener cancels the call), nothing more of the stream read. */
  #tooLarge(length: number): boolean {
    const max = this.#maxReceive;
    // Only -1 means any: grpc-js's decoder refuses every message under another negative limit (stream-decoder.js: `max !== -1 && size > max`).
    if (max === -1 || length <= max) return false;
    this.#refuse(`Received message larger than max (${length} vs ${max})`);
    return true;
  }

  #refuse(details: string): void {
    this.#partial = undefined;
    this.#listener.onMessageTooLarge(details);
    // A listener that did not cancel: the call ends with the status grpc-js gives it.
    if ((this.#bits & STATUS_OUT) === 0) this.#end({ code: RESOURCE_EXHAUSTED, details, metadata: new this.#g.Metadata() }, 'protocol');
  }

  /** A whole message: inflated as its encoding says (off the event loop, as grpc-js does), then pushed or kept for the next read, in order. */
  #message(flag: number, body: Buffer): void {
    const q = this.#inflating;
    if (q !== undefined) {
      // One inflates: this one waits its turn, and so does the stream.
      q.push([flag, body]);
      this.#stream.pause();
      return;
    }
    if (flag !== 1) this.#decoded(body);
    else this.#inflate(body, []);
  }

  #inflate(body: Buffer, after: [number, Buffer][]): void {
    this.#inflating = after;
    inflateMessage(this.#encoding, body, this.#maxReceive, (failure, m) => this.#inflated(failure, m));
  }

  #inflated(failure: InflateFailure | undefined, m: Buffer | undefined): void {
    if ((this.#bits & STATUS_OUT) !== 0) {
      this.#inflating = undefined;
      return;
    }
    if (failure !== undefined) {
      this.#inflating = undefined;
      if (failure.tooLarge) this.#refuse(failure.details);
      else this.#end({ code: failure.code, details: failure.details, metadata: new this.#g.Metadata() }, 'protocol');
      return;
    }
    this.#decoded(m as Buffer);
    // The messages that came meanwhile, in order, up to the next compressed one.
    const q = this.#inflating as [number, Buffer][];
    for (let next = q.shift(); next !== undefined; next = q.shift()) {
      if (next[0] === 1) {
        this.#inflate(next[1], q);
        return;
      }
      this.#decoded(next[1]);
    }
    this.#inflating = undefined;
    if ((this.#bits & STATUS_OUT) !== 0) return;
    // An OK status that waited for it goes out once it is read; the stream reads on unless a message waits for the caller.
    if (this.#unpushed === undefined || this.#unpushed.length === 0) this.#stream.resume();
    this.#maybeOutput();
  }

  #decoded(m: Buffer): void {
    if ((this.#bits & CAN_PUSH) !== 0 && (this.#unpushed === undefined || this.#unpushed.length === 0)) {
      this.#push(m);
      return;
    }
    // Not asked for yet: it waits, and so does the stream (HTTP/2 flow control holds the server).
    if (this.#unpushed === undefined) this.#unpushed = [m];
    else this.#unpushed.push(m);
    this.#stream.pause();
  }

  #push(m: Buffer): void {
    this.#bits &= ~CAN_PUSH;
    if ((this.#bits & STATUS_OUT) !== 0) return;
    this.#listener.onReceiveMessage(m);
    this.#maybeOutput();
  }

  /** The stream closed: the status grpc-js makes up for one that ended without its own, and its kind. */
  #closed(): void {
    this.#bits |= SERVER_ENDED;
    if (this.#final?.code === OK) return;
    const r = closedStatus(this.#stream.rstCode ?? NGHTTP2_NO_ERROR, this.#http, this.#conn.dropped, this.#final !== undefined, this.#internalError);
    if (r !== undefined) this.#end({ code: r.code, details: r.details, metadata: new this.#g.Metadata() }, r.kind);
  }

  /** The call's status (the first, or one that replaces an OK one not yet delivered); the stream is let go. */
  #end(status: StatusObject, failure: FailureKind | undefined): void {
    if (this.#final === undefined || (this.#final.code === OK && (this.#bits & STATUS_OUT) === 0)) {
      this.#final = status;
      this.#failure = failure;
      this.#maybeOutput();
    }
    this.#destroyStream(true);
  }

  #maybeOutput(): void {
    const f = this.#final;
    if (f === undefined || (this.#bits & STATUS_OUT) !== 0) return;
    if (f.code === OK && ((this.#bits & READS_CLOSED) === 0 || (this.#unpushed !== undefined && this.#unpushed.length > 0) || this.#inflating !== undefined)) return;
    this.#bits |= STATUS_OUT;
    this.#unpushed = undefined;
    this.#inflating = undefined;
    // Whatever else comes is drained, so the stream's close completes.
    this.#stream.resume();
    this.#listener.onReceiveStatus(f, this.#failure);
  }

  /** Lets the stream go: half-closed when the server ended it, else reset (CANCEL; NO_ERROR after an OK status). */
  #destroyStream(answered: boolean): void {
    const s = this.#stream;
    if (s.destroyed) return;
    if ((this.#bits & SERVER_ENDED) !== 0) {
      if (!s.writableEnded) s.end();
      return;
    }
    if (!answered || this.#final === undefined || s.closed) {
      if (!s.closed) s.close(NGHTTP2_CANCEL);
      return;
    }
    s.close(this.#final.code === OK ? NGHTTP2_NO_ERROR : NGHTTP2_CANCEL);
  }
}
