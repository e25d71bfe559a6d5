/**
 * An exec readiness probe runs in its own process group (so that it can be killed with what it
 * started), which also takes it out of the reach of whatever ends the mesh's process. Its command
 * must not outlive that process: when the process exits — `process.exit()`, an uncaught
 * exception — the running command and its children are killed (SIGKILL). pilot-agent's
 * `exec.CommandContext` (pkg/istio-agent/health/health_probers.go) kills the command only at its
 * timeout; meshlet does better where Node gives it the chance (an `exit` listener).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gone } from '../helpers/process-gone.ts';
import { execProber } from '../../src/control-plane/probers.ts';

const PROBERS = new URL('../../src/control-plane/probers.ts', import.meta.url).href;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` (a safety bound for a failure, not a timing assertion). */
async function until(what: string, check: () => boolean, bound = 10_000): Promise<void> {
  for (let waited = 0; !check(); waited += 10) {
    if (waited > bound) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/**
 * Runs a process that starts an exec probe (a command that sleeps, with a child of its own) and,
 * once the command runs, ends as `how` says; resolves the pids of the command and its child once
 * the process has exited.
 */
async function probeThenEnd(how: 'exit' | 'throw', dir: string): Promise<{ code: number | null; pids: number[] }> {
  const pidFile = join(dir, 'pids');
  const command = `const c = require('node:child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' }); require('node:fs').writeFileSync(${JSON.stringify(pidFile)}, process.pid + ' ' + c.pid); setInterval(() => {}, 1000);`;
  const script = `
    import { execProber } from ${JSON.stringify(PROBERS)};
    import { existsSync, readFileSync } from 'node:fs';
    execProber({ command: [process.execPath, '-e', ${JSON.stringify(command)}] })(new AbortController().signal);
    const t = setInterval(() => {
      if (!existsSync(${JSON.stringify(pidFile)}) || !readFileSync(${JSON.stringify(pidFile)}, 'utf8').includes(' ')) return;
      clearInterval(t);
      if (${JSON.stringify(how)} === 'exit') process.exit(0);
      throw new Error('the app crashed');
    }, 10);
  `;
  const mesh = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  mesh.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const code = await new Promise<number | null>((r) => mesh.once('exit', r));
  assert.ok(existsSync(pidFile), `the probe command ran: ${stderr}`);
  if (how === 'throw') assert.match(stderr, /the app crashed/);
  return { code, pids: readFileSync(pidFile, 'utf8').split(' ').map(Number) };
}

describe('exec probe: gone with the process that ran it', { skip: process.platform === 'win32' }, () => {
  for (const how of ['exit', 'throw'] as const) {
    it(`the process ends (${how === 'exit' ? 'process.exit()' : 'an uncaught exception'}) while the command runs: the command and its child are killed`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'meshlet-exec-exit-'));
      let pids: number[] = [];
      try {
        const r = await probeThenEnd(how, dir);
        pids = r.pids;
        assert.equal(r.code, how === 'exit' ? 0 : 1);
        await until('the probe command and its child to be gone', () => pids.every(gone), 5000);
      } finally {
        // Without the fix they would be left running: clean up.
        for (const pid of pids) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {}
        }
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it("the exit listener is there only while a command runs (nothing left on the process after)", async () => {
    const before = process.listenerCount('exit');
    const probes = [execProber({ command: [process.execPath, '-e', 'setTimeout(() => {}, 200)'] }), execProber({ command: [process.execPath, '-e', 'process.exit(3)'] }), execProber({ command: ['/no/such/command'] })];
    const runs = probes.map((p) => p(new AbortController().signal));
    assert.equal(process.listenerCount('exit'), before + 1, 'one listener for every running command');
    const outcomes = await Promise.all(runs);
    assert.deepEqual(
      outcomes.map((o) => o.healthy),
      [true, false, false],
    );
    assert.equal(process.listenerCount('exit'), before);
  });
});
