/**
 * Runs `examples/demo/demo.ts` (what `npm run demo` runs) as a child process on this Node and
 * checks that it exits on its own, cleanly, and that its output shows what each scene's rule
 * promises: the canary split, jason pinned to v2, injected delays and aborts, retries hiding
 * v3's 503s (and their absence not hiding them), and an explanation of one request.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { before, describe, test } from 'node:test';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEMO = fileURLToPath(new URL('../../examples/demo/demo.ts', import.meta.url));

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

function runDemo(): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // The demo must not think it is a test-runner child, and runs with its default seed.
  delete env['NODE_TEST_CONTEXT'];
  delete env['DEMO_SEED'];
  return new Promise((resolve) => {
    // The demo takes about 2 s; 30 s means it hung (a handle left open) or something broke.
    execFile(process.execPath, [DEMO], { cwd: ROOT, env, timeout: 30_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string; signal?: NodeJS.Signals }) | null;
      resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : null, signal: e?.signal ?? null, stdout, stderr });
    });
  });
}

/** The numbers captured by `re` in `text`; fails the test when the line is missing. */
function numbers(text: string, re: RegExp): number[] {
  const m = re.exec(text);
  assert.ok(m, `output has no line matching ${re}\n--- output ---\n${text}`);
  return m.slice(1).map(Number);
}

describe('npm run demo (examples/demo/demo.ts)', () => {
  let run: Run;

  before(async () => {
    run = await runDemo();
  });

  test('exits 0 on its own, with nothing on stderr', () => {
    assert.equal(run.signal, null, `the demo was killed (${run.signal}): it did not finish within 30 s\n${run.stdout}`);
    assert.equal(run.code, 0, `exit code ${run.code}\n--- stderr ---\n${run.stderr}`);
    assert.equal(run.stderr, '');
  });

  test('prints every scene and a summary', () => {
    for (const h of ['1. Canary split', '2. Header route', '3. Fault injection', '4. Retries', '5. mesh.explain()', 'Summary']) {
      assert.ok(run.stdout.includes(h), `missing "${h}"`);
    }
  });

  test('scene 1: about 90/10 between v1 and v2 over 200 requests', () => {
    const [v1 = 0, v2 = 0] = numbers(run.stdout, /1 canary\s+v1 ([\d.]+)% \/ v2 ([\d.]+)% of 200/);
    assert.ok(v1 >= 80 && v1 <= 97, `v1 got ${v1}%`);
    assert.ok(v2 >= 3 && v2 <= 20, `v2 got ${v2}%`);
    assert.equal(Math.round(v1 + v2), 100);
  });

  test('scene 2: jason reaches v2 every time, alice keeps the split', () => {
    const [jv2, jn, av1 = 0, av2 = 0] = numbers(run.stdout, /jason → v2 (\d+)\/(\d+); alice → v1 (\d+), v2 (\d+)/);
    assert.ok((jn ?? 0) > 0);
    assert.equal(jv2, jn, 'every jason request on v2');
    assert.ok(av1 > av2, `alice mostly on v1 (v1 ${av1}, v2 ${av2})`);
    assert.match(run.stdout, /^\s+jason\s+(\d+)\s+0\s+\1\s+0$/m, 'scene table: jason row is 0 v1, all v2, 0 v3');
  });

  test('scene 3: some requests delayed (DI), some aborted (FI) with 503, and their latencies shown', () => {
    const [delayed = 0, aborted = 0] = numbers(run.stdout, /delayed (\d+)\/100 \(DI\), aborted (\d+)\/100 \(FI, 503\)/);
    assert.ok(delayed >= 30 && delayed <= 70, `delayed ${delayed}/100 at 50%`);
    assert.ok(aborted > 0 && aborted <= 40, `aborted ${aborted}/100 at 20%`);
    // The demo shows people real latencies; they are not asserted (a shared machine makes any
    // bound on them a coin toss). That a fault delay holds a request for exactly its duration is
    // tested on the mesh clock in test/outbound/fault.test.ts.
    const medians = numbers(run.stdout, /median ([\d.]+) ms delayed vs ([\d.]+) ms not/);
    for (const m of medians) assert.ok(Number.isFinite(m) && m >= 0, `a median latency, got ${m}`);
    const [received = 0] = numbers(run.stdout, /ratings received (\d+) of 100/);
    assert.equal(received, 100 - aborted, 'aborted requests never reach ratings');
  });

  test('scene 4: without retries the caller sees v3 failures; with retries none, and v3 sees twice the hits', () => {
    const [failedWithout = 0, hitsWithout, failedWith, hitsWith] = numbers(
      run.stdout,
      /without: (\d+)\/50 failed, v3 saw (\d+) hits; with: (\d+)\/50 failed, v3 saw (\d+) hits/,
    );
    assert.ok(failedWithout > 0, 'v3 failures reach the caller without a retry rule');
    assert.equal(hitsWithout, 50);
    assert.equal(failedWith, 0, 'the retry rule rescues every failure');
    assert.equal(hitsWith, 100, 'each request took a failed attempt and a retry');
  });

  test('scene 5: explain names the rules skipped, the one matched and its destinations', () => {
    assert.match(run.stdout, /skipped: reviews\.jason-to-v2/);
    assert.match(run.stdout, /matched: reviews\.canary/);
    assert.match(run.stdout, /→ reviews:9080 subset v1 90%/);
    assert.match(run.stdout, /→ reviews:9080 subset v2 10%/);
    assert.match(run.stdout, /5 explain\s+routed by rule reviews\.canary after skipping 3: v1 90% \/ v2 10%/);
  });
});
