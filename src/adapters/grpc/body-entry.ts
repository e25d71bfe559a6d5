/**
 * A gRPC call's request messages as its body keeps them (body.ts): each with the caller's write
 * acknowledgement while it is due, and the acknowledgement of the writes still due when the call
 * is over — on a later turn, after its status reached the caller, never inside `call.cancel()` or
 * the caller's own write (a caller that writes while its writes are acknowledged would otherwise
 * write its whole source there and then, the event loop blocked).
 *
 * @module
 */
import { setImmediate } from 'node:timers';

/** A message's write acknowledgement to the caller. */
export interface WriteAck {
  /** The message was written (once is enough: later calls do nothing). */
  written(): void;
}

/** One message of the caller's, and its write acknowledgement while it is due. */
export class Entry implements WriteAck {
  readonly message: Buffer;
  #written: (() => void) | undefined;
  /** The caller still waits for this write's acknowledgement. */
  get due(): boolean {
    return this.#written !== undefined;
  }
  /** Acknowledges the caller's write, once. */
  written(): void {
    const w = this.#written;
    this.#written = undefined;
    w?.();
  }
  constructor(message: Buffer, written: (() => void) | undefined) {
    this.message = message;
    this.#written = written;
  }
}

/** An empty list of messages: never added to (a body makes its own list with its first message). */
export const NONE: Entry[] = Object.freeze([]) as unknown as Entry[];

export function messageOf(e: Entry): Buffer {
  return e.message;
}

function ackAll(entries: Entry[]): void {
  for (let i = 0; i < entries.length; i++) (entries[i] as Entry).written();
}

/** Acknowledges writes of a call that is over on a later turn (after its status reached the caller: a microtask). */
export function ackLater(entries: Entry[]): void {
  if (entries.length > 0) setImmediate(ackAll, entries);
}

/** The entries of `list` whose write the caller still waits for (acknowledged at the call's end if no attempt does it first). */
export function dueOf(list: Entry[]): Entry[] {
  let due = NONE;
  for (let i = 0; i < list.length; i++) {
    const e = list[i] as Entry;
    if (!e.due) continue;
    if (due === NONE) due = [e];
    else due.push(e);
  }
  return due;
}

