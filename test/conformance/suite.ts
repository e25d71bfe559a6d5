/**
 * The conformance suite's frame: categories of cases (validation today; analyzer and routing
 * tables are added the same way), each case compared with Istio's own verdict, agreement counted
 * per category and checked against the list of deliberate differences.
 */
import { differences } from './differences.ts';

/** The outcome of one case. */
export interface CaseResult {
  /** `category/table/name`, the key of the deliberate-differences list. */
  readonly id: string;
  readonly category: string;
  /** A finer grouping for the printed table (e.g. the resource kind). */
  readonly group: string;
  /** What Istio says. */
  readonly expected: string;
  /** What meshlet says. */
  readonly got: string;
  /** Whether meshlet agrees with Istio. */
  readonly agree: boolean;
  /** Where the case comes from (`file:line`). */
  readonly source: string;
  /** meshlet's messages, for reading a disagreement. */
  readonly detail: string;
}

/** Cases that are counted but not compared (kinds meshlet does not apply, rows that are not resources). */
export interface UncomparedCase {
  readonly id: string;
  readonly category: string;
  readonly reason: string;
  /** For kinds meshlet skips: whether it skipped the resource with a notice (and no error), as it should. */
  readonly skippedWithNotice?: boolean;
}

/** One category's cases. */
export interface CategoryRun {
  readonly category: string;
  readonly results: readonly CaseResult[];
  readonly uncompared: readonly UncomparedCase[];
}

/** Agreement counts of one category or group. */
export interface Tally {
  readonly name: string;
  readonly cases: number;
  readonly agree: number;
  /** Percentage, one decimal. */
  readonly percent: number;
}

/** The agreement every category must reach. */
export const REQUIRED_PERCENT = 98;

/** Counts agreement per key. */
export function tally(results: readonly CaseResult[], key: (r: CaseResult) => string): Tally[] {
  const by = new Map<string, { cases: number; agree: number }>();
  for (const r of results) {
    const k = key(r);
    const t = by.get(k) ?? { cases: 0, agree: 0 };
    t.cases++;
    if (r.agree) t.agree++;
    by.set(k, t);
  }
  return [...by].map(([name, t]) => ({ name, ...t, percent: Math.floor((t.agree / t.cases) * 1000) / 10 }));
}

/** Checks a run against the deliberate-differences list: what is missing from it and what is stale in it. */
export function checkDifferences(results: readonly CaseResult[], categories: ReadonlySet<string>): { unlisted: CaseResult[]; stale: string[] } {
  const disagreements = results.filter((r) => !r.agree);
  const ids = new Set(results.map((r) => r.id));
  const unlisted = disagreements.filter((r) => differences[r.id] === undefined);
  const disagreeing = new Set(disagreements.map((r) => r.id));
  const stale = Object.keys(differences).filter((id) => categories.has(id.split('/')[0] as string) && (!ids.has(id) || !disagreeing.has(id)));
  return { unlisted, stale };
}

/** Formats a Markdown table of tallies. */
export function markdownTable(rows: readonly Tally[], first = 'category'): string {
  const lines = [`| ${first} | cases | agree | % |`, '| --- | ---: | ---: | ---: |'];
  for (const r of rows) lines.push(`| ${r.name} | ${r.cases} | ${r.agree} | ${r.percent.toFixed(1)} |`);
  return lines.join('\n');
}
