/**
 * When the tracer listens to `meshlet:attempt:start` / `meshlet:attempt:end`: only a recorded
 * (sampled) call needs its attempts' messages (its attempt spans), so they are subscribed from a
 * recorded call's start until {@link IDLE_CALLS} unrecorded calls have ended with none in flight.
 * An unsampled call's attempts then publish nothing to the tracer (no `attempt:end` message, no
 * clock read for its duration, no look-up), and a run of sampled calls (100 % sampling, one call
 * at a time) does not subscribe and unsubscribe for each.
 *
 * @module
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';

/** Unrecorded calls that end, none recorded in flight, before the attempt channels are let go. */
export const IDLE_CALLS = 16;

export class AttemptSubscription {
  readonly #handlers: readonly (readonly [string, (m: unknown) => void])[];
  #on = false;
  /** Recorded calls in flight. */
  #recorded = 0;
  /** Unrecorded calls ended since the last recorded one, while none was in flight. */
  #idle = 0;

  constructor(handlers: readonly (readonly [string, (m: unknown) => void])[]) {
    this.#handlers = handlers;
  }

  /** A recorded call started (before its attempts). */
  recordedStart(): void {
    this.#recorded++;
    this.#idle = 0;
    this.#set(true);
  }

  /** A call ended: a recorded one, or one the tracer kept nothing for. */
  ended(recorded: boolean): void {
    if (recorded) this.#recorded--;
    else if (this.#on && this.#recorded === 0 && ++this.#idle >= IDLE_CALLS) this.#set(false);
  }

  close(): void {
    this.#set(false);
    this.#recorded = 0;
  }

  #set(on: boolean): void {
    if (this.#on === on) return;
    this.#on = on;
    for (const [name, fn] of this.#handlers) (on ? subscribe : unsubscribe)(name, fn);
  }
}
