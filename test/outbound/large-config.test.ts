/**
 * A large config does not stop the mesh (issue 11, point 12): validating, analysing and
 * compiling 9,000 resources runs in slices, and requests sent meanwhile are answered before it
 * ends. (What it costs is measured in bench/config/large.ts, not asserted here.)
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { largeConfig, loopTurns } from '../helpers/config-dir.ts';
import { call, startUpstream, type Upstream } from '../helpers/upstreams.ts';

let upstream: Upstream;
let mesh: Mesh;
before(async () => {
  upstream = await startUpstream('u');
  const local = {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'local', namespace: 'default' },
    spec: { hosts: ['local.example'], location: 'MESH_EXTERNAL', resolution: 'STATIC', ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '127.0.0.1', ports: { http: upstream.port } }] },
  };
  mesh = await createMesh({ service: 'client', config: [local, ...largeConfig(3000)], logger: { warn: () => undefined } });
});
after(async () => {
  await mesh.close();
  await upstream.close();
});

test('mesh.reload() of 9,000 resources lets the event loop run: a request sent meanwhile is answered before the reload ends', async () => {
  const order: string[] = [];
  const turns = loopTurns();
  const reloading = mesh.reload().then((ok) => {
    order.push('reload');
    return ok;
  });
  const answered = call(mesh, 'http://local.example/').then((r) => {
    order.push('request');
    return r;
  });
  const [ok, r] = await Promise.all([reloading, answered]);
  const n = turns.stop();
  assert.equal(ok, true);
  assert.equal(r.status, 200);
  assert.deepEqual(order, ['request', 'reload'], 'the request did not wait for the reload');
  assert.ok(n >= 5, `the event loop turned ${n} times during the reload`);
});
