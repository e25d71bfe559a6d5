/**
 * Validation of `DestinationRuleSpec` (TODO: full schema).
 *
 * @module
 */
import type { DestinationRuleSpec } from '../types/networking.ts';
import type { Validator } from './schema.ts';

/** Validates a DestinationRuleSpec. */
export const destinationRuleSpec: Validator<DestinationRuleSpec> = (v) => v as DestinationRuleSpec;
