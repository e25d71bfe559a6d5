/**
 * Validation of `TelemetrySpec` (TODO: full schema).
 *
 * @module
 */
import type { TelemetrySpec } from '../types/telemetry.ts';
import type { Validator } from './schema.ts';

/** Validates a TelemetrySpec. */
export const telemetrySpec: Validator<TelemetrySpec> = (v) => v as TelemetrySpec;
