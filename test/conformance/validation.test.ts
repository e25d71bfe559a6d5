/**
 * The conformance suite in `npm test`: Istio's own validation test tables and CRD testdata, run
 * through meshlet's validator, must agree with Istio on at least REQUIRED_PERCENT of the cases
 * in each category, and every disagreement must be a listed, explained deliberate difference.
 * `npm run conformance` prints the same run as tables (see docs/conformance.md).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tables } from './cases/index.ts';
import { differences } from './differences.ts';
import { checkDifferences, REQUIRED_PERCENT, tally } from './suite.ts';
import { runValidation } from './validation.ts';

describe('conformance: validation against Istio\'s tests', () => {
  const run = runValidation();

  it('covers at least the 220 cases of the first measurement, translated whole (no row left out silently)', () => {
    assert.ok(run.results.length >= 220, `only ${run.results.length} cases`);
    // Every Go row is either compared, counted as not applied, or listed as not expressible with a reason.
    const rows = tables.reduce((n, t) => n + t.cases.length + (t.untranslatable?.length ?? 0), 0);
    const accounted = run.results.filter((r) => !r.id.startsWith('validation/crds/')).length + run.uncompared.filter((u) => !u.id.startsWith('validation/crds/')).length;
    assert.equal(accounted, rows);
  });

  it(`agrees with Istio on at least ${REQUIRED_PERCENT}% of the cases of each category`, () => {
    for (const t of tally(run.results, (r) => r.category)) {
      console.log(`conformance ${t.name}: ${t.agree} of ${t.cases} cases agree (${t.percent.toFixed(1)}%)`);
      assert.ok(t.percent >= REQUIRED_PERCENT, `${t.name}: ${t.agree}/${t.cases} = ${t.percent}% < ${REQUIRED_PERCENT}%`);
    }
  });

  it('lists every disagreement as a deliberate difference, and lists nothing that now agrees', () => {
    const { unlisted, stale } = checkDifferences(run.results, new Set(['validation']));
    assert.deepEqual(unlisted.map((r) => `${r.id} (Istio: ${r.expected}, meshlet: ${r.got}: ${r.detail})`), [], 'disagreements missing from differences.ts');
    assert.deepEqual(stale, [], 'differences.ts entries that are no longer disagreements (or no longer cases)');
    for (const [id, d] of Object.entries(differences)) assert.ok(d.reason.length > 40, `${id}: give a real reason`);
  });

  it('skips the kinds it does not apply with a notice, never an error', () => {
    const notApplied = run.uncompared.filter((u) => u.skippedWithNotice !== undefined);
    assert.ok(notApplied.length > 0);
    for (const u of notApplied) assert.equal(u.skippedWithNotice, true, `${u.id}: ${u.reason}, but it was not skipped with a notice`);
  });
});
