/**
 * The project's own test tooling, as a contributor meets it: the Node check that runs first in
 * `npm test`, and the rule that skips a suite whose tool is missing except under CI.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { IN_CI, skipDecision } from '../helpers/tools.ts';

const CHECK = new URL('../../scripts/check-node.mjs', import.meta.url).pathname;

describe('scripts/check-node.mjs', () => {
  it('passes on the Node the tests run on', () => {
    const r = spawnSync(process.execPath, [CHECK], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
  });

  it('on an older Node (the machine\'s, after npm install --ignore-scripts) explains what is missing and how to fix it', (t) => {
    const old = ['/usr/bin/node', '/usr/local/bin/node'].find((p) => existsSync(p) && Number(execFileSync(p, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' }).trim()) < 22);
    if (old === undefined) {
      if (IN_CI) assert.fail('no Node.js older than 22 on this machine to run the check with');
      t.skip('no Node.js older than 22 on this machine');
      return;
    }
    const r = spawnSync(old, [CHECK], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /tests need Node\.js >= 22\.19, and this is Node\.js 2\d\./);
    assert.match(r.stderr, /--ignore-scripts/);
    assert.match(r.stderr, /npm rebuild node/);
  });
});

describe('skipping a suite whose tool is missing', () => {
  const etcd = { tool: 'etcd', install: "Debian's etcd-server" };
  it('runs the suite when nothing is missing', () => {
    assert.equal(skipDecision([], false), false);
    assert.equal(skipDecision([], true), false);
  });
  it('skips with the reason and how to install, outside CI', () => {
    assert.equal(skipDecision([etcd], false), "etcd is not installed (Debian's etcd-server)");
  });
  it('fails under CI=true: nothing may be skipped there', () => {
    assert.throws(() => skipDecision([etcd], true), /CI=true and etcd is not installed/);
  });
});
