/**
 * What a test runner's open-handle check sees of meshlet: importing it, and a mesh created, used
 * and closed, leave no async resource that Jest's `--detectOpenHandles` reports. Jest (30,
 * @jest/core collectHandles) tracks every async resource created from then on, forgets it on its
 * `destroy` hook, and at the end reports each one left that has no `hasRef()` or whose `hasRef()`
 * is true — after a garbage collection, so per-call resources that are gone are not counted.
 * The child process below does the same with `node:async_hooks`, for meshlet's own resources.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

const SRC = join(new URL('../../', import.meta.url).pathname, 'src', 'index.ts');

const CHILD = `
import { createHook } from 'node:async_hooks';
import http from 'node:http';
const live = new Map();
createHook({
  init(id, type, _trigger, resource) {
    if (!type.startsWith('meshlet')) return;
    const ref = 'hasRef' in resource ? new WeakRef(resource) : undefined;
    live.set(id, { type, active: () => (ref === undefined ? true : (ref.deref()?.hasRef() ?? false)) });
  },
  destroy(id) { live.delete(id); },
}).enable();
const { createMesh } = await import(${JSON.stringify(SRC)});
const server = http.createServer((req, res) => res.end('ok'));
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const mesh = await createMesh({ service: 'productpage', config: [{ apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'reviews' },
  spec: { hosts: ['reviews'], ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }], resolution: 'STATIC', endpoints: [{ address: '127.0.0.1', ports: { http: server.address().port } }] } }] });
const app = mesh.createServer((req, res) => res.end('in'));
await new Promise((r) => app.listen(0, '127.0.0.1', r));
const res = await mesh.fetch('http://reviews:9080/');
await res.text();
await fetch('http://127.0.0.1:' + app.address().port + '/').then((r) => r.text());
await mesh.close();
await new Promise((r) => server.close(r));
for (let i = 0; i < 3; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 10)); }
console.log(JSON.stringify([...live.values()].filter((h) => h.active()).map((h) => h.type)));
`;

test("importing meshlet and a mesh's whole life leave no async resource Jest's --detectOpenHandles reports", () => {
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', CHILD], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').at(-1) as string), []);
});
