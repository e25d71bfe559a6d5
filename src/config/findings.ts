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

/**
 * The validation warnings among a loaded config's issues (`all`), without its analysis
 * `findings`: what meshlet accepts but warns about — a TCP route, a kind or EnvoyFilter it skips,
 * a field it does not act on, a deprecated form.
 */
export function validationWarnings(all: readonly ConfigIssue[], findings: readonly ConfigIssue[]): ConfigIssue[] {
  const analysis = new Set(findings);
  return all.filter((i) => i.level === 'warning' && !analysis.has(i));
}

/**
 * Logs the validation warnings of `next` not already in `previous` (as {@link reportFindings}
 * does for analysis findings): a config applied from files says what in it meshlet does not do,
 * as `meshlet validate` would have, rather than ignoring it without a word.
 */
export function reportWarnings(logger: { warn(message: string): void } | undefined, label: string, previous: readonly ConfigIssue[], next: readonly ConfigIssue[]): void {
  const fresh = newFindings(previous, next);
  if (fresh.length === 0 || logger === undefined) return;
  logger.warn(`meshlet: ${label} applied with ${fresh.length} validation warning(s):\n  ${fresh.map(formatFinding).join('\n  ')}`);
}
