/**
 * Validation of `WorkloadEntrySpec` (TODO: full schema).
 *
 * @module
 */
import type { WorkloadEntrySpec } from '../types/networking.ts';
import type { Validator } from './schema.ts';

/** Validates a WorkloadEntrySpec. */
export const workloadEntrySpec: Validator<WorkloadEntrySpec> = (v) => v as WorkloadEntrySpec;
