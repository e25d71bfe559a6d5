import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BOOKINFO, closedPipe, meshletAsync } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-cli-pipe-'));
const big = join(dir, 'big');
after(() => rmSync(dir, { recursive: true, force: true }));

before(() => {
  // 400 VirtualServices routing to a host nothing declares: two errors each, ~180 KB of report,
  // more than a pipe holds, so the CLI is still writing when the reader goes away.
  mkdirSync(big);
  for (let i = 0; i < 400; i++) {
    writeFileSync(
      join(big, `vs-${String(i).padStart(3, '0')}.yaml`),
      `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs-${i}}\nspec:\n  hosts: [h${i}]\n  http:\n  - route:\n    - destination: {host: nowhere-${i}, subset: v1}\n`,
    );
  }
});

describe('stdout closed early (meshlet … | head): a quiet exit 141; exit codes unchanged otherwise', () => {
  it('validate big-dir | head -1: the first line, then exit 141 and nothing on stderr', async () => {
    const r = await closedPipe(['validate', big], { readFirstLine: true });
    assert.equal(r.signal, null);
    assert.equal(r.code, 141, r.stderr);
    assert.match(r.read, /^error {3}IST0101 .*vs-000\.yaml: VirtualService default\/vs-0: /);
    assert.equal(r.stderr, '');
  });

  it('the same run read to its end exits 1 (errors found) with the whole report', async () => {
    const r = await meshletAsync(['validate', big]);
    assert.equal(r.code, 1);
    assert.ok(r.stdout.length > 128 * 1024, `report of ${r.stdout.length} bytes`);
    assert.match(r.stdout, /\n800 error\(s\), 0 warning\(s\), 0 info\(s\); 400 valid resource\(s\)\n$/);
    assert.equal(r.stderr, '');
  });

  it('every printing command, human or -o json|yaml, with the reader gone before it writes: exit 141, quiet', async () => {
    const runs: string[][] = [
      ['validate', big, '-o', 'json'],
      ['routes', BOOKINFO, '--service', 'productpage', '-o', 'yaml'],
      ['explain', BOOKINFO, '--service', 'productpage', 'http://reviews:9080/'],
      ['help'],
    ];
    for (const args of runs) {
      const r = await closedPipe(args);
      assert.equal(r.code, 141, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr, '', args.join(' '));
    }
  });

  it('read to their end, the same commands exit 0', async () => {
    for (const args of [['routes', BOOKINFO, '--service', 'productpage'], ['explain', BOOKINFO, '--service', 'productpage', 'http://reviews:9080/']]) {
      const r = await meshletAsync(args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.ok(r.stdout.length > 0);
    }
  });

  it('a usage error with stdout closed still exits 2 with its message (nothing is written to stdout)', async () => {
    const r = await closedPipe(['routes', BOOKINFO]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--service is required/);
  });
});
