/**
 * A watch stream whose first events fill its socket keeps getting events and heartbeats, on
 * Node 24 and on the oldest Node meshlet supports. On Node 22.19 a corked response write that
 * filled the socket could leave `writableNeedDrain` set for good and never emit 'drain'
 * (nodejs/node#60432); the hub, holding changes back while that flag was set, then sent the
 * stream nothing — no endpoints, no change, no ping — and the mesh never started (its
 * startupTimeoutMs passed). The hub now reads the unsent bytes instead of the flag.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { OLD_NODE_VERSION, oldNodePath, skipWithout } from '../../helpers/tools.ts';

const SCRIPT = fileURLToPath(new URL('../fixtures/watch-large-config.ts', import.meta.url));

function run(node: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    execFile(node, [SCRIPT], { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err !== null) return reject(new Error(`${err.message}\n${stdout}\n${stderr}`));
      resolve(JSON.parse(stdout.trim().split('\n').at(-1) as string) as Record<string, unknown>);
    });
  });
}

describe('a watch stream with a config of about 100 KB', () => {
  for (const [label, node] of [
    ['Node 24', () => process.execPath],
    [`Node ${OLD_NODE_VERSION}`, oldNodePath],
  ] as const) {
    it(`on ${label}: gets hello, config and endpoints, then the next change and heartbeats`, { skip: label === 'Node 24' ? false : skipWithout('node22') }, async () => {
      const out = await run(node());
      assert.deepEqual((out.first as string[]).filter((e) => e !== 'trust-bundle'), ['hello', 'mesh-config', 'config', 'endpoints'], JSON.stringify(out));
      assert.equal(out.applied, 200);
      assert.equal(out.configAfter, true, JSON.stringify(out));
      assert.equal(out.pingAfter, true, JSON.stringify(out));
    });
  }
});
