/**
 * The control-plane server's refusal: a {@link MeshletError} (`MESHLET_ERR_CONTROL_PLANE`)
 * that carries the wire code and HTTP status it is answered with (protocol.ts `ErrorBody`).
 *
 * @module
 */
import { MeshletError } from '../core/errors.ts';

/** The wire codes of `ErrorBody.error.code` and their HTTP status. */
export const WIRE_STATUS = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  INVALID: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  TOO_LARGE: 413,
  LIMIT_EXCEEDED: 429,
  UNAVAILABLE: 503,
  INTERNAL: 500,
} as const;

/** One of the wire error codes. */
export type WireCode = keyof typeof WIRE_STATUS;

const BRAND = Symbol.for('meshlet.control-plane-error');

/** A request or change the control plane refuses, with the wire code it is answered with. */
export class ControlPlaneError extends MeshletError {
  /** `CONFLICT`, `NOT_FOUND`, … */
  readonly wireCode: WireCode;
  /** Printed config issues, for `INVALID`. */
  readonly issues: readonly string[] | undefined;

  constructor(wireCode: WireCode, message: string, options: { cause?: unknown; issues?: readonly string[] } = {}) {
    super('MESHLET_ERR_CONTROL_PLANE', message, { cause: options.cause, httpStatus: WIRE_STATUS[wireCode] });
    this.name = 'ControlPlaneError';
    this.wireCode = wireCode;
    this.issues = options.issues;
    Object.defineProperty(this, BRAND, { value: true });
  }

  // MeshletError's brand check would make every MeshletError an instance of this class.
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}
