/**
 * examples/grpc as a user runs it: server.ts (two grpc-js servers, each under a mesh of its own
 * with mesh.grpc.serverInterceptors()) and client.ts (a grpc-js client through the mesh) in
 * their own processes, the example's own Istio YAML with only the endpoint ports changed to the
 * ones the servers got (port 0) and its timeouts lengthened, as the client's deadline: none of
 * them fires in this run, and a loaded machine must not make one fire (a per-try timeout on
 * jason's first call, which also connects to v2, would add a call the servers' log is checked
 * for); the servers' AuthorizationPolicy denies DeleteReview before its
 * handler runs; the YAML validates cleanly and `meshlet explain` answers for the example's gRPC
 * methods, on the caller's side and (--inbound) on the server's.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

const ROOT = new URL('../../', import.meta.url).pathname;
const EXAMPLE = join(ROOT, 'examples/grpc');
const dir = mkdtempSync(join(tmpdir(), 'meshlet-example-grpc-'));

describe('examples/grpc (a grpc-js client through the mesh, two reviews versions under meshes of their own)', () => {
  let server: ChildProcess;
  let serverOut = '';
  let config = '';
  before(async () => {
    server = spawn(process.execPath, [join(EXAMPLE, 'server.ts')], { env: { ...process.env, PORT_V1: '0', PORT_V2: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
    server.stdout?.on('data', (d: Buffer) => {
      serverOut += d.toString();
    });
    const ports = await new Promise<{ v1: string; v2: string }>((resolve, reject) => {
      const check = () => {
        const v1 = /reviews v1 listening on 127\.0\.0\.1:(\d+)/.exec(serverOut)?.[1];
        const v2 = /reviews v2 listening on 127\.0\.0\.1:(\d+)/.exec(serverOut)?.[1];
        if (v1 !== undefined && v2 !== undefined) resolve({ v1, v2 });
      };
      server.stdout?.on('data', check);
      server.once('exit', (code) => reject(new Error(`the server exited (${code}): ${serverOut}`)));
    });
    const yaml = readFileSync(join(EXAMPLE, 'mesh/reviews.yaml'), 'utf8');
    const changed = yaml
      .replace('grpc: 50051}', `grpc: ${ports.v1}}`)
      .replace('grpc: 50052}', `grpc: ${ports.v2}}`)
      .replaceAll('timeout: 2s', 'timeout: 120s')
      .replace('perTryTimeout: 500ms', 'perTryTimeout: 60s');
    assert.equal(changed.match(/grpc: \d+}|timeout: 120s|perTryTimeout: 60s/g)?.length, 5, 'both ports, both routes\' timeouts and the per-try timeout replaced');
    assert.doesNotMatch(changed, /grpc: 5005[12]}|timeout: 2s|500ms/);
    config = dir;
    writeFileSync(join(dir, 'reviews.yaml'), changed);
    copyFileSync(join(EXAMPLE, 'mesh/authorization.yaml'), join(dir, 'authorization.yaml'));
  });
  after(async () => {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  });

  it('the client: anonymous to v1, jason to v2 (its UNAVAILABLE retried away), a server stream, a call with a deadline, DeleteReview denied by the server', async () => {
    const client = spawn(process.execPath, [join(EXAMPLE, 'client.ts')], { env: { ...process.env, MESH_CONFIG: config, DEADLINE_MS: '100000' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    client.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    client.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const code = await new Promise((r) => client.once('exit', r));
    assert.equal(code, 0, err);
    assert.deepEqual(out.trim().split('\n'), [
      'GetReview as anonymous: v1 (4 stars)',
      'GetReview as jason: v2 (4 stars)',
      'GetReview as jason: v2 (4 stars)',
      'ListReviews: v1:5, v1:4',
      'GetReview with a 100s deadline: v1',
      'DeleteReview: PERMISSION_DENIED RBAC: access denied',
    ]);
    // What the servers saw (their log lines may reach this process after the client's exit):
    // each of jason's calls failed once on v2 and was sent again. (DeleteReview's handler answers
    // OK: the client's PERMISSION_DENIED line above is the servers' meshes denying it.)
    for (let i = 0; i < 200 && !serverOut.includes('product 3 for anonymous'); i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(serverOut.trim().split('\n').filter((l) => !l.includes('listening')), [
      'v1 GetReview product 1 for anonymous: OK',
      'v2 GetReview product 1 for jason: UNAVAILABLE',
      'v2 GetReview product 1 for jason: OK',
      'v2 GetReview product 1 for jason: UNAVAILABLE',
      'v2 GetReview product 1 for jason: OK',
      'v1 ListReviews product 2',
      'v1 GetReview product 3 for anonymous: OK',
    ]);
  });

  it('the YAML validates with no finding, and meshlet explain answers for the gRPC methods (caller and server side)', () => {
    const main = join(ROOT, 'src/cli/main.ts');
    const v = spawnSync(process.execPath, [main, 'validate', join(EXAMPLE, 'mesh')], { encoding: 'utf8' });
    assert.equal(v.status, 0, v.stdout + v.stderr);
    assert.match(v.stdout, /0 error\(s\), 0 warning\(s\), 0 info\(s\); 4 valid resource\(s\)/);
    const e = spawnSync(process.execPath, [main, 'explain', join(EXAMPLE, 'mesh'), '--service', 'productpage', '-H', 'end-user: jason', 'grpc://reviews:9090/reviews.Reviews/GetReview'], { encoding: 'utf8' });
    assert.equal(e.status, 0, e.stderr);
    assert.match(e.stdout, /^Matched rule: {2}reviews\.jason-to-v2 /m);
    assert.match(e.stdout, /^Retries: {7}3× on UNAVAILABLE, CANCELLED, connect-failure, perTry 500ms;/m);
    assert.match(e.stdout, /subset v2 {2}100%/);
    const inbound = (method: string) => spawnSync(process.execPath, [main, 'explain', join(EXAMPLE, 'mesh'), '--service', 'reviews', '-l', 'app=reviews,version=v1', '--inbound', `grpc://reviews:9090/reviews.Reviews/${method}`], { encoding: 'utf8' });
    const denied = inbound('DeleteReview');
    assert.equal(denied.status, 0, denied.stderr);
    assert.match(denied.stdout, /^Authorization: policies: ALLOW default\/reviews-readers$/m);
    assert.match(denied.stdout, /^gRPC caller: {3}PERMISSION_DENIED \(403 as gRPC maps it\)$/m);
    const allowed = inbound('GetReview');
    assert.equal(allowed.status, 0, allowed.stderr);
    assert.doesNotMatch(allowed.stdout, /PERMISSION_DENIED/);
  });
});
