/**
 * Which call bodies a retry or a mirror may send again, and what one attempt sends. Strings and
 * bytes are held by the caller, a streamed body is recorded as it is sent ({@link ReplayableBody}),
 * and both are replayed only up to the retry buffer (`retryBufferBytes`, 1 MiB by default): as
 * Envoy's router gives up retrying and shadowing a request whose body outgrows its buffer
 * (`source/common/router/router.cc` `Filter::decodeData`: `retry_or_shadow_abandoned`; the
 * buffer is the listener's `per_connection_buffer_limit_bytes`, 1 MiB by default, which Istio
 * leaves unset on sidecars).
 *
 * @module
 */
import { ReplayableBody } from './body.ts';

/** A string or bytes larger than the retry buffer: sent as it is, once — never retried or mirrored. */
export class OversizedBody {
  /** What the caller passed. */
  readonly value: string | ArrayBufferView;
  /** Its size in bytes. */
  readonly byteLength: number;
  constructor(value: string | ArrayBufferView, byteLength: number) {
    this.value = value;
    this.byteLength = byteLength;
  }
}

/** `body` (a string or bytes), or an {@link OversizedBody} when it is larger than `capBytes`. */
export function capStatic<T extends string | ArrayBufferView>(body: T, capBytes: number): T | OversizedBody {
  if (typeof body !== 'string') return body.byteLength > capBytes ? new OversizedBody(body, body.byteLength) : body;
  // A string has at least as many bytes as UTF-16 units, and at most three per unit.
  if (body.length * 3 <= capBytes) return body;
  const bytes = Buffer.byteLength(body);
  return bytes > capBytes ? new OversizedBody(body, bytes) : body;
}

/** True for bodies that can be sent again as they are (none, strings, bytes under the retry buffer). */
export function isStaticBody(body: unknown): boolean {
  return body == null || typeof body === 'string' || body instanceof Uint8Array || ArrayBuffer.isView(body) || body instanceof ArrayBuffer;
}

/** True when `body` is something a retry can replay (static, or a recorded stream still under its cap). */
export function canReplay(body: unknown): boolean {
  return body instanceof ReplayableBody ? body.replayable : isStaticBody(body);
}

/** What to hand the transport for one attempt. */
export function bodyForAttempt(body: unknown): unknown {
  return body instanceof ReplayableBody ? body.attempt() : body instanceof OversizedBody ? body.value : body;
}
