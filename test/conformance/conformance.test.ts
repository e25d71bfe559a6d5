/**
 * The conformance suite in `npm test`: in every category, meshlet must agree with Istio's own
 * tests on at least REQUIRED_PERCENT of the cases, and every disagreement must be a listed,
 * explained deliberate difference (differences.ts), and every listed one a real disagreement.
 * `npm run conformance` prints the same run as tables (see docs/conformance.md).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CATEGORIES, runAll } from './categories.ts';
import { differences } from './differences.ts';
import { checkDifferences, REQUIRED_PERCENT, tally } from './suite.ts';

describe('conformance with Istio', () => {
  const runs = runAll();
  const results = runs.flatMap((r) => r.results);

  it(`agrees with Istio on at least ${REQUIRED_PERCENT}% of the cases of each category`, () => {
    assert.deepEqual(runs.map((r) => r.category), Object.keys(CATEGORIES));
    for (const t of tally(results, (r) => r.category)) {
      console.log(`conformance ${t.name}: ${t.agree} of ${t.cases} cases agree (${t.percent.toFixed(1)}%)`);
      assert.ok(t.percent >= REQUIRED_PERCENT, `${t.name}: ${t.agree}/${t.cases} = ${t.percent}% < ${REQUIRED_PERCENT}%`);
    }
  });

  it('lists every disagreement as a deliberate difference, and lists nothing that now agrees', () => {
    const { unlisted, stale } = checkDifferences(results, new Set(Object.keys(CATEGORIES)));
    assert.deepEqual(unlisted.map((r) => `${r.id} (Istio: ${r.expected}, meshlet: ${r.got}: ${r.detail})`), [], 'disagreements missing from differences.ts');
    assert.deepEqual(stale, [], 'differences.ts entries that are no longer disagreements (or no longer cases)');
    for (const [id, d] of Object.entries(differences)) assert.ok(d.reason.length > 40, `${id}: give a real reason`);
  });
});
