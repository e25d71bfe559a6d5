/**
 * A test runner's fake timers — `vi.useFakeTimers()` (Vitest fakes setTimeout, setImmediate,
 * setInterval, Date and performance on `globalThis`), `jest.useFakeTimers()` — installed before
 * `createMesh`: the mesh must still come up. Its config is compiled in slices with a turn of the
 * event loop between them, and those turns are not time: were they taken with the global
 * `setImmediate`, a faked one would never run them and `createMesh` would never resolve (a test
 * that hangs until the runner's timeout, with nothing to say why). A mirrored copy, sent a turn
 * after the call it copies, is sent whatever the fake does too, and `mesh.close()` closes its
 * servers' idle keep-alive connections (swept on network time, not the mesh's clock) with the
 * global `setTimeout` and `setInterval` faked — before, a test's `afterAll(() => mesh.close())` hung until fake time
 * was advanced. Time itself (timeouts,
 * backoff) is the mesh's clock's, which fake timers may drive (docs/testing.md).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as realSetTimeout } from 'node:timers/promises';
import { after, test } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';

const SE = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'ServiceEntry',
  metadata: { name: 'reviews' },
  spec: { hosts: ['reviews'], ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }], resolution: 'STATIC', endpoints: [{ address: '127.0.0.1' }] },
};
const dir = mkdtempSync(join(tmpdir(), 'meshlet-fake-timers-'));
writeFileSync(join(dir, 'reviews.json'), JSON.stringify(SE));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `fn` with the global setImmediate replaced by one that never runs its callback, as a fake timer holds it until the test advances time. */
async function withHeldImmediates<T>(fn: () => Promise<T>): Promise<T | 'hung'> {
  const real = globalThis.setImmediate;
  globalThis.setImmediate = ((): NodeJS.Immediate => ({}) as NodeJS.Immediate) as unknown as typeof setImmediate;
  try {
    return await Promise.race([fn(), realSetTimeout(5000, 'hung' as const)]);
  } finally {
    globalThis.setImmediate = real;
  }
}

for (const [name, config] of [
  ['resource objects', [SE]],
  ['a directory of config files', dir],
] as const) {
  test(`createMesh with ${name} resolves while the global setImmediate is faked`, async () => {
    const mesh = await withHeldImmediates(() => createMesh({ service: 'productpage', config, watch: false }));
    assert.notEqual(mesh, 'hung', 'createMesh never resolved');
    assert.match(String((mesh as Mesh).explain({ url: 'http://reviews:9080/' })), /reviews/);
    const reloaded = await withHeldImmediates(() => (mesh as Mesh).reload());
    assert.notEqual(reloaded, 'hung', 'mesh.reload() never resolved');
    await (mesh as Mesh).close();
  });
}

test('a mirrored copy is sent while the global setImmediate is faked', async () => {
  const seen: string[] = [];
  const servers: Server[] = [];
  const listen = async (name: string): Promise<number> => {
    const server = createServer((req, res) => {
      seen.push(`${name} ${req.url}`);
      res.end(name);
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  };
  const entry = (host: string, port: number) => ({ ...SE, metadata: { name: host }, spec: { ...SE.spec, hosts: [host], endpoints: [{ address: '127.0.0.1', ports: { http: port } }] } });
  const mesh = await createMesh({
    service: 'productpage',
    config: [
      entry('reviews', await listen('reviews')),
      entry('shadow', await listen('shadow')),
      { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'reviews' }, spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }], mirror: { host: 'shadow' } }] } },
    ],
  });
  try {
    const got = await withHeldImmediates(async () => {
      assert.equal(await (await mesh.fetch('http://reviews:9080/r')).text(), 'reviews');
      for (let i = 0; i < 500 && !seen.includes('shadow /r'); i++) await realSetTimeout(2);
      return seen.includes('shadow /r');
    });
    assert.equal(got, true, `the mirror never went out: ${seen.join(', ')}`);
  } finally {
    await mesh.close();
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
});

test("mesh.close() closes its servers' idle keep-alive connections while the global setTimeout and setInterval are faked", async () => {
  const mesh = await createMesh({ service: 'productpage', config: [] });
  const server = mesh.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  // A keep-alive connection left idle after one answer, by a client that keeps it open.
  const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
  after(() => socket.destroy());
  socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n');
  await new Promise<void>((resolve) => socket.once('data', () => resolve()));
  const real = { setTimeout: globalThis.setTimeout, setInterval: globalThis.setInterval };
  const held = { unref: () => held, ref: () => held, hasRef: () => false, refresh: () => held };
  globalThis.setTimeout = ((): unknown => held) as unknown as typeof setTimeout;
  globalThis.setInterval = ((): unknown => held) as unknown as typeof setInterval;
  let closed: unknown;
  try {
    closed = await Promise.race([mesh.close().then(() => 'closed'), realSetTimeout(3000, 'hung')]); // two sweeps 250 ms apart
  } finally {
    Object.assign(globalThis, real);
  }
  assert.equal(closed, 'closed', 'mesh.close() waited on the faked timers');
});
