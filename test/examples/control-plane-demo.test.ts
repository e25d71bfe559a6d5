/**
 * Runs `examples/control-plane/demo.ts` (`npm run demo:control-plane`) as a child process and
 * checks that what it prints shows each step working on real traffic: registration, a pushed
 * split, a refused change, a graceful shutdown without failures, and the status.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { before, test } from 'node:test';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEMO = fileURLToPath(new URL('../../examples/control-plane/demo.ts', import.meta.url));
let out = '';
let code: number | null = null;

before(async () => {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env['NODE_TEST_CONTEXT'];
  await new Promise<void>((resolve) => {
    execFile(process.execPath, [DEMO], { cwd: ROOT, env, timeout: 60_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null;
      out = `${stdout}${stderr}`;
      resolve();
    });
  });
});

function counts(line: RegExp): Record<string, number> {
  const m = line.exec(out);
  assert.ok(m, `no line matching ${line}\n--- output ---\n${out}`);
  return Object.fromEntries([...(m[1] as string).matchAll(/([\w ]+): (\d+)/g)].map((x) => [(x[1] as string).trim(), Number(x[2])]));
}

test('the demo exits 0 on its own', () => {
  assert.equal(code, 0, out);
});

test('registered instances are found; the first route sends everything to v1', () => {
  assert.match(out, /reviews v1 listening on 127\.0\.0\.1:\d+, registered as WorkloadEntry default\/reviews-/);
  assert.deepEqual(counts(/route v1=100 → 20 calls: (.*)/), { v1: 20 });
});

test('an applied 50/50 split reaches productpage and moves its traffic', () => {
  assert.match(out, /VirtualService default\/reviews configured — applied by productpage/);
  const c = counts(/^ {2}40 calls: (.*)$/m);
  assert.equal((c.v1 ?? 0) + (c.v2 ?? 0), 40);
  assert.ok((c.v1 ?? 0) >= 8 && (c.v2 ?? 0) >= 8, `both versions serve under a 50/50 split: ${JSON.stringify(c)}`);
});

test('a change naming an undefined subset is refused and the old config keeps serving', () => {
  assert.match(out, /exit 1: meshlet: configuration rejected, 1 error\(s\):\n.*referenced subset "v3"/);
  const c = counts(/still serving \w+; 10 calls: (.*)/);
  assert.equal((c.v1 ?? 0) + (c.v2 ?? 0), 10, 'no failures while the bad change is refused');
});

test('a deregistered, draining instance gets no traffic and nothing fails', () => {
  assert.deepEqual(counts(/during its drain, 40 calls: (.*)/), { v2: 40 });
});

test('the status shows every connected workload synced', () => {
  assert.match(out, /2\/2 workloads at config version \w+/);
  assert.match(out, /default\s+productpage\s+.*SYNCED/);
});
