/**
 * `npm run conformance`: runs the conformance suite and prints the agreement table (category,
 * cases, agree, %), the breakdown by group, the cases not compared, and every disagreement with
 * whether it is a listed deliberate difference. `--markdown` prints the tables as Markdown.
 */
import { differences } from './differences.ts';
import { markdownTable, tally } from './suite.ts';
import { runValidation } from './validation.ts';

const runs = [runValidation()];
const markdown = process.argv.includes('--markdown');
const verbose = process.argv.includes('--verbose');
const results = runs.flatMap((r) => r.results);

function print(title: string, rows: ReturnType<typeof tally>, first: string): void {
  console.log(`\n${title}`);
  if (markdown) {
    console.log(markdownTable(rows, first));
    return;
  }
  console.log(`${first.padEnd(28)} ${'cases'.padStart(6)} ${'agree'.padStart(6)} ${'%'.padStart(6)}`);
  for (const r of rows) console.log(`${r.name.padEnd(28)} ${String(r.cases).padStart(6)} ${String(r.agree).padStart(6)} ${r.percent.toFixed(1).padStart(6)}`);
}

print('Agreement with Istio', tally(results, (r) => r.category), 'category');
for (const run of runs) {
  print(`${run.category}, by kind`, tally(run.results, (r) => r.group).sort((a, b) => a.name.localeCompare(b.name)), 'kind');
  const notCompared = new Map<string, { n: number; skipped: number }>();
  for (const u of run.uncompared) {
    const t = notCompared.get(u.reason) ?? { n: 0, skipped: 0 };
    t.n++;
    if (u.skippedWithNotice === true) t.skipped++;
    notCompared.set(u.reason, t);
  }
  console.log(`\n${run.category}: not compared`);
  for (const [reason, t] of notCompared) console.log(`  ${String(t.n).padStart(4)}  ${reason}${t.skipped > 0 ? ` (${t.skipped} skipped by meshlet with a notice)` : ''}`);
}

const disagreements = results.filter((r) => !r.agree);
console.log(`\nDisagreements: ${disagreements.length}`);
for (const d of disagreements) {
  const listed = differences[d.id] !== undefined;
  console.log(`  ${listed ? 'deliberate' : 'UNLISTED  '} ${d.id}  (Istio: ${d.expected}, meshlet: ${d.got})  ${d.source}`);
  if (!listed || verbose) console.log(`             ${d.detail.slice(0, 400)}`);
}
