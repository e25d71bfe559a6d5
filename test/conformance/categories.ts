/**
 * The categories of the conformance suite. Each runs its cases and compares them with Istio's
 * verdicts; the test and `npm run conformance` go through this list, so a new category (the
 * `istioctl analyze` testdata, routing cases) is one more entry here plus its differences.
 */
import { runAnalysis } from './analysis.ts';
import { runRouting } from './routing.ts';
import type { CategoryRun } from './suite.ts';
import { runValidation } from './validation.ts';

/** Every category, by name. */
export const CATEGORIES: Readonly<Record<string, () => CategoryRun>> = {
  validation: runValidation,
  analysis: runAnalysis,
  routing: runRouting,
};

let cached: CategoryRun[] | undefined;

/** Runs every category once (the test and the report share the run within a process). */
export function runAll(): CategoryRun[] {
  cached ??= Object.values(CATEGORIES).map((run) => run());
  return cached;
}
