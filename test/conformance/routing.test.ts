/**
 * The routing category's own checks (agreement and differences are checked for every category by
 * conformance.test.ts): every row of the generated tables is a case, every hand-written case names
 * an Istio source and a config meshlet accepts, and the cases cover more than the 21 of the first
 * measurement.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runAll } from './categories.ts';
import { routingTables } from './cases/routing-tables.ts';
import { ROUTING_CASES } from './routing-cases.ts';

describe("conformance: routing against Istio's routing tests and samples", () => {
  const run = runAll().find((r) => r.category === 'routing');

  it('compares every row of the generated tables and every hand-written case', () => {
    assert.ok(run !== undefined);
    const rows = routingTables.reduce((n, t) => n + t.rows.length, 0);
    assert.equal(run.results.length, rows + ROUTING_CASES.length);
    assert.ok(run.results.length > 21 * 5, `only ${run.results.length} cases`);
    assert.equal(new Set(run.results.map((r) => r.id)).size, run.results.length, 'case ids are unique');
  });

  it('runs every hand-written case on config meshlet accepts, and names where it comes from', () => {
    for (const r of run?.results ?? []) {
      assert.doesNotMatch(r.got, /^config refused/, `${r.id}: ${r.detail}`);
      assert.match(r.source, /^(pilot|pkg|samples)\/\S+(:\d+|\.yaml)$/, r.id);
    }
  });

  it('exercises every outcome kind: forward, redirect, direct response, no route, passthrough', () => {
    const expected = (run?.results ?? []).map((r) => r.expected).join('\n');
    for (const kind of ['"to"', '"redirect"', '"respond"', '404 NR', 'passthrough', '"fault"', '"rewrite"', '"timeoutMs"']) assert.ok(expected.includes(kind), kind);
  });
});
