/**
 * The listeners a gRPC call's body tells at the caller's half-close rather than when it goes out
 * (`MessageBody.deferUntilEnded`: a route timeout that came while the caller was still writing),
 * kept in the body's one list of listeners and marked here: no field per body for the rare call
 * that has one.
 *
 * @module
 */
import type { BodySentListener } from '../../core/body.ts';

/** The listeners told at the half-close. */
export const AT_END = new WeakSet<BodySentListener>();

/** The caller half-closed: the listeners of `waiting` marked {@link AT_END} are told and leave it (the per-try ones wait on for the half-close to go out). */
export function tellEnded(waiting: BodySentListener[]): void {
  for (let i = 0; i < waiting.length; i++) {
    const l = waiting[i] as BodySentListener;
    if (!AT_END.has(l)) continue;
    AT_END.delete(l);
    waiting.splice(i--, 1);
    l.bodySent();
  }
}
