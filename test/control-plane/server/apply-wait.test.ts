/**
 * `meshlet apply --wait` and `meshlet delete --wait` (the installed CLI's code, as a child
 * process) against a real control plane with real meshes connected: the command returns once
 * every connected workload ACKed the version the change made, names the ones that did not in
 * time, and stops at a NACK with its reasons.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../../src/index.ts';
import { meshletAsync } from '../../cli/helpers.ts';
import { api, startTestServer, type TestServer, until, watch } from './helpers.ts';

const quietLogger = { warn: () => {}, info: () => {} };

function vsYaml(name: string, timeout: string): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: default}
spec:
  hosts: [${name}.example.com]
  http:
  - timeout: ${timeout}
    route:
    - destination: {host: ratings}
`;
}

describe('meshlet apply --wait / delete --wait', () => {
  let s: TestServer;
  let meshes: Mesh[] = [];
  const env = { MESHLET_CONTROL_PLANE: '', MESHLET_TOKEN: '' };
  const cli = (args: string[]) => meshletAsync([...args, '--control-plane', s.url, '--token', s.admin], { env });
  let n = 0;
  const file = (timeout: string) => {
    const path = join(s.configDir, '..', `vs-${++n}.yaml`);
    writeFileSync(path, vsYaml(`w${n}`, timeout));
    return path;
  };

  before(async () => {
    s = await startTestServer();
    for (const service of ['reviews', 'ratings']) {
      const token = await s.cp.mintToken({ service, namespace: 'default' });
      meshes.push(await createMesh({ service, controlPlane: s.url, token, identity: 'none', logger: quietLogger }));
    }
  });
  after(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    meshes = [];
    await s.close();
  });

  it('apply --wait returns once both meshes run the new config version, and says so', async () => {
    const r = await cli(['apply', '-f', file('2s'), '--wait']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines[0], 'VirtualService default/w1 created');
    const m = /^config version ([0-9a-f]+): 2\/2 connected workloads ACKed it$/.exec(lines[1] ?? '');
    assert.ok(m, r.stdout);
    // The version it waited for is the one the meshes run now (no later change in between).
    for (const mesh of meshes) assert.equal(mesh.configVersion, m[1]);
    assert.equal(r.stderr, '');
  });

  it('delete --wait -o json adds how many workloads ACKed; without --wait the document is as before', async () => {
    const created = await cli(['apply', '-f', file('3s'), '-o', 'json']);
    assert.equal(created.code, 0, created.stderr);
    assert.equal(JSON.parse(created.stdout).distributed, undefined);
    const r = await cli(['delete', 'vs', `w${n}`, '--wait', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.deepEqual(doc.distributed, { workloads: 2, acked: 2 });
    for (const mesh of meshes) assert.equal(mesh.configVersion, doc.version);
  });

  it('a workload that does not ACK in time: exit 1 naming it and where it is, the change stays applied', async () => {
    const token = await s.cp.mintToken({ service: 'details', namespace: 'default' });
    const w = await watch(s.url, 'service=details&namespace=default', { token });
    try {
      const first = await w.next('config');
      const r = await cli(['apply', '-f', file('4s'), '--wait', '--wait-timeout', '1s']);
      assert.equal(r.code, 1);
      assert.match(r.stdout, /^VirtualService default\/w\d+ created\n$/, 'what was applied is printed before the wait');
      assert.match(r.stderr, /timed out after 1 s \(--wait-timeout\) waiting for config version [0-9a-f]+ \(the change stays applied\): 2\/3 connected workloads ACKed it; not yet:\n {2}default\/details \(connection [^)]+\) is at no config version yet/);
      assert.notEqual(first.data.version, undefined);
      const stored = await api(s.url, 'GET', `/v1/resources/VirtualService/default/w${n}`, { token: s.admin });
      assert.equal(stored.status, 200);
    } finally {
      w.close();
    }
  });

  it('a NACK of the new version ends the wait at once with the workload and its reasons', async () => {
    const token = await s.cp.mintToken({ service: 'details', namespace: 'default' });
    const w = await watch(s.url, 'service=details&namespace=default', { token });
    try {
      const hello = await w.next('hello');
      const first = await w.next('config');
      await api(s.url, 'POST', '/v1/ack', { token, body: { connection: hello.data.connection, kind: 'config', version: first.data.version, status: 'ACK' } });
      const running = cli(['apply', '-f', file('5s'), '--wait', '--wait-timeout', '60s']);
      const pushed = await w.next('config', 20_000);
      await api(s.url, 'POST', '/v1/ack', { token, body: { connection: hello.data.connection, kind: 'config', version: pushed.data.version, status: 'NACK', reasons: ['VirtualService default/w: refused here'] } });
      const r = await running;
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`config version ${pushed.data.version} was refused \\(NACK\\) by 1 workload\\(s\\), which keep their previous config \\(the change stays applied\\):\\n {2}default/details \\(connection ${hello.data.connection}\\): VirtualService default/w: refused here`));
    } finally {
      w.close();
    }
  });

  it('a replica that does not answer is named on stderr; the others are waited for', async () => {
    // A closed port: connection refused.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const dead = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
    await new Promise<void>((r) => probe.close(() => r()));
    // The workloads the earlier tests opened by hand are gone from the count.
    await until(async () => ((await api(s.url, 'GET', '/status', { token: s.admin })).body.summary as string).startsWith('2/2') || undefined, 10_000, 'the hand-made streams to disconnect');
    const r = await meshletAsync(['apply', '-f', file('6s'), '--wait', '--control-plane', `${s.url},${dead}`, '--token', s.admin], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /: 2\/2 connected workloads ACKed it\n$/);
    // Named with why (here: refused), so a replica cut off by a wrong CA or URL is told apart from one that is down.
    assert.match(r.stderr, new RegExp(`^Warning: ${dead.replaceAll('.', '\\.')} did not answer \\(cannot reach the control plane at ${dead.replaceAll('.', '\\.')}: [^\\n]*ECONNREFUSED[^\\n]*\\); its workloads were not waited for\\n$`));
  });

  it('usage: --wait-timeout without --wait, or not a duration, exits 2', async () => {
    const a = await cli(['apply', '-f', file('7s'), '--wait-timeout', '5s']);
    assert.equal(a.code, 2);
    assert.match(a.stderr, /--wait-timeout: only with --wait/);
    const b = await cli(['delete', 'vs', 'w1', '--wait', '--wait-timeout', 'soon']);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /--wait-timeout: /);
  });
});
