/**
 * Validation of `PeerAuthenticationSpec` (TODO: full schema).
 *
 * @module
 */
import type { PeerAuthenticationSpec } from '../types/security.ts';
import type { Validator } from './schema.ts';

/** Validates a PeerAuthenticationSpec. */
export const peerAuthenticationSpec: Validator<PeerAuthenticationSpec> = (v) => v as PeerAuthenticationSpec;
