/**
 * A mesh fed a large config by the control plane keeps serving while it takes it in (issue 11,
 * point 12): the push of 6,000 resources is parsed, checked and compiled in slices, by the
 * control plane and by the mesh, so requests through the mesh meanwhile wait a small part of
 * the push's time, not all of it. (What it costs is measured in bench/config/large.ts.)
 */
import assert from 'node:assert/strict';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { largeConfig } from '../helpers/config-dir.ts';
import { call, serviceEntry, startUpstream, type Upstream } from '../helpers/upstreams.ts';
import { quietLogger, startTestControlPlane, type TestControlPlane, waitFor } from './client-helpers.ts';

let upstream: Upstream;
let t: TestControlPlane;
let mesh: Mesh;
before(async () => {
  upstream = await startUpstream('u');
  t = await startTestControlPlane({ se: [serviceEntry('local', 'local.example', 80, [{ port: upstream.port }])] });
  mesh = await createMesh({ service: 'client', controlPlane: t.cp.url, token: await t.cp.mintToken({ service: 'client', namespace: 'default' }), logger: quietLogger });
});
after(async () => {
  await mesh.close();
  await t.close();
  await upstream.close();
});

test('while a push of 6,000 resources is taken in, requests through the mesh wait a small part of its time', async () => {
  // Requests one after the other; the longest wait for one is compared with the whole push (a
  // ratio in one run, not a time limit). Taken in one piece, the push held them for most of it.
  let done = false;
  const answers: number[] = [];
  const requests = (async () => {
    while (!done) {
      const r = await call(mesh, 'http://local.example/');
      assert.equal(r.status, 200);
      answers.push(performance.now());
    }
  })();
  await new Promise((r) => setTimeout(r, 20));
  const start = performance.now();
  const applied = waitFor(mesh, 'config', () => true, 60_000);
  const file = join(t.configDir, 'large.json');
  await writeFile(`${file}.tmp`, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: largeConfig(2000) }));
  await rename(`${file}.tmp`, file);
  await applied;
  const end = performance.now();
  done = true;
  await requests;
  assert.ok(mesh.snapshot.routes.virtualHosts.length > 2000, 'the large config is in use');
  const during = [start, ...answers.filter((x) => x > start && x < end), end];
  const longestWait = Math.max(...during.slice(1).map((x, i) => x - (during[i] as number)));
  assert.ok(during.length > 3, `${during.length - 2} requests answered during the push`);
  assert.ok(longestWait < 0.5 * (end - start), `a request waited ${longestWait.toFixed(0)} ms of the push's ${(end - start).toFixed(0)} ms`);
});
