/**
 * A gRPC call's request messages as the pipeline's request body: the caller's messages as
 * they are written, recorded (each one a chunk) while they fit the replay buffer, so a retry
 * can send them again — every message of a streaming call until it outgrows the buffer.
 *
 * @module
 */
import { ReplayableBody } from '../../core/body.ts';

interface Pending {
  readonly message: Buffer;
  readonly written: (() => void) | undefined;
}

/**
 * The caller's messages, in order, ending at half-close. A write is acknowledged (grpc-js's
 * write callback, its flow control) once the mesh has taken the message for the wire.
 */
export class MessageSource implements AsyncIterableIterator<Buffer> {
  readonly #queue: Pending[] = [];
  #ended = false;
  #waiter: ((r: IteratorResult<Buffer>) => void) | undefined;
  /** Messages handed to the pipeline so far. */
  taken = 0;

  /** The caller wrote a message. */
  push(message: Buffer, written?: () => void): void {
    if (this.#ended) {
      written?.();
      return;
    }
    const w = this.#waiter;
    if (w !== undefined) {
      this.#waiter = undefined;
      this.taken++;
      w({ value: message, done: false });
      written?.();
      return;
    }
    this.#queue.push({ message, written });
  }

  /** The caller half-closed: no more messages. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#queue.length === 0) this.#finish();
  }

  #finish(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<Buffer>> {
    const p = this.#queue.shift();
    if (p !== undefined) {
      this.taken++;
      p.written?.();
      return Promise.resolve({ value: p.message, done: false });
    }
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => (this.#waiter = resolve));
  }

  /** The call is over: messages still queued are dropped (their writes acknowledged). */
  return(): Promise<IteratorResult<Buffer>> {
    this.#ended = true;
    for (const p of this.#queue.splice(0)) p.written?.();
    this.#finish();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Buffer> {
    return this;
  }
}

/** The request body of a gRPC call: replayable messages. */
export class MessageBody extends ReplayableBody {
  /**
   * A mirrored copy's request: every message of the call, in order, then the half-close (a body
   * of its own, complete before the copy is sent), once the primary call sent them all while
   * they fit the replay buffer.
   */
  override forCopy(): Promise<unknown> {
    return this.whenCompleteChunks().then((chunks) => {
      if (chunks === undefined) return undefined;
      const source = new MessageSource();
      for (const c of chunks) source.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
      source.end();
      return new MessageBody(source, Number.POSITIVE_INFINITY);
    });
  }
}
