/**
 * The validation category's own checks (the agreement and the differences are checked for every
 * category by conformance.test.ts): the cases are complete, and kinds meshlet does not apply are
 * skipped with a notice.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tables } from './cases/index.ts';
import { runAll } from './categories.ts';

describe('conformance: validation against Istio\'s tests', () => {
  const run = runAll().find((r) => r.category === 'validation');

  it('covers at least the 220 cases of the first measurement, translated whole (no row left out silently)', () => {
    assert.ok(run !== undefined);
    assert.ok(run.results.length >= 220, `only ${run.results.length} cases`);
    // Every Go row is either compared, counted as not applied, or listed as not expressible with a reason.
    const rows = tables.reduce((n, t) => n + t.cases.length + (t.untranslatable?.length ?? 0), 0);
    const fromTables = (id: string) => !id.startsWith('validation/crds/') && !id.startsWith('validation/ratelimit/');
    assert.equal(run.results.filter((r) => fromTables(r.id)).length + run.uncompared.filter((u) => fromTables(u.id)).length, rows);
  });

  it('compares the local rate limit EnvoyFilters of Istio\'s rate-limit tests and sample, and counts the other EnvoyFilters as not applied', () => {
    const rateLimit = run?.results.filter((r) => r.id.startsWith('validation/ratelimit/')) ?? [];
    assert.deepEqual(rateLimit.map((r) => `${r.group} ${r.id.split('/')[2]}`).sort(), [
      'EnvoyFilter enable_envoy_local_ratelimit.yaml',
      'EnvoyFilter enable_envoy_local_ratelimit_per_route.yaml',
      'EnvoyFilter enable_envoy_local_ratelimit_sa.yaml',
      'EnvoyFilter local-rate-limit-service.yaml',
    ]);
    const crdFilters = run?.uncompared.filter((u) => u.id.startsWith('validation/crds/envoyfilter-')) ?? [];
    assert.equal(crdFilters.length, 8);
    for (const u of crdFilters) assert.equal(u.reason, 'EnvoyFilter other than the local rate limit is not applied by meshlet');
  });

  it('skips the kinds it does not apply with a notice, never an error', () => {
    const notApplied = run?.uncompared.filter((u) => u.skippedWithNotice !== undefined) ?? [];
    assert.ok(notApplied.length > 0);
    for (const u of notApplied) assert.equal(u.skippedWithNotice, true, `${u.id}: ${u.reason}, but it was not skipped with a notice`);
  });
});
