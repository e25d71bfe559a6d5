/**
 * gRPC to destinations outside the mesh's endpoints — ALLOW_ANY's PassthroughCluster and a
 * ServiceEntry with resolution NONE — under a control plane's MeshConfig `connectTimeout` changed
 * while the mesh runs: a call made after the change opens its connection with the new timeout,
 * even while a connection made with the old one is still connecting to the same address (it is
 * not joined), and that older connection keeps its own timeout; a call in flight on a connection
 * made before the change is not cut. Envoy's ORIGINAL_DST clusters are rebuilt with the mesh's new
 * `connect_timeout` on istiod's full push (cluster_builder.go buildDefaultPassthroughCluster:
 * ConnectTimeout Mesh.ConnectTimeout); connections already made stay until they close.
 * Real control plane, real mesh on a ManualClock, a blackhole and a real gRPC upstream.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMesh, ManualClock, type Mesh } from '../../src/index.ts';
import { type Blackhole, blackhole, turns } from '../helpers/blackhole.ts';
import { collect, type Echo, EchoClient, grpc, startGrpcUpstream, unary } from '../helpers/grpc.ts';
import { virtualService } from '../helpers/upstreams.ts';
import { quietLogger, shortJitter, startTestControlPlane, type TestControlPlane, until } from './client-helpers.ts';

const open: { close(): unknown }[] = [];
after(async () => {
  for (const o of open.reverse()) await o.close();
});

const flagsOf = (e: grpc.ServiceError | undefined) => e?.metadata.get('x-meshlet-response-flags')[0];

/** A ServiceEntry with resolution NONE for `localhost:<port>` (no DestinationRule: the mesh's connect timeout applies), called without retries. */
function resolutionNone(port: number): object[] {
  return [
    { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'ext', namespace: 'default' }, spec: { hosts: ['localhost'], location: 'MESH_EXTERNAL', resolution: 'NONE', ports: [{ number: port, name: 'grpc', protocol: 'GRPC' }] } },
    virtualService('ext', ['localhost'], [{ route: [{ destination: { host: 'localhost' } }], retries: { attempts: 0 } }]),
  ];
}

async function setup(files: Record<string, object[]>): Promise<{ t: TestControlPlane; mesh: Mesh; clock: ManualClock }> {
  // A long heartbeat: the manual clock's jumps must not look like a dead stream.
  const t = await startTestControlPlane(files, { meshConfig: { connectTimeout: '1500ms' }, heartbeatMs: 60_000 });
  open.push({ close: () => t.close() });
  const clock = new ManualClock(1_000_000);
  const token = await t.cp.mintToken({ service: 'client', namespace: 'default' });
  const mesh = await createMesh({ service: 'client', controlPlane: t.cp.url, token, clock, identity: 'none', logger: quietLogger, random: shortJitter(11) });
  open.unshift(mesh);
  return { t, mesh, clock };
}

async function changeConnectTimeout(t: TestControlPlane, mesh: Mesh, value: string, ms: number): Promise<void> {
  t.cp.setMeshConfig({ connectTimeout: value }, 'test-mesh.yaml');
  await until(() => mesh.snapshot.meshSettings?.connectTimeoutMs === ms, `connectTimeout ${value} compiled in`);
}

function client(mesh: Mesh, target: string): Echo {
  const c = mesh.grpc.client(EchoClient, target) as unknown as Echo;
  open.push(c);
  return c;
}

/** Waits (turns, not time) until `p` has settled; whether it did. */
async function settled(p: Promise<unknown>, n = 300): Promise<boolean> {
  let done = false;
  void p.finally(() => (done = true));
  for (let i = 0; i < n && !done; i++) await turns(1);
  return done;
}

/** Whether the `n`th connection to `h` came (its first bytes sent) within a bounded number of turns (a real-time wait: the connect is real I/O). */
async function connectedWithin(h: Blackhole, n: number): Promise<boolean> {
  const came = h.connected(n).then(() => true);
  const bound = new Promise<boolean>((r) => setTimeout(() => r(false), 5000).unref());
  return Promise.race([came, bound]);
}

describe("gRPC passthrough connections follow a live MeshConfig connectTimeout (the control plane's)", () => {
  const targets: [name: string, files: (port: number) => Record<string, object[]>, target: (port: number) => string][] = [
    ['ALLOW_ANY PassthroughCluster (an address outside the registry)', () => ({}), (port) => `127.0.0.1:${port}`],
    ['a ServiceEntry with resolution NONE', (port) => ({ se: resolutionNone(port) }), (port) => `localhost:${port}`],
  ];
  for (const [name, files, target] of targets) {
    it(`${name}: a call after the change connects within the new timeout, beside a connection still connecting with the old one`, async () => {
      const h: Blackhole = await blackhole();
      open.push(h);
      const { t, mesh, clock } = await setup(files(h.port));
      const c = client(mesh, target(h.port));
      // A call starts connecting under 1.5 s…
      const old = unary(c, { text: 'old' });
      await h.connected(1);
      // …the MeshConfig changes to 700 ms while it is still connecting…
      await changeConnectTimeout(t, mesh, '700ms', 700);
      // …and the next call is not put on that connection: it opens its own, timed at 700 ms.
      const next = unary(c, { text: 'next' });
      assert.equal(await connectedWithin(h, 2), true, 'the call after the change opened a connection of its own');
      clock.advance(699);
      assert.equal(await settled(next, 40), false, 'not given up 1 ms before the new timeout');
      clock.advance(1);
      assert.equal(await settled(next), true, 'given up at the new timeout');
      assert.equal(flagsOf((await next).error), 'UF');
      assert.equal((await next).error?.code, grpc.status.UNAVAILABLE);
      // The connection made before the change keeps its own 1.5 s.
      assert.equal(await settled(old, 40), false, 'the older connection is not cut at the new timeout');
      clock.advance(800);
      assert.equal(await settled(old), true);
      assert.equal(flagsOf((await old).error), 'UF');
      assert.equal(h.sockets.length, 2);
    });
  }

  it('a call in flight on a passthrough connection made before the change is not cut by it', async () => {
    const up = await startGrpcUpstream('outside');
    open.push(up);
    const { t, mesh, clock } = await setup({});
    const c = client(mesh, `127.0.0.1:${up.port}`);
    assert.equal((await unary(c, { text: 'warm' })).reply?.server, 'outside');
    const bidi = c.Bidi();
    const done = collect(bidi);
    bidi.write({ text: 'before' });
    await changeConnectTimeout(t, mesh, '700ms', 700);
    clock.advance(60_000);
    await turns();
    bidi.write({ text: 'after' });
    bidi.end();
    const r = await done;
    assert.equal(r.status.code, grpc.status.OK, r.status.details);
    assert.equal(r.messages.length, 2);
    assert.equal((await unary(c, { text: 'new call' })).reply?.server, 'outside', 'a new call after the change reaches it too');
  });
});
