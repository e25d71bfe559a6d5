/**
 * The analysis category's own checks (agreement and differences are checked for every category
 * by conformance.test.ts): every row of Istio's grid is accounted for, the compared rows have
 * cases, and the testdata on disk is the verbatim copy the generator made.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { REFUSED_INPUTS } from './analysis.ts';
import { ANALYZER_SCOPE } from './analysis-scope.ts';
import { grid } from './cases/analysis-grid.ts';
import { runAll } from './categories.ts';
import { ISTIO_COMMIT } from './types.ts';

describe("conformance: analysis against Istio's analyzer tests", () => {
  const run = runAll().find((r) => r.category === 'analysis');

  it('accounts for every row of the grid: compared (with at least one case) or counted with a reason', () => {
    assert.ok(run !== undefined);
    assert.ok(grid.length >= 100, `only ${grid.length} rows`);
    const ids = [...run.results.map((r) => r.id), ...run.uncompared.map((u) => u.id)];
    const seen = new Map<string, number>();
    for (const row of grid) {
      const n = (seen.get(row.name) ?? 0) + 1;
      seen.set(row.name, n);
      const name = n === 1 ? row.name : `${row.name} #${n}`;
      const mine = ids.filter((id) => id === `analysis/${name}` || id.startsWith(`analysis/${name}/`));
      assert.ok(mine.length > 0, `row ${name} (line ${row.line}) is neither compared nor counted`);
      assert.ok(ANALYZER_SCOPE[row.analyzer] !== undefined, `${row.analyzer} has no scope decision`);
    }
  });

  it('compares every Istio analyzer it claims to, and reproduces the rows meshlet first missed (IST0109, IST0101 exportTo, IST0130 TCP/TLS)', () => {
    const compared = Object.entries(ANALYZER_SCOPE).filter(([, s]) => s.compared).map(([a]) => a);
    const groups = new Set(run?.results.map((r) => r.group));
    for (const a of compared) if (a !== 'virtualservice.JWTClaimRouteAnalyzer') assert.ok(groups.has(a), `${a} has no compared case`);
    const agree = (id: string) => run?.results.find((r) => r.id === id)?.agree;
    assert.equal(agree('analysis/virtualServiceConflictingMeshGatewayHostsWithExportTo/VirtualService foo/productpage-d'), true);
    assert.equal(agree('analysis/virtualServiceDestinationHosts/VirtualService hello/hello-export-to-bogus'), true);
    assert.equal(agree('analysis/dupmatches/VirtualService default/duplicate-empty-tcp'), true);
  });

  it('lists every refused input with who else refuses it, and each is refused by meshlet', () => {
    for (const [key, r] of Object.entries(REFUSED_INPUTS)) {
      assert.ok(r.why.length > 20, key);
      assert.ok(['Kubernetes', 'Istio'].includes(r.by), key);
    }
    const refusedCases = run?.uncompared.filter((u) => u.reason.startsWith('input refused')) ?? [];
    assert.ok(refusedCases.length > 0);
  });

  it('keeps the testdata verbatim, with the header naming source and commit', () => {
    const files = new Set(grid.filter((r) => ANALYZER_SCOPE[r.analyzer]?.compared === true).flatMap((r) => r.inputFiles));
    for (const f of files) {
      const text = readFileSync(new URL(`./istio/analyzers/${f}`, import.meta.url), 'utf8');
      assert.match(text, new RegExp(`^# Copied verbatim from istio/istio pkg/config/analysis/analyzers/${f.replace(/\./g, '\\.')} at commit ${ISTIO_COMMIT}`), f);
    }
  });
});
