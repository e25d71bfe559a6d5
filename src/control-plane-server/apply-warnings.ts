/**
 * What an `apply` answers with besides its result (`ApplyResponse.warnings`), the same for the
 * file store and the etcd store: the validation warnings about what it wrote, and the analysis
 * findings (advisory: the change is served) about what it wrote or that it brought to resources
 * it did not touch — a DestinationRule that drops a subset a VirtualService still routes to makes
 * that VirtualService's IST0101, and half the traffic 503 NC, as in Istio, where
 * `istioctl analyze` says so and `kubectl apply` does not.
 *
 * @module
 */
import type { ConfigIssue } from '../config/issues.ts';

/** A finding's identity from one version to the next: not its file or line (a re-applied resource's source changes). */
function findingKey(i: ConfigIssue): string {
  return `${i.level} ${i.code} ${i.resource ?? ''} ${i.path} ${i.message}`;
}

/** The set an apply made, and what it is compared with. */
export interface AppliedSet {
  /** Every issue of the resulting set (its findings among them). */
  readonly issues: readonly ConfigIssue[];
  /** The analysis findings of the resulting set. */
  readonly findings: readonly ConfigIssue[];
  /** The analysis findings of the set served before the apply. */
  readonly before: readonly ConfigIssue[];
  /** Whether an issue is about what the apply wrote. */
  readonly touches: (issue: ConfigIssue) => boolean;
  /** The issue as the caller should read it (default: as printed). */
  readonly text?: (issue: ConfigIssue) => string;
}

/**
 * The lines of `ApplyResponse.warnings`: warnings and infos about what was applied, and every
 * finding about it or new with it; an error-level finding is prefixed `error <code>: ` (the level
 * `--analysis blocking` refuses).
 */
export function applyWarnings(set: AppliedSet): string[] {
  const findings = new Set(set.findings);
  const had = new Set(set.before.map(findingKey));
  const text = set.text ?? String;
  const own = set.issues.filter((i) => set.touches(i) && (findings.has(i) || i.level !== 'error'));
  // A new finding elsewhere that one about the applied resources already names (the older VirtualService of an IST0109 pair) is said once.
  const named = (ref: string) => own.some((i) => findings.has(i) && new RegExp(`${regExpText(ref)}(?![\\w.-])`).test(i.message));
  const others = set.findings.filter((i) => !set.touches(i) && !had.has(findingKey(i)) && (i.resource === undefined || !named(i.resource)));
  return [...own, ...others].map((i) => (findings.has(i) && i.level === 'error' ? `error ${i.code}: ${text(i)}` : text(i)));
}

function regExpText(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
