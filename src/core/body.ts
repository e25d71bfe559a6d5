/**
 * Request bodies that can be sent more than once. Retries replay a body only if every byte
 * sent so far is still held, and it is held only up to a cap: strings and buffers are free
 * to replay; a stream is recorded as it is sent, and once it passes the cap the request is
 * no longer retried. A body is never replayed after the response started streaming.
 *
 * @module
 */

/** A streamed body recorded as it is sent, so a retry can send it again. */
export class ReplayableBody {
  readonly #source: AsyncIterator<unknown>;
  readonly #cap: number;
  readonly #chunks: Uint8Array[] = [];
  #bytes = 0;
  #overflow = false;
  #ended = false;
  /** A pull from the source in progress (shared, so two attempts never pull the same chunk twice). */
  #pulling: Promise<IteratorResult<unknown>> | undefined;
  /** Waiting for the whole body ({@link ReplayableBody.whenComplete}). */
  #onComplete: ((bytes: Buffer | undefined) => void)[] | undefined;

  constructor(source: AsyncIterable<unknown>, capBytes: number) {
    this.#source = source[Symbol.asyncIterator]();
    this.#cap = capBytes;
  }

  /** True while every byte read so far is held (a retry may replay it). */
  get replayable(): boolean {
    return !this.#overflow;
  }

  /** Bytes recorded so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Resolves with the whole body once an attempt has read it to the end while every byte was
   * still held, or with `undefined` when it outgrew the cap or the source failed. It never
   * pulls from the source itself (mirroring uses it, so a copy never slows the primary call).
   */
  whenComplete(): Promise<Buffer | undefined> {
    if (this.#ended) return Promise.resolve(this.#overflow ? undefined : Buffer.concat(this.#chunks));
    if (this.#overflow) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.#onComplete ??= [];
      this.#onComplete.push(resolve);
    });
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
      if (this.#ended) return;
      if (this.#overflow) throw new Error('request body exceeded the retry buffer and cannot be replayed');
      this.#pulling ??= this.#source.next();
      const p = this.#pulling;
      let r: IteratorResult<unknown>;
      try {
        r = await p;
      } catch (err) {
        this.#complete(false);
        throw err;
      }
      if (this.#pulling === p) {
        this.#pulling = undefined;
        if (r.done) {
          this.#ended = true;
          this.#complete(true);
          return;
        }
        const c = toBytes(r.value);
        this.#bytes += c.byteLength;
        if (this.#bytes > this.#cap) {
          this.#overflow = true;
          this.#chunks.length = 0;
          this.#complete(false);
          i = 0;
          yield c;
          // From here the body streams straight through: it can no longer be replayed.
          for (;;) {
            const n = await this.#source.next();
            if (n.done) {
              this.#ended = true;
              return;
            }
            yield toBytes(n.value);
          }
        }
        this.#chunks.push(c);
      }
    }
  }
}

function toBytes(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'string') return Buffer.from(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  throw new TypeError(`request body chunks must be strings or bytes, got ${typeof v}`);
}

/** True for bodies that can be sent again as they are (none, strings, bytes). */
export function isStaticBody(body: unknown): boolean {
  return body == null || typeof body === 'string' || body instanceof Uint8Array || ArrayBuffer.isView(body);
}

/** True when `body` is something a retry can replay (static, or a recorded stream still under its cap). */
export function canReplay(body: unknown): boolean {
  return body instanceof ReplayableBody ? body.replayable : isStaticBody(body);
}

/** What to hand the transport for one attempt. */
export function bodyForAttempt(body: unknown): unknown {
  return body instanceof ReplayableBody ? body.attempt() : body;
}
