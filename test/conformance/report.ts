/**
 * `npm run conformance`: runs the conformance suite and prints the agreement table (category,
 * cases, agree, %), the breakdowns by kind and by Istio source file, what is not compared and
 * why, and every disagreement with whether it is a listed deliberate difference.
 * `--markdown` prints the tables as Markdown (for docs/conformance.md); `--verbose` prints
 * meshlet's messages for every disagreement.
 */
import { excluded } from './cases/excluded.ts';
import { runAll } from './categories.ts';
import { differences } from './differences.ts';
import { markdownTable, tally, type Tally } from './suite.ts';
import { ISTIO_COMMIT } from './types.ts';

const runs = runAll();
const markdown = process.argv.includes('--markdown');
const verbose = process.argv.includes('--verbose');
const results = runs.flatMap((r) => r.results);

function print(title: string, rows: readonly Tally[], first: string): void {
  console.log(`\n${title}\n`);
  if (markdown) {
    console.log(markdownTable(rows, first));
    return;
  }
  console.log(`${first.padEnd(44)} ${'cases'.padStart(6)} ${'agree'.padStart(6)} ${'%'.padStart(6)}`);
  for (const r of rows) console.log(`${r.name.padEnd(44)} ${String(r.cases).padStart(6)} ${String(r.agree).padStart(6)} ${r.percent.toFixed(1).padStart(6)}`);
}

function sourceOf(source: string): string {
  return source.replace(/ \(copy line \d+\)$/, '').replace(/:\d+$/, '').replace(/\/[^/]*\.yaml$/, '/*.yaml');
}

console.log(`Istio commit ${ISTIO_COMMIT}`);
print('Agreement with Istio', tally(results, (r) => r.category), 'category');
/** What each category's groups are. */
const GROUPS: Record<string, string> = { validation: 'kind', analysis: 'Istio analyzer', routing: 'Istio test' };

/** Istio's expected analysis messages (`CODE level, …`) in the compared cases, and how many meshlet gives (same code and level, on the same resource). */
function expectations(results: readonly { expected: string; got: string }[]): { expected: number; found: number } {
  let expected = 0;
  let found = 0;
  const split = (s: string) => (s === 'none' || s.startsWith('refused') ? [] : s.split(', '));
  for (const r of results) {
    const want = split(r.expected);
    const got = split(r.got);
    expected += want.length;
    for (const w of want) {
      const i = got.indexOf(w);
      if (i >= 0) {
        found++;
        got.splice(i, 1);
      }
    }
  }
  return { expected, found };
}

for (const run of runs) {
  const group = GROUPS[run.category] ?? 'group';
  print(`${run.category}, by ${group}`, tally(run.results, (r) => r.group).sort((a, b) => a.name.localeCompare(b.name)), group);
  print(`${run.category}, by Istio source`, tally(run.results, (r) => sourceOf(r.source)), 'source');
  if (run.category === 'validation') {
    const warned = run.results.filter((r) => r.expected === 'warning');
    console.log(`\n${run.category}: Istio expects a warning in ${warned.length} cases; meshlet warns in ${warned.filter((r) => r.agree).length}`);
  }
  if (run.category === 'analysis') {
    const e = expectations(run.results.filter((r) => /^IST|^none/.test(r.expected) && r.group !== 'helpers (analyzers/util)'));
    console.log(`\n${run.category}: Istio's grid expects ${e.expected} messages on the compared resources; meshlet reports ${e.found} of them (same code, level and resource)`);
  }
  const notCompared = new Map<string, { n: number; skipped: number }>();
  for (const u of run.uncompared) {
    const t = notCompared.get(u.reason) ?? { n: 0, skipped: 0 };
    t.n++;
    if (u.skippedWithNotice === true) t.skipped++;
    notCompared.set(u.reason, t);
  }
  console.log(`\n${run.category}: cases not compared\n`);
  for (const [reason, t] of notCompared) console.log(`${markdown ? '- ' : '  '}${t.n} — ${reason}${t.skipped > 0 ? ` (${t.skipped} skipped by meshlet with a notice)` : ''}`);
}

const byReason = new Map<string, { tables: string[]; rows: number }>();
for (const e of excluded) {
  const t = byReason.get(e.reason) ?? { tables: [], rows: 0 };
  t.tables.push(`${e.test} (${e.rows})`);
  t.rows += e.rows;
  byReason.set(e.reason, t);
}
console.log('\nIstio validation test tables not translated (rows counted, not compared)\n');
const labels: Record<string, string> = { 'not-applied': 'kinds meshlet does not apply', 'mesh-config': 'MeshConfig / ProxyConfig, not resources', other: 'other (see cases/excluded.ts)' };
for (const [reason, t] of byReason) console.log(`${markdown ? '- ' : '  '}${t.rows} rows — ${labels[reason] ?? reason}: ${t.tables.join(', ')}`);

const disagreements = results.filter((r) => !r.agree);
console.log(`\nDisagreements: ${disagreements.length}\n`);
for (const d of disagreements) {
  const listed = differences[d.id] !== undefined;
  console.log(`${markdown ? '- ' : '  '}${listed ? 'deliberate' : 'UNLISTED  '} ${d.id}  (Istio: ${d.expected}, meshlet: ${d.got})  ${d.source}`);
  if (!listed || verbose) console.log(`             ${d.detail.slice(0, 400)}`);
}
