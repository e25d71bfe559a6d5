import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { MESHLET_VERSION } from './version.ts';

describe('MESHLET_VERSION', () => {
  it("is package.json's version (bump both together)", () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name: string; version: string };
    assert.equal(pkg.name, 'meshlet');
    assert.equal(MESHLET_VERSION, pkg.version);
  });
});
