/**
 * Calls whose headers carry the app's own instrumentation's context: its client span for this
 * very call, written by an HTTP client instrumentation into the request (see
 * `adapters/undici/app-request.ts`). That span is the parent of the call's span, as the app's
 * client span is the parent of a sidecar's — rather than the span active where the call was made
 * (the instrumentation's span is that one's child already).
 *
 * @module
 */
import type { Headers } from '../../core/handler.ts';

const MARKED = new WeakSet<Headers>();

/** `h` (a call's headers) carries the context of the app's client span for the call. */
export function markAppContext(h: Headers): void {
  MARKED.add(h);
}

/** True when `h` carries the context of the app's client span for the call. */
export function hasAppContext(h: Headers): boolean {
  return MARKED.has(h);
}
