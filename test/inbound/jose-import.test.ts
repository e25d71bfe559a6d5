/**
 * jose is imported when the first verification key is made (src/security/jwt/jwks.ts), not with
 * meshlet. If that import fails (a broken install), every token fails closed — and the failure is
 * said on the process's warning channel, not swallowed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const SCRIPT = (fail: boolean) => `
import { registerHooks } from 'node:module';
import { readFileSync } from 'node:fs';
${fail ? "registerHooks({ resolve(spec, ctx, next) { if (spec === 'jose') throw new Error('simulated: jose cannot be loaded'); return next(spec, ctx); } });" : ''}
const warnings = [];
process.on('warning', (w) => warnings.push(w.code + ' ' + w.message));
process.on('unhandledRejection', (e) => warnings.push('unhandled ' + e.message));
const { createMesh } = await import(${JSON.stringify(pathToFileURL(`${ROOT}src/index.ts`).href)});
const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: ${JSON.stringify(`${ROOT}examples/server/mesh`)}, logger: { warn: () => undefined } });
const server = mesh.createServer((req, res) => res.end(req.meshlet?.requestPrincipal ?? ''));
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const token = readFileSync(${JSON.stringify(`${ROOT}test/fixtures/istio/jwt/demo.jwt`)}, 'utf8').trim();
const statuses = [];
for (let i = 0; i < 2; i++) {
  const r = await fetch('http://127.0.0.1:' + server.address().port + '/headers', { headers: { authorization: 'Bearer ' + token, host: 'httpbin' } });
  statuses.push(r.status + ' ' + (await r.text()));
}
server.close();
await mesh.close();
console.log(JSON.stringify({ statuses, warnings: warnings.filter((w) => w.includes('jose') || w.startsWith('unhandled')) }));
`;

function run(fail: boolean): { statuses: string[]; warnings: string[] } {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', SCRIPT(fail)], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as { statuses: string[]; warnings: string[] };
}

it('a token verifies (jose loaded when the key was made)', () => {
  const r = run(false);
  assert.deepEqual(r.statuses, ['200 testing@secure.istio.io/testing@secure.istio.io', '200 testing@secure.istio.io/testing@secure.istio.io']);
  assert.deepEqual(r.warnings, []);
});

it('jose failing to import: every token is refused (401), and it is said once as a process warning, with no unhandled rejection', () => {
  const r = run(true);
  assert.deepEqual(r.statuses, ['401 Jwt verification fails', '401 Jwt verification fails']);
  assert.equal(r.warnings.length, 1, JSON.stringify(r.warnings));
  assert.match(r.warnings[0] ?? '', /^MESHLET_JOSE_IMPORT meshlet: importing jose failed, so every JWT fails verification: simulated: jose cannot be loaded/);
});
