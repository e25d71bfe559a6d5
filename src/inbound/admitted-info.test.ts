/**
 * AdmittedInfo.by: a request's `meshlet` counts as a mesh's verdict only when that mesh made it —
 * not another mesh's, not a copy of it (spread, structuredClone, a deep clone that keeps the
 * prototype, as lodash's cloneDeep does), and such a copy is told apart without throwing (a
 * throw in the server adapter would end the request with a 500, or the process).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AdmittedInfo } from './admitted-info.ts';

describe('AdmittedInfo.by', () => {
  const a = {};
  const b = {};
  const info = new AdmittedInfo(a, 'iss/sub', { sub: 'sub' }, undefined, undefined);

  it("is true for the judge's own verdict only", () => {
    assert.equal(AdmittedInfo.by(info, a), true);
    assert.equal(AdmittedInfo.by(info, b), false);
    assert.ok(Object.isFrozen(info));
  });

  it('still counts for a mesh whose verdict a later mesh replaced (its own, and those before it)', () => {
    const c = {};
    const byB = new AdmittedInfo(b, undefined, undefined, undefined, undefined);
    AdmittedInfo.replacing(byB, info);
    const byC = new AdmittedInfo(c, undefined, undefined, undefined, undefined);
    AdmittedInfo.replacing(byC, byB);
    AdmittedInfo.replacing(byC, new AdmittedInfo({}, undefined, undefined, undefined, undefined)); // set once
    assert.deepEqual([a, b, c, {}].map((j) => AdmittedInfo.by(byC, j)), [true, true, true, false]);
    assert.equal(AdmittedInfo.by(info, b), false, 'not the other way');
    // A cycle an app could make by assigning verdicts back and forth ends (bounded).
    AdmittedInfo.replacing(info, byC);
    assert.equal(AdmittedInfo.by(byC, {}), false);
  });

  it('is false, without throwing, for copies and other values', () => {
    const protoClone = Object.assign(Object.create(AdmittedInfo.prototype) as object, info);
    assert.ok(protoClone instanceof AdmittedInfo, 'instanceof accepts it');
    for (const v of [protoClone, { ...info }, structuredClone({ ...info }), undefined, null, 'x', 1, () => {}]) {
      assert.equal(AdmittedInfo.by(v, a), false, String(v));
    }
  });
});
