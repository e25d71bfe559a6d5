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

  it('is false, without throwing, for copies and other values', () => {
    const protoClone = Object.assign(Object.create(AdmittedInfo.prototype) as object, info);
    assert.ok(protoClone instanceof AdmittedInfo, 'instanceof accepts it');
    for (const v of [protoClone, { ...info }, structuredClone({ ...info }), undefined, null, 'x', 1, () => {}]) {
      assert.equal(AdmittedInfo.by(v, a), false, String(v));
    }
  });
});
