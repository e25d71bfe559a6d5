/**
 * Validation of `AuthorizationPolicySpec` (TODO: full schema).
 *
 * @module
 */
import type { AuthorizationPolicySpec } from '../types/security.ts';
import type { Validator } from './schema.ts';

/** Validates a AuthorizationPolicySpec. */
export const authorizationPolicySpec: Validator<AuthorizationPolicySpec> = (v) => v as AuthorizationPolicySpec;
