/**
 * Validation of `RequestAuthenticationSpec` (TODO: full schema).
 *
 * @module
 */
import type { RequestAuthenticationSpec } from '../types/security.ts';
import type { Validator } from './schema.ts';

/** Validates a RequestAuthenticationSpec. */
export const requestAuthenticationSpec: Validator<RequestAuthenticationSpec> = (v) => v as RequestAuthenticationSpec;
