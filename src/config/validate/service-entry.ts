/**
 * Validation of `ServiceEntrySpec` (TODO: full schema).
 *
 * @module
 */
import type { ServiceEntrySpec } from '../types/networking.ts';
import type { Validator } from './schema.ts';

/** Validates a ServiceEntrySpec. */
export const serviceEntrySpec: Validator<ServiceEntrySpec> = (v) => v as ServiceEntrySpec;
