/**
 * `createMesh({ signal })`: a start that waits for the control plane (unreachable here, with a
 * long `startupTimeoutMs`) is cancelled when the signal aborts — createMesh rejects with
 * `signal.reason`, as `fetch` does, and what it started is stopped (no timer or connection keeps
 * the process alive: the test would not end otherwise). An aborted signal refuses the start at
 * once; a signal that is not an AbortSignal is refused; a signal that never aborts changes nothing.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import { InvalidArgumentError } from '../../src/core/errors.ts';
import { createMesh } from '../../src/index.ts';
import { quietLogger } from './client-helpers.ts';

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('createMesh({ signal })', () => {
  it('aborted while waiting for the control plane: rejects with signal.reason, and leaves nothing running', async () => {
    // The real clock: its startup timer (kept alive until the start is decided) would hold the process for 10 minutes if left.
    const ac = new AbortController();
    const started = createMesh({ service: 'reviews', controlPlane: `http://127.0.0.1:${await closedPort()}`, identity: 'none', startupTimeoutMs: 600_000, logger: quietLogger, signal: ac.signal });
    await new Promise((r) => setTimeout(r, 20));
    ac.abort();
    await assert.rejects(started, (e: Error) => e === ac.signal.reason && e.name === 'AbortError');
  });

  it('with its own reason: rejects with that reason', async () => {
    const ac = new AbortController();
    const started = createMesh({ service: 'reviews', controlPlane: `http://127.0.0.1:${await closedPort()}`, identity: 'none', startupTimeoutMs: 600_000, clock: new ManualClock(), logger: quietLogger, signal: ac.signal });
    const reason = new Error('shutting down');
    setImmediate(() => ac.abort(reason));
    await assert.rejects(started, (e: Error) => e === reason);
  });

  it('already aborted: rejects at once, nothing started', async () => {
    await assert.rejects(createMesh({ service: 'reviews', controlPlane: 'http://127.0.0.1:1', signal: AbortSignal.abort() }), { name: 'AbortError' });
    await assert.rejects(createMesh({ service: 'reviews', config: [], signal: AbortSignal.abort() }), { name: 'AbortError' });
  });

  it('not an AbortSignal: InvalidArgumentError naming the option', async () => {
    await assert.rejects(createMesh({ service: 'reviews', config: [], signal: { aborted: false } as never }), (e: Error) => e instanceof InvalidArgumentError && /`signal` must be an AbortSignal/.test(e.message));
  });

  it('a signal that does not abort: the mesh starts as without one (embedded mode)', async () => {
    const mesh = await createMesh({ service: 'reviews', config: [], signal: new AbortController().signal });
    assert.equal(typeof mesh.fetch, 'function');
    await mesh.close();
  });
});
