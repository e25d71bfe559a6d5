/**
 * docs/from-linkerd.md's worked example, run as written (only its `'meshlet'` and
 * `'meshlet/telemetry'` imports pointed at the source) after `meshlet ca init .meshlet/ca`, as the
 * page says (`express` from the repository's node_modules): three meshes on 127.0.0.1 — a weighted HTTPRoute split with retries hiding web-v2's
 * 503s, a header route, the retry budget in `mesh.explain`, a default-deny AuthorizationPolicy
 * refusing another identity, STRICT mTLS refusing a plaintext caller, and per-route golden
 * metrics from the Prometheus endpoint. The child must exit on its own (everything closed).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, test } from 'node:test';

const ROOT = new URL('../../', import.meta.url).pathname;
const DIR = mkdtempSync(join(tmpdir(), 'meshlet-from-linkerd-'));
after(() => rmSync(DIR, { recursive: true, force: true }));

function example(): string {
  const md = readFileSync(join(ROOT, 'docs', 'from-linkerd.md'), 'utf8');
  const blocks = [...md.matchAll(/^```ts\n([\s\S]*?)^```/gm)].map((m) => m[1] as string).filter((code) => code.startsWith('import '));
  assert.equal(blocks.length, 1);
  return (blocks[0] as string)
    .replace("from 'meshlet';", `from ${JSON.stringify(join(ROOT, 'src', 'index.ts'))};`)
    .replace("from 'meshlet/telemetry';", `from ${JSON.stringify(join(ROOT, 'src', 'telemetry', 'sdk', 'index.ts'))};`)
    .replace("from 'express';", `from ${JSON.stringify(pathToFileURL(createRequire(join(ROOT, 'package.json')).resolve('express')).href)};`);
}

test("docs/from-linkerd.md's worked example does what the page says, and exits once done", () => {
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  const ca = spawnSync(process.execPath, [join(ROOT, 'src', 'cli', 'main.ts'), 'ca', 'init', '.meshlet/ca'], { cwd: DIR, encoding: 'utf8', env });
  assert.equal(ca.status, 0, ca.stderr);
  writeFileSync(join(DIR, 'example.ts'), example());
  const r = spawnSync(process.execPath, ['example.ts'], { cwd: DIR, encoding: 'utf8', timeout: 60_000, env });
  const out = r.stdout;
  assert.equal(r.status, 0, out + r.stderr);
  // Every call frontend made succeeded: web-v2's 503s were retried.
  const answers = /^answers \{ (.*) \}$/m.exec(out)?.[1] ?? '';
  assert.match(answers, /'200 web-v1': \d+/);
  for (const part of answers.split(', ')) assert.match(part, /^'200 web-v[12]': \d+$/, out);
  assert.match(out, /^canary 200 web-v2 for spiffe:\/\/cluster\.local\/ns\/shop\/sa\/frontend$/m);
  assert.match(out, /\n {6}retries: retry budget 20% of active requests, min 10: 10 retries allowed now, 0 active\n/);
  assert.match(out, /timeout 2000ms; retries 2× on connect-failure,refused-stream,unavailable,cancelled,503/);
  assert.match(out, /^intruder 403 RBAC: access denied$/m);
  assert.match(out, /^plaintext connection refused$/m);
  assert.match(out, /^stat source frontend -> web-v1 shop~8080~web\.shop\.svc\.cluster\.local\.split 100\.0% of \d+$/m);
  assert.match(out, /^stat source frontend -> web-v2 shop~8080~web\.shop\.svc\.cluster\.local\.canary 100\.0% of 1$/m);
  assert.match(out, /^stat destination intruder -> web-v1 {2}100\.0% of 1$/m);
});
