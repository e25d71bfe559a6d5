/**
 * Which clock each timer of the mesh runs on. Time in a mesh is the injected Clock's
 * (`createMesh({ clock })`): a timeout, a wait or a retry delay goes through `clock.setTimer`, so a
 * test's ManualClock (or fake time) decides when it fires. What is not time goes through
 * `node:timers`: a "next turn" (`setImmediate`), which a test runner's fake timers must not hold
 * (they replace the globals), and a poll of process state that is no mesh timeout. A bare global
 * timer in the mesh's code is neither, and was the bug: the TLS connector's connect timeout and a
 * config directory's identity check ran on real time whatever the mesh's clock said, and the gRPC
 * server's close of a refused connection waited for a global (fakeable) setImmediate.
 *
 * The exceptions, each with why; the control plane server and the CLI have no mesh clock (real time).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { it } from 'node:test';

const SRC = new URL('../../src/', import.meta.url).pathname;

const EXCEPTIONS: Record<string, string> = {
  'core/clock.ts setTimeout': 'the system clock itself',
};

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'control-plane-server' || e.name === 'cli' ? [] : files(path);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [path] : [];
  });
}

it('the mesh calls no global timer: its clock for time, node:timers for turns', () => {
  const found: string[] = [];
  for (const file of files(SRC)) {
    const text = readFileSync(file, 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/\/\/.*$/gm, '');
    const imported = new Set([...text.matchAll(/import\s*\{([^}]*)\}\s*from\s*'node:timers'/g)].flatMap((m) => m[1]!.split(',').map((n) => n.trim())));
    for (const name of ['setTimeout', 'setInterval', 'setImmediate']) {
      if (imported.has(name)) continue;
      if (new RegExp(`(?<![.\\w])${name}\\(`).test(text)) found.push(`${relative(SRC, file)} ${name}`);
    }
  }
  assert.deepEqual(found.filter((f) => EXCEPTIONS[f] === undefined).sort(), []);
  assert.deepEqual(Object.keys(EXCEPTIONS).filter((e) => !found.includes(e)), [], 'an exception no longer needed');
});
