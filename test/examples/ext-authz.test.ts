/**
 * examples/ext-authz as a user runs it: the script in its own process (an Express app behind the
 * mesh and the gRPC authorizer it asks), curl as the client.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { skipWithout } from '../helpers/tools.ts';

const ROOT = new URL('../../', import.meta.url).pathname;

function curl(port: number, path: string, ...args: string[]): { status: number; body: string } {
  const r = spawnSync('curl', ['-s', '-o', '-', '-w', '\n%{http_code}', ...args, `http://127.0.0.1:${port}${path}`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const i = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i) };
}

describe('examples/ext-authz (CUSTOM with a gRPC authorizer, curl as the client)', { skip: skipWithout('curl') }, () => {
  let child: ChildProcess;
  let port = 0;
  before(async () => {
    child = spawn(process.execPath, [`${ROOT}examples/ext-authz/server.ts`], { env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
    port = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.stderr?.on('data', (d: Buffer) => {
        out += d.toString();
      });
      child.once('exit', (code) => reject(new Error(`the example exited (${code}): ${out}`)));
    });
  });
  after(async () => {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  });

  it('a path no CUSTOM rule matches: 200, the authorizer not asked', () => {
    assert.equal(curl(port, '/ip').status, 200);
  });

  it("without x-ext-authz: allow, the authorizer's 403 and body", () => {
    assert.deepEqual(curl(port, '/headers'), { status: 403, body: 'denied by ext_authz for not found header `x-ext-authz: allow` in the request' });
  });

  it('with x-ext-authz: allow, 200 and the header the authorizer added', () => {
    const r = curl(port, '/headers', '-H', 'x-ext-authz: allow');
    assert.equal(r.status, 200, r.body);
    const body = JSON.parse(r.body) as { headers: Record<string, string>; meshlet: { authz: { decision: string; provider: string } } };
    assert.equal(body.headers['x-ext-authz-check-result'], 'allowed');
    assert.equal(body.headers['x-ext-authz-check-received'], `GET 127.0.0.1:${port}/headers`);
    assert.deepEqual([body.meshlet.authz.decision, body.meshlet.authz.provider], ['allow', 'sample-ext-authz-grpc']);
  });
});
