/**
 * docs/testing.md's `node:test` program, run as written (only its `'meshlet'` import pointed at
 * the source): a mesh per file from resource objects, servers on port 0, a ManualClock driving a
 * route timeout, retry backoff and an outlier ejection's end, a fault asked for by header, and
 * everything closed (the child exits on its own: a handle left open would hang it).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

const ROOT = new URL('../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'meshlet-docs-testing-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function nodeTestPrograms(): string[] {
  const md = readFileSync(join(ROOT, 'docs', 'testing.md'), 'utf8');
  return [...md.matchAll(/^```ts\n([\s\S]*?)^```/gm)].map((m) => m[1] as string).filter((code) => /from 'node:test'/.test(code));
}

test("docs/testing.md's node:test program passes, and its process exits once the tests end", () => {
  const programs = nodeTestPrograms();
  assert.equal(programs.length, 1);
  const file = join(dir, 'recipe.test.ts');
  writeFileSync(file, (programs[0] as string).replace("from 'meshlet'", `from ${JSON.stringify(join(ROOT, 'src', 'index.ts'))}`));
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT; // a test's own child reports to this runner otherwise, not to its stdout
  const r = spawnSync(process.execPath, ['--test-reporter=tap', file], { encoding: 'utf8', timeout: 120_000, env });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /# pass 4\n# fail 0/);
});
