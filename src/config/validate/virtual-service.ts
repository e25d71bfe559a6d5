/**
 * Validation of `VirtualServiceSpec` (TODO: full schema).
 *
 * @module
 */
import type { VirtualServiceSpec } from '../types/networking.ts';
import type { Validator } from './schema.ts';

/** Validates a VirtualServiceSpec. */
export const virtualServiceSpec: Validator<VirtualServiceSpec> = (v) => v as VirtualServiceSpec;
