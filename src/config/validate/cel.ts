/**
 * CEL syntax, as Istio checks Telemetry access-log filters and meshlet checks rate-limit CEL
 * (`cel.NewEnv().Parse`): the expression must parse — literals included — and is not
 * type-checked or evaluated. The parser is the evaluator's (`cel-parse.ts`).
 *
 * @module
 */
import { CelError, parseCel } from './cel-parse.ts';

/** Checks CEL syntax; returns the problem, or nothing when the expression parses. */
export function checkCel(expression: string): string | undefined {
  try {
    parseCel(expression);
    return undefined;
  } catch (err) {
    if (err instanceof CelError) return `must be a valid CEL expression: ${err.message}`;
    throw err;
  }
}
