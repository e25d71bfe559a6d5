/**
 * Readiness of a child process by what it writes, not by a real-time limit.
 */
import type { ChildProcess } from 'node:child_process';

/**
 * Resolves with `check()`'s first truthy value, re-checked whenever `child` writes to stdout or
 * stderr (the caller collects the output: its own `data` listeners, added before this call, run
 * first). Rejects as soon as the child exits without it, saying `what()` (e.g. its stderr). No
 * real-time limit: how long a child takes to load meshlet's TypeScript sources depends on the
 * machine's load, not on what the test checks; a hang is the test runner's to catch.
 */
export function childReady<T>(child: ChildProcess, check: () => T | undefined | null | false | '', what: () => string): Promise<T> {
  return new Promise((resolve, reject) => {
    const done = () => {
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
    };
    const onData = () => {
      const v = check();
      if (v === undefined || v === null || v === false || v === '') return;
      done();
      resolve(v);
    };
    const onExit = (code: number | null, signal: string | null) => {
      done();
      reject(new Error(`the process exited (code ${code}, signal ${signal}) before it was ready: ${what()}`));
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
    onData();
  });
}
