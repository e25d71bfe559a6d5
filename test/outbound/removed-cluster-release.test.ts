/**
 * A cluster a reload removed lets go of its state (pools, picker, outlier detector — and through
 * its TLS plans the whole old snapshot) as soon as no call routed to it is still running, as Envoy
 * drains a removed cluster's connection pools at once (`ClusterEntry::~ClusterEntry`,
 * source/common/upstream/cluster_manager_impl.cc). It used to be kept for a fixed 30 s: a
 * config that changed every second (a control plane pushing endpoint or service churn) kept 30
 * old snapshots alive — 12 MB each for 1000 ServiceEntries with DestinationRules, 500 MB after 40
 * pushes. A call still running on the removed cluster keeps it until that call ends.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { request } from 'undici';
import { createMesh, ManualClock } from '../../src/index.ts';
import { until } from '../helpers/until.ts';
import { PassThrough, Readable } from 'node:stream';
import { serviceEntry, startUpstream, virtualService } from '../helpers/upstreams.ts';

describe('a cluster a reload removed', () => {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function setUp() {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const up = await startUpstream('up', async (req, res) => {
      if (req.url === '/hold') await held;
      res.end('ok');
    });
    const dir = mkdtempSync(join(tmpdir(), 'meshlet-retired-'));
    dirs.push(dir);
    const write = (names: string[]) =>
      writeFileSync(join(dir, 'mesh.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: names.map((n) => serviceEntry(n, `${n}.default.svc.cluster.local`, 80, [{ port: up.port }])) }));
    write(['gone', 'kept']);
    const clock = new ManualClock();
    const mesh = await createMesh({ service: 'client', clock, config: dir, watch: false });
    const reload = async (names: string[]) => {
      write(names);
      assert.equal(await mesh.reload(), true);
    };
    return { up, mesh, reload, release };
  }
  const settle = () => new Promise((r) => setTimeout(r, 20));

  /** A config directory routing reviews to `port`, mirrored to shadow at `shadowPort` while `withShadow` (written with it at first), and its writer. */
  function mirrorConfig(port: number, shadowPort: number): { dir: string; write: (withShadow: boolean) => void } {
    const dir = mkdtempSync(join(tmpdir(), 'meshlet-retired-'));
    dirs.push(dir);
    const write = (withShadow: boolean) => {
      const shadow = [serviceEntry('shadow', 'shadow.default.svc.cluster.local', 80, [{ port: shadowPort }]), virtualService('reviews', ['reviews'], [{ route: [{ destination: { host: 'reviews' } }], mirror: { host: 'shadow' } }])];
      const items = [serviceEntry('reviews', 'reviews.default.svc.cluster.local', 80, [{ port }]), ...(withShadow ? shadow : [])];
      writeFileSync(join(dir, 'mesh.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
    };
    write(true);
    return { dir, write };
  }

  it('is let go of at once when no call to it is running (not 30 s later)', async () => {
    const { up, mesh, reload } = await setUp();
    try {
      for (let i = 0; i < 3; i++) {
        const r = await request('http://gone/', { dispatcher: mesh.dispatcher });
        assert.equal(await r.body.text(), 'ok');
      }
      assert.ok(mesh.outbound.clusters.has('outbound|80||gone.default.svc.cluster.local'));
      await reload(['kept']);
      assert.equal(mesh.outbound.clusters.has('outbound|80||gone.default.svc.cluster.local'), false);
      // The mesh clock never moves: the 30 s never pass.
      await until(() => mesh.outbound.retiredClusters === 0, 'nothing runs on the removed cluster: its state is let go of before the 30 s');
    } finally {
      await mesh.close();
      await up.close();
    }
  });

  it('is kept while a call routed to it runs, and let go of when that call ends', async () => {
    const { up, mesh, reload, release } = await setUp();
    try {
      const pending = request('http://gone/hold', { dispatcher: mesh.dispatcher }).then((r) => r.body.text());
      while (up.seen.length === 0) await settle();
      await reload(['kept']);
      await settle();
      assert.equal(mesh.outbound.retiredClusters, 1, 'the call in flight keeps its cluster');
      release();
      assert.equal(await pending, 'ok', 'the call in flight finishes on the removed cluster');
      await until(() => mesh.outbound.retiredClusters === 0, 'its last call ended: the removed cluster is let go of');
    } finally {
      await mesh.close();
      await up.close();
    }
  });

  it('20 reloads that each remove the clusters the calls used leave no removed state behind', async () => {
    const { up, mesh, reload } = await setUp();
    try {
      for (let c = 0; c < 20; c++) {
        const names = [`c${c}a`, `c${c}b`];
        await reload(names);
        for (const n of names) assert.equal(await (await request(`http://${n}/`, { dispatcher: mesh.dispatcher })).body.text(), 'ok');
      }
      await reload(['kept']);
      await until(() => mesh.outbound.retiredClusters === 0, 'no removed cluster left');
      assert.equal(mesh.outbound.clusters.size, 0);
    } finally {
      await mesh.close();
      await up.close();
    }
  });

  it('a mirrored copy that was never sent (its streamed body outgrew the retry buffer) does not hold its cluster', async () => {
    const up = await startUpstream('up');
    const { dir, write } = mirrorConfig(up.port, up.port);
    const mesh = await createMesh({ service: 'client', clock: new ManualClock(), config: dir, watch: false, retryBufferBytes: 16 });
    try {
      const r = await request('http://reviews/', { method: 'POST', body: Readable.from([Buffer.alloc(100, 'x')]), dispatcher: mesh.dispatcher });
      await r.body.dump();
      await until(() => mesh.diagnostics().mirrors.dropped > 0, 'the copy is dropped: body-too-large');
      write(false);
      assert.equal(await mesh.reload(), true);
      await until(() => mesh.outbound.retiredClusters === 0, 'the dropped copy never ran: the removed mirror cluster is let go of at once');
    } finally {
      await mesh.close();
      await up.close();
    }
  });

  it('a call a layer threw in (here an injected Random that throws once the call is routed) ends with that error and does not hold its cluster', async () => {
    const up = await startUpstream('up');
    let draws = 0;
    const random = {
      next(): number {
        if (++draws >= 2) throw new Error('the random source failed');
        return 0.5;
      },
    };
    const mesh = await createMesh({ service: 'client', config: [serviceEntry('a', 'a.default.svc.cluster.local', 80, [{ port: up.port }, { port: up.port + 1 }])], random });
    try {
      await assert.rejects(request('http://a/', { dispatcher: mesh.dispatcher }), { message: 'the random source failed' });
      const state = mesh.outbound.clusters.get('outbound|80||a.default.svc.cluster.local') as { calls: number } | undefined;
      assert.ok(state !== undefined, 'the call was routed before the layer threw');
      assert.equal(state.calls, 0, 'the call ended: its cluster does not count it');
    } finally {
      await mesh.close();
      await up.close();
    }
  });

  it('a mirrored copy whose cluster a reload removed while the primary body was still arriving is not sent (no pool is made on the closed cluster)', async () => {
    const up = await startUpstream('up');
    const shadow = await startUpstream('shadow');
    const { dir, write } = mirrorConfig(up.port, shadow.port);
    const mesh = await createMesh({ service: 'client', clock: new ManualClock(), config: dir, watch: false });
    try {
      const body = new PassThrough();
      body.write('part1');
      const pending = request('http://reviews/', { method: 'POST', body, dispatcher: mesh.dispatcher });
      await until(() => up.seen.length > 0 || mesh.outbound.clusters.has('outbound|80||shadow.default.svc.cluster.local'), 'the call is under way');
      write(false);
      assert.equal(await mesh.reload(), true);
      await until(() => mesh.outbound.retiredClusters === 0, 'nothing runs on the removed mirror cluster: it closes while the copy waits for the body');
      body.end('part2');
      const r = await pending;
      assert.equal(r.statusCode, 200);
      await r.body.dump();
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(mesh.diagnostics().mirrors.sent, 0, 'the copy was not sent to a cluster that is gone');
      assert.equal(mesh.diagnostics().mirrors.dropped, 1, 'and it is counted dropped (no-cluster)');
      assert.equal(shadow.hits, 0);
      assert.equal(mesh.outbound.retiredClusters, 0);
    } finally {
      await mesh.close();
      await up.close();
      await shadow.close();
    }
  });

  it('a mirrored copy whose primary body ends while mesh.close() is closing the clusters is not sent', async () => {
    const up = await startUpstream('up');
    const shadow = await startUpstream('shadow');
    const mesh = await createMesh({
      service: 'client',
      clock: new ManualClock(),
      config: [
        serviceEntry('reviews', 'reviews.default.svc.cluster.local', 80, [{ port: up.port }]),
        serviceEntry('shadow', 'shadow.default.svc.cluster.local', 80, [{ port: shadow.port }]),
        virtualService('reviews', ['reviews'], [{ route: [{ destination: { host: 'reviews' } }], mirror: { host: 'shadow' } }]),
      ],
    });
    try {
      const body = new PassThrough();
      body.write('part1');
      const pending = request('http://reviews/', { method: 'POST', body, dispatcher: mesh.dispatcher });
      await until(() => mesh.outbound.clusters.has('outbound|80||shadow.default.svc.cluster.local'), 'the call is under way');
      const closing = mesh.close();
      // Until new calls are refused: the clusters are being closed from then on (the call in flight has closeTimeoutMs).
      const refused = () =>
        request('http://127.0.0.1:1/', { dispatcher: mesh.dispatcher }).then(
          () => false,
          (e: { code?: string }) => e.code === 'MESHLET_ERR_INVALID_ARG',
        );
      while (!(await refused())) await new Promise((resolve) => setImmediate(resolve));
      body.end('part2');
      const r = await pending;
      await r.body.dump();
      await closing;
      assert.equal(mesh.diagnostics().mirrors.sent, 0, 'no copy sent after close() began closing the clusters');
      assert.equal(shadow.hits, 0);
    } finally {
      await mesh.close();
      await up.close();
      await shadow.close();
    }
  });
});
