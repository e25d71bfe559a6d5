/**
 * Request bodies that can be sent more than once. Retries replay a body only if every byte
 * sent so far is still held, and it is held only up to a cap: strings and buffers are free
 * to replay; a stream is recorded as it is sent, and once it passes the cap the request is
 * no longer retried. A body is never replayed after the response started streaming.
 *
 * @module
 */

/** No chunks recorded (shared, never added to: a body makes its own list with its first chunk). */
const NO_CHUNKS: Uint8Array[] = Object.freeze([]) as unknown as Uint8Array[];

/** ReplayableBody's bits: the body outgrew the cap (no longer replayable). */
const OVERFLOW = 1;
/** The caller's source was read to its end. */
const ENDED = 2;
/** The caller's source was closed ({@link ReplayableBody.dispose}). */
const DISPOSED = 4;
/** The source is read ahead of the attempts ({@link ReplayableBody.readAhead}). */
const READING_AHEAD = 8;
/**
 * The body outgrew the cap while read ahead: the recorded chunks are kept for the attempt that
 * sends them, which then streams the rest straight through.
 */
const PREFIX_KEPT = 16;

/**
 * Told once a streamed body has been read to its end by the attempt sending it (Envoy's
 * end-of-stream of the request): the route timeout and the per-try timeout start then.
 */
export interface BodySentListener {
  bodySent(): void;
}

/** A streamed body recorded as it is sent, so a retry can send it again. */
export class ReplayableBody {
  readonly #source: AsyncIterator<unknown>;
  readonly #cap: number;
  /** The recorded chunks: made with the first one (a gRPC MessageBody, which records its own messages, never makes it). */
  #chunks: Uint8Array[] = NO_CHUNKS;
  #bytes = 0;
  /**
   * OVERFLOW, ENDED, DISPOSED: one field rather than three booleans (a gRPC call's body is one
   * of these: fewer bytes to allocate and to touch per call).
   */
  #bits = 0;
  /** A pull from the source in progress (shared, so two attempts never pull the same chunk twice). */
  #pulling: Promise<IteratorResult<unknown>> | undefined;
  /** Waiting for the whole body ({@link ReplayableBody.whenComplete}). */
  #onComplete: ((bytes: Buffer | undefined) => void)[] | undefined;
  /** The error the caller's source failed with, once it did (a failure of the caller's making). */
  #sourceError: unknown = undefined;
  /**
   * Told when the source ends ({@link ReplayableBody.deferUntilSent}): two slots, as a route and
   * a per-try timeout may both wait (no list made per call), then a list for more (attempts retried
   * while the body still streams).
   */
  #sent: BodySentListener | undefined = undefined;
  #sentMore: BodySentListener | BodySentListener[] | undefined = undefined;

  /** What the caller passed (a stream, a generator, …), closed by {@link ReplayableBody.dispose}. */
  readonly #origin: AsyncIterable<unknown>;

  constructor(source: AsyncIterable<unknown>, capBytes: number) {
    this.#origin = source;
    this.#source = source[Symbol.asyncIterator]();
    this.#cap = capBytes;
  }

  /**
   * The call is over: close the caller's source if it was not read to the end (the mesh answered
   * itself, the call failed or was cancelled), as undici closes a body it will not send. A
   * stream is destroyed (its file descriptor, its socket) and keeps a no-op error listener, so an
   * error it reports later cannot crash the process; other iterators are asked to `return()`.
   */
  dispose(): void {
    if ((this.#bits & (ENDED | DISPOSED)) !== 0) return;
    this.#bits |= DISPOSED;
    this.#sent = undefined;
    this.#sentMore = undefined;
    this.#complete(false);
    const o = this.#origin as { on?: (e: string, f: () => void) => unknown; destroy?: () => unknown };
    if (typeof o.on === 'function') o.on('error', noop);
    if (typeof o.destroy === 'function') {
      o.destroy();
      return;
    }
    try {
      void this.#source.return?.()?.catch?.(noop);
    } catch {
      // an iterator whose return() throws: nothing more to close
    }
  }

  /** True while the caller's source is still to be read to its end (a timer may wait for it: {@link ReplayableBody.deferUntilSent}). */
  get streaming(): boolean {
    return (this.#bits & (ENDED | DISPOSED)) === 0 && this.#sourceError === undefined;
  }

  /**
   * Whether `listener` waits for the body's end: true when the caller's source is still being
   * read (the listener is told once an attempt has read it to its end, never if the call ends
   * first), false when it has ended already (the request is sent as soon as it is dispatched)
   * or the body cannot tell (a subclass that streams otherwise).
   */
  deferUntilSent(listener: BodySentListener): boolean {
    if (!this.streaming) return false;
    const more = this.#sentMore;
    if (this.#sent === undefined) this.#sent = listener;
    else if (more === undefined) this.#sentMore = listener;
    else if (Array.isArray(more)) more.push(listener);
    else this.#sentMore = [more, listener];
    return true;
  }

  /**
   * True while the caller has not ended a request whose route timeout was queued at once rather
   * than made to wait ({@link ReplayableBody.streaming} false): a gRPC call's messages. A route
   * timeout that comes then waits for the end instead ({@link ReplayableBody.deferUntilEnded}).
   */
  get endPending(): boolean {
    return false;
  }

  /** When the caller ended a request {@link ReplayableBody.endPending} was true for (a gRPC half-close; mesh clock), else -1. */
  get endedAt(): number {
    return -1;
  }

  /**
   * Whether `listener` (a route timeout) waits for the caller's end of the request: as
   * {@link ReplayableBody.deferUntilSent} here (the source read ahead, {@link ReplayableBody.readAhead},
   * its end is known as soon as the caller ends it); a body the caller ends otherwise says so.
   */
  deferUntilEnded(listener: BodySentListener): boolean {
    return this.deferUntilSent(listener);
  }

  /**
   * Reads the caller's source ahead of the attempts, up to the cap, as a sidecar reads the app's
   * request whatever its upstream is doing: the end of a body that fits is known (and the route
   * timeout starts) while the attempt still waits for a connection. A body over the cap is read
   * ahead up to it; the attempt sending it streams the rest.
   */
  readAhead(): void {
    if ((this.#bits & (ENDED | OVERFLOW | DISPOSED | READING_AHEAD)) !== 0) return;
    this.#bits |= READING_AHEAD;
    void this.#readAhead();
  }

  async #readAhead(): Promise<void> {
    while ((this.#bits & (ENDED | OVERFLOW | DISPOSED)) === 0) {
      const p = this.#pull();
      let r: IteratorResult<unknown>;
      try {
        r = await p;
      } catch (err) {
        // An attempt reading the same pull reports it; a disposed body's source fails as it closes.
        if ((this.#bits & DISPOSED) === 0) {
          this.#sourceError ??= err;
          this.#complete(false);
        }
        break;
      }
      // An attempt awaiting the same pull took it first: it is recorded (or streamed) there.
      if (this.#pulling !== p || (this.#bits & DISPOSED) !== 0) continue;
      this.#pulling = undefined;
      if (r.done) {
        this.#end();
        break;
      }
      let c: Uint8Array;
      try {
        c = this.#bytesOf(r.value);
      } catch {
        // The attempt reading next reports it (#iterate rethrows the source's error).
        break;
      }
      this.#bytes += c.byteLength;
      if (this.#chunks === NO_CHUNKS) this.#chunks = [c];
      else this.#chunks.push(c);
      if (this.#bytes > this.#cap) {
        // Over the cap: no longer replayable; what was read is kept for the attempt to send.
        this.#bits |= OVERFLOW | PREFIX_KEPT;
        this.#complete(false);
      }
    }
    this.#bits &= ~READING_AHEAD;
  }

  /** The source was read to its end with every byte recorded: the body is whole, and who waits for its end is told. */
  #end(): void {
    this.#bits |= ENDED;
    this.#complete(true);
    this.#tellSent();
  }

  /** The source ended: tell who waits for it. */
  #tellSent(): void {
    const first = this.#sent;
    if (first === undefined) return;
    const more = this.#sentMore;
    this.#sent = undefined;
    this.#sentMore = undefined;
    first.bodySent();
    if (more === undefined) return;
    if (Array.isArray(more)) for (let i = 0; i < more.length; i++) (more[i] as BodySentListener).bodySent();
    else more.bodySent();
  }

  /** True while every byte read so far is held (a retry may replay it). */
  get replayable(): boolean {
    return (this.#bits & OVERFLOW) === 0;
  }

  /** True once the caller's source failed: the attempt failed of the caller's making, not the upstream's. */
  get sourceFailed(): boolean {
    return this.#sourceError !== undefined;
  }

  /** The largest body kept for replay (bytes). */
  get capBytes(): number {
    return this.#cap;
  }

  /** Bytes read from the caller's source so far (recorded, or streamed straight through past the cap). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Messages the caller wrote, for a body that frames them (a gRPC call's); undefined for a plain byte stream. */
  get messages(): number | undefined {
    return undefined;
  }

  /**
   * Resolves with the whole body once an attempt has read it to the end while every byte was
   * still held, or with `undefined` when it outgrew the cap or the source failed. It never
   * pulls from the source itself (mirroring uses it, so a copy never slows the primary call).
   */
  whenComplete(): Promise<Buffer | undefined> {
    if ((this.#bits & ENDED) !== 0) return Promise.resolve((this.#bits & OVERFLOW) !== 0 ? undefined : Buffer.concat(this.#chunks));
    if ((this.#bits & OVERFLOW) !== 0) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.#onComplete ??= [];
      this.#onComplete.push(resolve);
    });
  }

  /**
   * What a mirrored copy of the call sends, once the whole body is known (same rules as
   * {@link ReplayableBody.whenComplete}; `undefined`: not mirrored): by default the body's bytes.
   * A body that is more than bytes (a gRPC call's messages) gives its own.
   */
  forCopy(): Promise<unknown> {
    return this.whenComplete();
  }

  #complete(ok: boolean): void {
    const waiting = this.#onComplete;
    if (waiting === undefined) return;
    this.#onComplete = undefined;
    const bytes = ok ? Buffer.concat(this.#chunks) : undefined;
    for (const w of waiting) w(bytes);
  }

  /** A fresh iterable for one attempt: the recorded bytes, then the rest of the source. */
  attempt(): AsyncIterable<Uint8Array> {
    // biome-ignore lint/complexity/noUselessThisAlias: the generator needs the instance
    const self = this;
    return {
      [Symbol.asyncIterator]: () => self.#iterate(),
    };
  }

  async *#iterate(): AsyncGenerator<Uint8Array> {
    let i = 0;
    for (;;) {
      if (i < this.#chunks.length) {
        yield this.#chunks[i++] as Uint8Array;
        continue;
      }
      if ((this.#bits & ENDED) !== 0) return;
      if ((this.#bits & PREFIX_KEPT) !== 0) {
        // Read ahead past the cap: this attempt sent what was read, the rest streams straight through.
        this.#bits &= ~PREFIX_KEPT;
        this.#chunks = NO_CHUNKS;
        yield* this.#rest();
        return;
      }
      if ((this.#bits & OVERFLOW) !== 0) throw new Error('request body exceeded the retry buffer and cannot be replayed');
      // The source failed while read ahead: the attempt fails with the source's error, as plain undici's would.
      if (this.#sourceError !== undefined) throw this.#sourceError;
      const p = this.#pull();
      let r: IteratorResult<unknown>;
      try {
        r = await p;
      } catch (err) {
        this.#sourceError ??= err;
        this.#complete(false);
        throw err;
      }
      if (this.#pulling === p) {
        this.#pulling = undefined;
        if (r.done) {
          this.#end();
          return;
        }
        const c = this.#bytesOf(r.value);
        this.#bytes += c.byteLength;
        if (this.#bytes > this.#cap) {
          this.#bits |= OVERFLOW;
          this.#chunks = NO_CHUNKS;
          this.#complete(false);
          i = 0;
          yield c;
          yield* this.#rest();
          return;
        }
        if (this.#chunks === NO_CHUNKS) this.#chunks = [c];
        else this.#chunks.push(c);
      }
    }
  }

  /** From here the body streams straight through (it can no longer be replayed). */
  async *#rest(): AsyncGenerator<Uint8Array> {
    for (;;) {
      let n: IteratorResult<unknown>;
      try {
        n = await this.#source.next();
      } catch (err) {
        this.#sourceError ??= err;
        throw err;
      }
      if (n.done) {
        this.#bits |= ENDED;
        this.#tellSent();
        return;
      }
      const c = this.#bytesOf(n.value);
      // Not recorded, but counted: telemetry reports every byte the caller sent (%BYTES_RECEIVED%).
      this.#bytes += c.byteLength;
      yield c;
    }
  }

  /** The source's next chunk, shared by whoever reads it first (read-ahead, an attempt): one pull at a time. */
  #pull(): Promise<IteratorResult<unknown>> {
    let p = this.#pulling;
    if (p === undefined) {
      p = this.#source.next();
      // Awaited by the reader; if it is abandoned first, the rejection must not go unhandled.
      p.catch(noop);
      this.#pulling = p;
    }
    return p;
  }

  /** A chunk of the caller's source as bytes; one that is neither is the source's failure (the caller's, as from plain undici). */
  #bytesOf(v: unknown): Uint8Array {
    try {
      return toBytes(v);
    } catch (err) {
      this.#sourceError ??= err;
      this.#complete(false);
      throw err;
    }
  }
}

function noop(): void {}

function toBytes(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'string') return Buffer.from(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  throw new TypeError(`request body chunks must be strings or bytes, got ${typeof v}`);
}

/** True when the call's body is a stream whose source (the caller's) failed. */
export function bodySourceFailed(body: unknown): boolean {
  return body instanceof ReplayableBody && body.sourceFailed;
}
