/**
 * The reasons a mesh NACKs a version with (shown by `meshlet status`) lead with Istio's analyzer
 * code for an analysis finding (a mesh with `analysis: 'blocking'` refusing a route to an
 * undefined subset says `IST0101 …`), as the status's own findings and `meshlet analyze` print
 * it; validation errors stay as they are.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IssueList } from '../../src/config/issues.ts';
import { reasons } from '../../src/control-plane/state.ts';

test('a NACK reason names the analyzer code of a finding', () => {
  const issues = new IssueList();
  issues.file('control-plane config abc[4]', undefined, 'error', 'VirtualService default/reviews: referenced subset "v3" is not defined', 'IST0101');
  issues.file('control-plane config abc[2]', undefined, 'error', 'spec.http[0].timeout: invalid duration "soon"');
  issues.file('control-plane config abc[3]', undefined, 'warning', 'a warning is no reason', 'IST0108');
  assert.deepEqual(reasons(issues), [
    'IST0101 control-plane config abc[4]: VirtualService default/reviews: referenced subset "v3" is not defined',
    'control-plane config abc[2]: spec.http[0].timeout: invalid duration "soon"',
  ]);
});
