/**
 * The README's quick start, run as written: its YAML validates with no error or warning, and its
 * code runs against real servers (the WorkloadEntry addresses point at local upstreams instead of
 * 10.0.0.x; nothing else is changed), reaching both subsets through mesh.fetch, Node's fetch and
 * setGlobalDispatcher; and it typechecks as a TypeScript user's app (under @types/node) would.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, test } from 'node:test';
import { startUpstream, type Upstream } from '../helpers/upstreams.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'meshlet-readme-'));
const ups: Upstream[] = [];
after(async () => {
  rmSync(dir, { recursive: true, force: true });
  await Promise.all(ups.map((u) => u.close()));
});

function quickStart(): { yaml: string; ts: string } {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Quick start'));
  const block = (lang: string) => {
    const fence = '```';
    const m = new RegExp(`${fence}${lang}\\n([\\s\\S]*?)${fence}`).exec(section);
    assert.ok(m, `the quick start has a ${lang} block`);
    return m[1] as string;
  };
  return { yaml: block('yaml'), ts: block('ts') };
}

test('the quick-start YAML validates cleanly with meshlet validate', () => {
  const { yaml } = quickStart();
  mkdirSync(join(dir, 'plain'));
  writeFileSync(join(dir, 'plain', 'reviews.yaml'), yaml);
  const r = spawnSync(process.execPath, [join(ROOT, 'src/cli/main.ts'), 'validate', join(dir, 'plain')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /0 error\(s\), 0 warning\(s\)/);
});

test('the quick-start code runs: every way of calling reaches the reviews instances through the split', async () => {
  const { yaml, ts } = quickStart();
  const v1 = await startUpstream('v1');
  const v2 = await startUpstream('v2');
  ups.push(v1, v2);
  const local = yaml
    .replace('address: 10.0.0.11', `address: 127.0.0.1, ports: {http: ${v1.port}}`)
    .replace('address: 10.0.0.12', `address: 127.0.0.1, ports: {http: ${v2.port}}`);
  assert.notEqual(local, yaml);
  mkdirSync(join(dir, 'app', 'mesh'), { recursive: true });
  writeFileSync(join(dir, 'app', 'mesh', 'reviews.yaml'), local);
  const code = ts.replace("from 'meshlet'", `from ${JSON.stringify(join(ROOT, 'src/index.ts'))}`).replace("from 'undici'", `from ${JSON.stringify(join(ROOT, 'node_modules/undici/index.js'))}`);
  writeFileSync(join(dir, 'app', 'app.mts'), code);
  const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn(process.execPath, ['app.mts'], { cwd: join(dir, 'app'), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => (out += String(c)));
    child.stderr.on('data', (c) => (out += String(c)));
    child.on('close', (c) => resolve({ code: c, out }));
  });
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /config \w{12} 0 findings/);
  assert.equal(v1.hits + v2.hits, 2, 'mesh.fetch and Node fetch each made one call');
  assert.match(r.out, /reviews/);
});

test('the quick-start code typechecks as an app under @types/node would (Node\'s own fetch with mesh.dispatcher included)', () => {
  const { ts } = quickStart();
  // Inside node_modules/.cache so that 'undici' and @types/node resolve as they do for an app.
  mkdirSync(join(ROOT, 'node_modules/.cache'), { recursive: true });
  const at = mkdtempSync(join(ROOT, 'node_modules/.cache/meshlet-readme-types-'));
  try {
    writeFileSync(join(at, 'app.mts'), ts.replace("from 'meshlet'", `from ${JSON.stringify(relative(at, join(ROOT, 'src/index.ts')))}`));
    writeFileSync(join(at, 'tsconfig.json'), JSON.stringify({ extends: join(ROOT, 'tsconfig.json'), compilerOptions: { typeRoots: [join(ROOT, 'node_modules/@types')] }, include: [], files: ['app.mts'] }));
    const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(at, 'tsconfig.json')], { encoding: 'utf8' });
    assert.equal(r.status, 0, `tsc on the README's quick start:\n${r.stdout}${r.stderr}`);
  } finally {
    rmSync(at, { recursive: true, force: true });
  }
});
