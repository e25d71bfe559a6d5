/**
 * A gRPC call's request messages as the pipeline's request body: handed to the attempt on the wire as they are written
 * (synchronously, no async iterator between) and recorded while they fit the replay buffer, so a retry can send them again.
 *
 * It is a {@link ReplayableBody} to the layers (retries ask whether it can be replayed,
 * mirroring waits for the whole request, telemetry counts its bytes), but an attempt does not
 * iterate it: it attaches itself as the {@link MessageSink} ({@link MessageBody.attach}), gets
 * the recorded messages, then the caller's as they come, then the half-close.
 *
 * A write is acknowledged (grpc-js's write callback, its flow control) once the attempt's own
 * write of that message was (its endpoint call's callback): the caller writes no faster than
 * the connection takes its messages. A message whose attempt ended before its write was
 * acknowledged is acknowledged by the next attempt's write of it, or on a later turn once the
 * call ended (body-entry.ts).
 *
 * @module
 */
import { setImmediate } from 'node:timers';
import { type BodySentListener, ReplayableBody } from '../../core/body.ts';
import { AT_END, tellEnded } from './body-end.ts';
import { ackLater, dueOf, Entry, messageOf, NONE, type WriteAck } from './body-entry.ts';

export type { WriteAck };

/** The attempt on the wire, as the body hands it messages. */
export interface MessageSink {
  /** A message to send; `ack` acknowledges it to the caller (call it once it is written). */
  message(message: Buffer, ack: WriteAck): void;
  /** The caller half-closed: no more messages. */
  end(): void;
  /** The body cannot be sent again (it outgrew the replay buffer): the attempt fails with `err`. */
  fail(err: Error): void;
}

/** The iterator the base class is given: a MessageBody never reads it (attempts attach instead). One for every body: nothing made per call. */
const NO_ITERATOR: AsyncIterator<unknown> = Object.freeze({ next: () => Promise.resolve({ value: undefined, done: true as const }) });
const NO_SOURCE: AsyncIterable<unknown> = Object.freeze({ [Symbol.asyncIterator]: () => NO_ITERATOR });

/**
 * The request is no longer kept for replay: it outgrew the cap, or the call can no longer be
 * retried (its response started: {@link MessageBody.commit}).
 */
const OVERFLOW = 1;
/** The caller half-closed. */
const ENDED = 2;
/** The call is over (answered, failed, cancelled): nothing more is taken or sent. */
const CLOSED = 4;
/** The whole request is known (or known to be unavailable): {@link MessageBody.#completeMessages}. */
const COMPLETE = 8;
/**
 * The whole request is the recorded messages, not listed yet: no one waited for it when it
 * became complete (almost every call), so the list is made only if someone asks.
 */
const COMPLETE_RECORDED = 16;

/** The length prefix of a gRPC message on the wire (a compressed flag and a 4-byte length). */
export const PREFIX_BYTES = 5;

/** The request body of a gRPC call: the caller's messages, replayable (and mirrored) while they fit. */
export class MessageBody extends ReplayableBody {
  /**
   * Messages taken by an attempt, kept for a retry; once the request is no longer kept (OVERFLOW), those whose write is
   * still due (acknowledged by the call's end if their attempt did not; acknowledged ones leave as the next comes). Both
   * lists are made with their first message (a unary call has one; most calls never wait for an attempt).
   */
  #recorded: Entry[] = NONE;
  /** Messages written while no attempt was attached (waiting for a stream, a retry's backoff). */
  #pending: Entry[] = NONE;
  #bytes = 0;
  /** Messages taken by an attempt (the request's, each counted once). */
  #sent = 0;
  #sink: MessageSink | undefined;
  /** Waiting for the whole request ({@link MessageBody.whenComplete}, {@link MessageBody.forCopy}). */
  #onComplete: ((messages: readonly Buffer[] | undefined) => void)[] | undefined;
  #completeMessages: readonly Buffer[] | undefined;
  /** Attempts whose per-try timeout waits for the half-close to go out ({@link MessageBody.deferUntilSent}). */
  #onSent: BodySentListener[] | undefined;
  /**
   * OVERFLOW, ENDED, CLOSED, COMPLETE, COMPLETE_RECORDED: one field rather than five booleans
   * (a body is made per call: fewer bytes to allocate and to touch).
   */
  #bits = 0;
  #endedAt = -1;

  /** `capBytes`: the largest request kept for replay by retries. */
  constructor(capBytes: number) {
    super(NO_SOURCE, capBytes);
  }

  // ── the caller's side (the grpc-js call) ──

  /** The caller wrote a message; `written` acknowledges it. */
  push(message: Buffer, written?: () => void): void {
    if ((this.#bits & (CLOSED | ENDED)) !== 0) {
      // The call is over: the write is dropped, and acknowledged on a later turn (not inside the caller's write).
      if (written !== undefined) {
        if ((this.#bits & CLOSED) !== 0) setImmediate(written);
        else written();
      }
      return;
    }
    const e = new Entry(message, written);
    const sink = this.#sink;
    if (sink === undefined) {
      if (this.#pending === NONE) this.#pending = [e];
      else this.#pending.push(e);
      return;
    }
    this.#take(e);
    sink.message(message, e);
  }

  /** The caller half-closed. */
  end(at = -1): void {
    if ((this.#bits & (CLOSED | ENDED)) !== 0) return;
    this.#bits |= ENDED;
    this.#endedAt = at;
    if (this.#onSent !== undefined) tellEnded(this.#onSent);
    const sink = this.#sink;
    if (sink !== undefined && this.#pending.length === 0) {
      this.#settle();
      sink.end();
      this.#requestSent();
    }
  }

  /** The call is over: messages not sent are dropped, every write still due is acknowledged (on a later turn). */
  close(): void {
    if ((this.#bits & CLOSED) !== 0) return;
    this.#bits |= CLOSED;
    this.#sink = undefined;
    this.#onSent = undefined;
    this.#resolve(undefined);
    ackLater(dueOf(this.#pending));
    this.#pending = NONE;
    ackLater(dueOf(this.#recorded));
    // Kept while they are the whole request, as it was when complete (a later forCopy lists them).
    if ((this.#bits & COMPLETE_RECORDED) === 0) this.#recorded = NONE;
  }

  // ── the attempt's side ──

  /**
   * An attempt is on the wire: it gets the recorded messages, the ones waiting, then the
   * caller's as they are written, and the half-close. One attempt at a time is attached.
   */
  attach(sink: MessageSink): void {
    if ((this.#bits & CLOSED) !== 0) return;
    if ((this.#bits & OVERFLOW) !== 0) {
      sink.fail(new Error('request body exceeded the retry buffer and cannot be replayed'));
      return;
    }
    this.#sink = sink;
    const recorded = this.#recorded;
    for (let i = 0; i < recorded.length && this.#sink === sink; i++) {
      const e = recorded[i] as Entry;
      sink.message(e.message, e);
    }
    while (this.#pending.length > 0 && this.#sink === sink) {
      const e = this.#pending.shift() as Entry;
      this.#take(e);
      sink.message(e.message, e);
    }
    if ((this.#bits & ENDED) !== 0 && this.#sink === sink) {
      this.#settle();
      sink.end();
      this.#requestSent();
    }
  }

  /** The attempt left the wire (the messages it did not acknowledge stay due, for the next one or the call's end). */
  detach(sink: MessageSink): void {
    if (this.#sink === sink) this.#sink = undefined;
  }

  /**
   * The call can no longer be retried: its response started (Envoy's router drops its retry
   * state at the upstream's response headers, and buffers no more of the request for it). The
   * messages kept for replay are let go and the ones to come are not kept, so a long stream
   * holds none of them — unless a mirror waits for the whole request (a shadow keeps Envoy
   * buffering too), which keeps them to the replay buffer's cap.
   */
  commit(): void {
    if ((this.#bits & (OVERFLOW | CLOSED)) !== 0 || this.#onComplete !== undefined) return;
    this.#noReplay();
  }

  /** From here the request streams straight through: it can no longer be replayed (nor mirrored). */
  #noReplay(): void {
    this.#bits = (this.#bits | OVERFLOW) & ~COMPLETE_RECORDED;
    this.#recorded = dueOf(this.#recorded);
    this.#resolve(undefined);
  }

  /** Keeps `e` (taken while the request is not kept) until its write is acknowledged; lets go of the ones that were. */
  #keepDue(e: Entry): void {
    const list = this.#recorded;
    if (list === NONE) {
      if (e.due) this.#recorded = [e];
      return;
    }
    let done = 0;
    while (done < list.length && !(list[done] as Entry).due) done++;
    if (done > 0) list.splice(0, done);
    if (e.due) list.push(e);
  }

  /** Bytes of the caller's messages the body holds (for a retry, or a write still due). */
  get heldBytes(): number {
    let n = 0;
    for (let i = 0; i < this.#recorded.length; i++) n += (this.#recorded[i] as Entry).message.byteLength;
    for (let i = 0; i < this.#pending.length; i++) n += (this.#pending[i] as Entry).message.byteLength;
    return n;
  }

  #take(e: Entry): void {
    this.#bytes += e.message.byteLength;
    this.#sent++;
    if ((this.#bits & OVERFLOW) !== 0) {
      this.#keepDue(e);
      return;
    }
    if (this.#bytes > this.capBytes) {
      this.#noReplay();
      this.#keepDue(e);
      return;
    }
    if (this.#recorded === NONE) this.#recorded = [e];
    else this.#recorded.push(e);
  }

  /** Every message was taken and the caller half-closed: the whole request is known. */
  #settle(): void {
    if ((this.#bits & COMPLETE) !== 0) return;
    if (this.#onComplete === undefined && (this.#bits & OVERFLOW) === 0) {
      // No one waits for the whole request: it is listed if someone asks (#whenMessages).
      this.#bits |= COMPLETE | COMPLETE_RECORDED;
      return;
    }
    this.#resolve((this.#bits & OVERFLOW) !== 0 ? undefined : this.#recorded.map(messageOf));
  }

  #resolve(messages: readonly Buffer[] | undefined): void {
    if ((this.#bits & COMPLETE) !== 0) return;
    this.#bits |= COMPLETE;
    this.#completeMessages = messages;
    const waiting = this.#onComplete;
    if (waiting === undefined) return;
    this.#onComplete = undefined;
    for (const w of waiting) w(messages);
  }

  /** The call's messages once the whole request is known; `undefined`: it outgrew the replay buffer or ended first. */
  #whenMessages(): Promise<readonly Buffer[] | undefined> {
    if ((this.#bits & COMPLETE) !== 0) return Promise.resolve((this.#bits & COMPLETE_RECORDED) !== 0 ? this.#recorded.map(messageOf) : this.#completeMessages);
    return new Promise((resolve) => {
      this.#onComplete ??= [];
      this.#onComplete.push(resolve);
    });
  }

  // ── what the layers ask of a replayable body ──

  override get replayable(): boolean {
    return (this.#bits & OVERFLOW) === 0;
  }

  /** The request's bytes as they go on the wire: each message sent and its 5-byte gRPC prefix (telemetry's request size). */
  override get bytes(): number {
    return this.#bytes + PREFIX_BYTES * this.#sent;
  }

  /**
   * The caller's messages the mesh took to send (Istio's `istio_request_messages_total`): each
   * once, however many attempts sent it; none when the mesh answered before any attempt took one
   * (a fault abort: Envoy's grpc_stats filter sees no message after the local reply either).
   */
  override get messages(): number {
    return this.#sent;
  }

  /**
   * The whole request's bytes (its messages one after another), once an attempt took every
   * message and the caller half-closed; `undefined` when it outgrew the replay buffer or the call
   * ended first. It never hurries the primary call.
   */
  override whenComplete(): Promise<Buffer | undefined> {
    return this.#whenMessages().then((m) => (m === undefined ? undefined : m.length === 1 ? (m[0] as Buffer) : Buffer.concat(m)));
  }

  /**
   * A mirrored copy's request: every message of the call, in order, then the half-close (a body
   * of its own, complete before the copy is sent), once the primary call sent them all while
   * they fit the replay buffer; `undefined`: not mirrored.
   */
  override forCopy(): Promise<unknown> {
    return this.#whenMessages().then((messages) => {
      if (messages === undefined) return undefined;
      const copy = new MessageBody(Number.POSITIVE_INFINITY);
      for (const m of messages) copy.push(m);
      copy.end();
      return copy;
    });
  }

  /** The route timeout is queued at dispatch (a unary call half-closes at once): it waits only if it comes before the half-close ({@link MessageBody.endPending}). */
  override get streaming(): boolean {
    return false;
  }

  override get endedAt(): number {
    return this.#endedAt;
  }
  /** True until the caller half-closed (or the call ended). */
  override get endPending(): boolean {
    return (this.#bits & (ENDED | CLOSED)) === 0;
  }

  /** The route timeout starts at the caller's half-close, attempt on the wire or not (Envoy's `Filter::onRequestComplete`): true, `listener` is told then. */
  override deferUntilEnded(listener: BodySentListener): boolean {
    if ((this.#bits & (ENDED | CLOSED)) !== 0) return false;
    AT_END.add(listener);
    if (this.#onSent === undefined) this.#onSent = [listener];
    else this.#onSent.push(listener);
    return true;
  }

  /**
   * An attempt's per-try timeout starts once the whole request went out — every message and the
   * caller's half-close —, as Envoy's starts at the downstream's end of stream
   * (`Filter::onRequestComplete`, or at `onPoolReady` when the request was complete before):
   * a client or bidi stream still being written is not cut by it (nor retried). True: `listener`
   * is told then (never if the call ends first); false: the caller already half-closed, the
   * timeout starts now.
   */
  override deferUntilSent(listener: BodySentListener): boolean {
    if ((this.#bits & (ENDED | CLOSED)) !== 0) return false;
    if (this.#onSent === undefined) this.#onSent = [listener];
    else this.#onSent.push(listener);
    return true;
  }

  /** Nothing to read ahead: the caller's messages come to the body as they are written. */
  override readAhead(): void {}

  /** The half-close went out: the per-try timeouts waiting for it start. */
  #requestSent(): void {
    const waiting = this.#onSent;
    if (waiting === undefined) return;
    this.#onSent = undefined;
    for (const w of waiting) w.bodySent();
  }

  override dispose(): void {
    this.close();
  }

  /** Not used: an attempt attaches to the body ({@link MessageBody.attach}) instead of iterating it. */
  override attempt(): AsyncIterable<Uint8Array> {
    throw new Error('a gRPC call\'s messages are sent by attaching to its MessageBody, not by iterating it');
  }
}
