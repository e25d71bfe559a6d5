/**
 * Waiting in tests for something that happens asynchronously, bounded in real time only as a
 * guard against a hang (the bound is never what a test checks, so it is generous: a loaded CI
 * machine must not turn a slow pass into a failure).
 */
import assert from 'node:assert/strict';

/** Polls `cond` every `everyMs` until it holds; fails naming `what` after `ms` of real time. */
export async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000, everyMs = 2): Promise<void> {
  const end = performance.now() + ms;
  while (!(await cond())) {
    if (performance.now() > end) assert.fail(`timed out waiting for ${what} (${ms} ms)`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
