/**
 * Work a caller awaits keeps the process alive; background housekeeping does not. Each case
 * runs a mesh in a child process that has nothing else to do (the upstream lives in this
 * process), as a CLI job or a short script would: before, the process exited in the middle of
 * the call (ESM: exit 13, nothing printed).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { deadPort, startUpstream, type Upstream } from '../helpers/upstreams.ts';

const INDEX = new URL('../../src/index.ts', import.meta.url).href;
const dir = mkdtempSync(join(tmpdir(), 'meshlet-lifetime-'));
const upstreams: Upstream[] = [];
after(async () => {
  rmSync(dir, { recursive: true, force: true });
  await Promise.all(upstreams.map((u) => u.close()));
});

/** Runs `body` (module code with `createMesh` in scope) in a child Node; resolves with its exit code and output. */
function runChild(name: string, body: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const file = join(dir, `${name}.mts`);
  writeFileSync(file, `import { createMesh } from ${JSON.stringify(INDEX)};\n${body}\n`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += String(c)));
    child.stderr.on('data', (c) => (stderr += String(c)));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function resources(port: number, http: unknown[]): string {
  return JSON.stringify([
    { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'svc' }, spec: { hosts: ['svc.default.svc.cluster.local'], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '127.0.0.1', ports: { http: port } }] } },
    { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'svc' }, spec: { hosts: ['svc'], http } },
  ]);
}

describe('process lifetime', () => {
  it('createMesh against an unreachable control plane rejects with its startup-timeout message instead of exiting silently', async () => {
    const port = await deadPort();
    const r = await runChild(
      'startup',
      `try { await createMesh({ service: 'a', controlPlane: 'http://127.0.0.1:${port}', startupTimeoutMs: 300 }); console.log('started'); }
       catch (e) { console.log('rejected: ' + e.message); process.exitCode = 3; }`,
    );
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.match(r.stdout, /rejected: control plane http:\/\/127\.0\.0\.1:\d+: no config within 300 ms \(startupTimeoutMs\); last error: .*connection refused/);
  });

  it('a call waiting in retry backoff finishes', async () => {
    const up = await startUpstream('up', (_req, res, hit) => {
      res.statusCode = hit === 1 ? 503 : 200;
      res.end(hit === 1 ? 'busy' : 'ok');
    });
    upstreams.push(up);
    const http = [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 2, retryOn: '503', backoff: '300ms' } }];
    const r = await runChild('retry', `const mesh = await createMesh({ service: 'a', config: ${resources(up.port, http)} });
      const res = await mesh.fetch('http://svc/'); console.log('status ' + res.status + ' ' + await res.text()); await mesh.close();`);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /status 200 ok/);
    assert.equal(up.hits, 2);
  });

  it('a call waiting in a fault delay finishes', async () => {
    const up = await startUpstream('up2');
    upstreams.push(up);
    const http = [{ route: [{ destination: { host: 'svc' } }], fault: { delay: { fixedDelay: '300ms', percentage: { value: 100 } } } }];
    const r = await runChild('fault', `const mesh = await createMesh({ service: 'a', config: ${resources(up.port, http)} });
      const res = await mesh.fetch('http://svc/'); console.log('status ' + res.status + ' ' + res.headers.get('x-meshlet-response-flags')); await mesh.close();`);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /status 200 DI/);
  });
});
