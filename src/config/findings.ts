/**
 * Analysis findings are advisory by default (as `istioctl analyze` is to Istio): config that
 * has them is applied, and each finding is reported once — when it first appears, not again
 * on every later change that still has it.
 *
 * @module
 */
import type { ConfigIssue } from './issues.ts';

function key(i: ConfigIssue): string {
  return `${i.level} ${i.code} ${String(i)}`;
}

/** The findings of `next` that `previous` did not have (compared by level, code and text). */
export function newFindings(previous: readonly ConfigIssue[], next: readonly ConfigIssue[]): ConfigIssue[] {
  if (next.length === 0) return [];
  const seen = new Set(previous.map(key));
  return next.filter((i) => !seen.has(key(i)));
}

/** One finding as a line: `warning IST0101 file: Kind ns/name: path: message (line n)`. */
export function formatFinding(i: ConfigIssue): string {
  return `${i.level} ${i.code} ${String(i)}`;
}

/**
 * Logs the findings of `next` not already in `previous`, as one message naming what they belong
 * to (`label`, e.g. the config version). Nothing is logged when there is nothing new.
 */
export function reportFindings(logger: { warn(message: string): void } | undefined, label: string, previous: readonly ConfigIssue[], next: readonly ConfigIssue[]): void {
  const fresh = newFindings(previous, next);
  if (fresh.length === 0 || logger === undefined) return;
  logger.warn(`meshlet: ${label} applied with ${fresh.length} analysis finding(s) (advisory; analysis: 'blocking' makes error-level findings refuse config):\n  ${fresh.map(formatFinding).join('\n  ')}`);
}
