/**
 * Traffic mirroring through real upstreams (istio-surface §1.1 mirror/mirrors, §6.8): a copy
 * goes to the mirror destination, fire-and-forget; its response, failure or silence never
 * reaches, fails or slows the primary call, and copies in flight are bounded.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import type { MirrorDroppedMessage } from '../../src/core/observe.ts';
import { createMesh, ManualClock, type Mesh, type MeshOptions, seededRandom } from '../../src/index.ts';
import { call, deadPort, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';
import { until } from '../helpers/until.ts';

const PRIMARY = 'reviews.default.svc.cluster.local';
const SHADOW = 'shadow.default.svc.cluster.local';

/** Waits (polling every 5 ms, up to `ms`) until `cond` holds. */
/** A behaviour that never answers (the socket is closed when the upstream closes). */
const hang = () => undefined;

describe('traffic mirroring', () => {
  let primary: Upstream;
  let shadow: Upstream;

  before(async () => {
    primary = await startUpstream('primary');
    shadow = await startUpstream('shadow');
  });

  after(async () => {
    await Promise.all([primary.close(), shadow.close()]);
  });

  function config(http: unknown[], shadowPort = shadow.port): object[] {
    return [
      serviceEntry('reviews', PRIMARY, 9080, [{ port: primary.port }]),
      serviceEntry('shadow', SHADOW, 9080, [{ port: shadowPort }]),
      virtualService('reviews', ['reviews'], http),
    ];
  }

  /**
   * Runs `fn` with a mesh whose mirror destination listens on `shadowPort`. A hanging mirror
   * must be closed (`beforeClose`) before the mesh: `mesh.close()` lets calls in flight finish,
   * and a copy that never gets an answer never finishes.
   */
  async function withMesh(
    http: unknown[],
    fn: (mesh: Mesh) => Promise<void>,
    o: { options?: Partial<MeshOptions>; shadowPort?: number; beforeClose?: () => Promise<void> } = {},
  ) {
    const mesh = await createMesh({ service: 'productpage', random: seededRandom(11), config: config(http, o.shadowPort), ...o.options });
    try {
      await fn(mesh);
    } finally {
      await o.beforeClose?.();
      await mesh.close();
    }
  }

  test('mirror at 100% (mirrorPercentage unset) sends a copy: same method, path, body and Host; the caller gets the primary response', async () => {
    await withMesh([{ route: [{ destination: { host: 'reviews' } }], mirror: { host: 'shadow' } }], async (mesh) => {
      const p0 = primary.hits;
      const s0 = shadow.seen.length;
      const r = await call(mesh, 'http://reviews:9080/api/items?id=7', { method: 'POST', body: '{"rating":5}', headers: { 'content-type': 'application/json', 'x-trace': 'abc' } });
      assert.equal(r.status, 200);
      assert.equal(r.upstream, 'primary');
      assert.equal(r.body, 'primary');
      assert.equal(primary.hits - p0, 1);
      await until(() => shadow.seen.length === s0 + 1, 'the mirrored copy');
      const copy = shadow.seen[s0];
      const orig = primary.seen.at(-1);
      assert.ok(copy !== undefined && orig !== undefined);
      assert.equal(copy.method, 'POST');
      assert.equal(copy.url, '/api/items?id=7');
      assert.equal(copy.body, '{"rating":5}');
      assert.equal(copy.headers['content-type'], 'application/json');
      assert.equal(copy.headers['x-trace'], 'abc');
      // No `-shadow` suffix by default (DISABLE_SHADOW_HOST_SUFFIX=true).
      assert.equal(copy.headers.host, orig.headers.host);

      // undici.request with a Buffer body and a GET through fetch are mirrored too.
      const res = await request('http://reviews:9080/buf', { method: 'PUT', body: Buffer.from('bytes!'), dispatcher: mesh.dispatcher });
      assert.equal(await res.body.text(), 'primary');
      await call(mesh, 'http://reviews:9080/get');
      await until(() => shadow.seen.length === s0 + 3, 'two more copies');
      const urls = shadow.seen.slice(s0 + 1).map((s) => `${s.method} ${s.url} ${s.body}`).sort();
      assert.deepEqual(urls, ['GET /get ', 'PUT /buf bytes!']);
      await until(() => mesh.diagnostics().mirrors.inFlight === 0, 'mirrors to finish');
      assert.equal(mesh.diagnostics().mirrors.sent, 3);
      assert.equal(mesh.diagnostics().mirrors.failed, 0);
    });
  });

  test('a streamed body larger than the retry buffer is not mirrored, and the primary still gets all of it', async () => {
    await withMesh(
      [{ route: [{ destination: { host: 'reviews' } }], mirror: { host: 'shadow' } }],
      async (mesh) => {
        const s0 = shadow.hits;
        const big = 'x'.repeat(100);
        const r = await call(mesh, 'http://reviews:9080/big', { method: 'POST', body: big });
        assert.equal(r.status, 200);
        assert.equal(primary.seen.at(-1)?.body, big);
        const small = await call(mesh, 'http://reviews:9080/small', { method: 'POST', body: 'tiny' });
        assert.equal(small.status, 200);
        await until(() => shadow.hits === s0 + 1, 'the small copy');
        assert.equal(shadow.seen.at(-1)?.url, '/small');
        assert.equal(shadow.seen.at(-1)?.body, 'tiny');
        assert.equal(mesh.diagnostics().mirrors.dropped, 1);
        assert.equal(mesh.diagnostics().mirrors.sent, 1);
        // A string or a Buffer given to undici.request past the retry buffer: not copied either.
        for (const body of ['y'.repeat(17), Buffer.alloc(17, 'z')]) {
          const res = await request('http://reviews:9080/static-big', { method: 'POST', body, dispatcher: mesh.dispatcher });
          assert.equal(await res.body.text(), 'primary');
          assert.equal(primary.seen.at(-1)?.body, String(body));
        }
        const at16 = await request('http://reviews:9080/static-16', { method: 'POST', body: 'w'.repeat(16), dispatcher: mesh.dispatcher });
        await at16.body.dump();
        await until(() => shadow.hits === s0 + 2, 'the copy of the body at the limit');
        assert.equal(shadow.seen.at(-1)?.url, '/static-16');
        assert.equal(mesh.diagnostics().mirrors.dropped, 3);
        assert.equal(mesh.diagnostics().mirrors.sent, 2);
      },
      { options: { retryBufferBytes: 16 } },
    );
  });

  test('mirrors[].percentage 25 mirrors ~25% of calls; mirrorPercentage 0 turns mirroring off', async () => {
    await withMesh(
      [
        { name: 'off', match: [{ uri: { prefix: '/off' } }], route: [{ destination: { host: 'reviews' } }], mirror: { host: 'shadow' }, mirrorPercentage: { value: 0 } },
        { name: 'quarter', route: [{ destination: { host: 'reviews' } }], mirrors: [{ destination: { host: 'shadow' }, percentage: { value: 25 } }] },
      ],
      async (mesh) => {
        const n = 400;
        const s0 = shadow.hits;
        for (let i = 0; i < n; i += 8) {
          const rs = await Promise.all(Array.from({ length: 8 }, () => call(mesh, 'http://reviews:9080/q')));
          for (const r of rs) assert.equal(r.upstream, 'primary');
        }
        await until(() => mesh.diagnostics().mirrors.inFlight === 0, 'mirrors to finish');
        const mirrored = shadow.hits - s0;
        assert.equal(mirrored, mesh.diagnostics().mirrors.sent);
        const share = mirrored / n;
        // 4.5 standard deviations of a binomial(400, 0.25): ±0.097
        assert.ok(Math.abs(share - 0.25) < 4.5 * Math.sqrt((0.25 * 0.75) / n), `mirrored share ${share}`);

        const s1 = shadow.hits;
        for (let i = 0; i < 50; i++) await call(mesh, 'http://reviews:9080/off');
        // A mirror would have been sent right after its primary; give stragglers a moment.
        await new Promise((r) => setTimeout(r, 20));
        assert.equal(shadow.hits, s1, 'mirrorPercentage 0 mirrors nothing');
      },
    );
  });

  test('several mirrors of a route are decided by one draw per call, as Envoy decides every shadow policy with the stream id: a 30% copy always comes with the 60% one', async () => {
    const second = await startUpstream('second');
    const SECOND = 'second.default.svc.cluster.local';
    const mesh = await createMesh({
      service: 'productpage',
      random: seededRandom(11),
      config: [
        ...config([{ route: [{ destination: { host: 'reviews' } }], mirrors: [{ destination: { host: 'shadow' }, percentage: { value: 30 } }, { destination: { host: 'second' }, percentage: { value: 60 } }] }]),
        serviceEntry('second', SECOND, 9080, [{ port: second.port }]),
      ],
    });
    try {
      const from = { shadow: shadow.seen.length, second: second.seen.length };
      const n = 200;
      for (let i = 0; i < n; i += 8) await Promise.all(Array.from({ length: 8 }, () => call(mesh, 'http://reviews:9080/pair')));
      await until(() => mesh.diagnostics().mirrors.inFlight === 0, 'mirrors to finish');
      const ids = (seen: Upstream['seen'], start: number) => new Set(seen.slice(start).map((r) => r.headers['x-request-id']));
      const toShadow = ids(shadow.seen, from.shadow);
      const toSecond = ids(second.seen, from.second);
      assert.ok(toShadow.size > 0 && toSecond.size > toShadow.size, `${toShadow.size} and ${toSecond.size} copies`);
      for (const id of toShadow) assert.ok(toSecond.has(id), `call ${id} mirrored at 30% but not at 60%`);
    } finally {
      await mesh.close();
      await second.close();
    }
  });

  test('a mirror that is down never fails the primary call', async () => {
    const dead = await deadPort();
    await withMesh(
      [{ route: [{ destination: { host: 'reviews' } }], mirror: { host: 'shadow' } }],
      async (mesh) => {
        const p0 = primary.hits;
        for (let i = 0; i < 20; i++) {
          const r = await call(mesh, 'http://reviews:9080/x', { method: 'POST', body: 'b' });
          assert.equal(r.status, 200);
          assert.equal(r.upstream, 'primary');
          assert.equal(r.flags, null, 'no mirror failure shows on the primary response');
        }
        assert.equal(primary.hits - p0, 20);
        await until(() => mesh.diagnostics().mirrors.failed === 20, 'the mirror failures to be counted');
        assert.equal(mesh.diagnostics().mirrors.inFlight, 0);
      },
      { shadowPort: dead },
    );
  });

  test('a mirror that hangs never slows the primary call: primaries complete while every copy is still pending', async () => {
    const hanging = await startUpstream('hanging', hang);
    await withMesh(
      [{ route: [{ destination: { host: 'reviews' } }], mirror: { host: 'shadow' } }],
      async (mesh) => {
        const p0 = primary.hits;
        // First make sure a copy is actually hanging at the mirror.
        assert.equal((await call(mesh, 'http://reviews:9080/first')).upstream, 'primary');
        await until(() => hanging.hits === 1, 'the first copy to reach the hanging mirror');
        for (let i = 0; i < 10; i++) {
          const r = await call(mesh, 'http://reviews:9080/next', { method: 'POST', body: `n=${i}` });
          assert.equal(r.status, 200);
          assert.equal(r.upstream, 'primary');
        }
        assert.equal(primary.hits - p0, 11);
        await until(() => hanging.hits === 11, 'every copy to reach the hanging mirror');
        // Every copy is still unanswered: the primaries did not wait for any of them.
        assert.equal(mesh.diagnostics().mirrors.inFlight, 11);
        assert.equal(mesh.diagnostics().mirrors.failed, 0);
      },
      { shadowPort: hanging.port, beforeClose: () => hanging.close() },
    );
  });

  test('a hanging copy times out with the route timeout, frees its slot, and never blocks close()', async () => {
    const hanging = await startUpstream('hanging-timeout', hang);
    try {
      // On a manual clock: the primary must not hit the 80 ms route timeout on a loaded machine
      // (it answered 504 when a real 80 ms passed before its upstream did), and the copy times
      // out when the test says so.
      const clock = new ManualClock(Date.now());
      const mesh = await createMesh({
        service: 'productpage',
        clock,
        config: config([{ route: [{ destination: { host: 'reviews' } }], timeout: '80ms', mirror: { host: 'shadow' } }], hanging.port),
      });
      try {
        assert.equal((await call(mesh, 'http://reviews:9080/t')).status, 200);
        await until(() => hanging.hits === 1, 'the copy to reach the hanging mirror');
        clock.advance(79);
        assert.equal(mesh.diagnostics().mirrors.inFlight, 1, 'the copy waits out its route timeout');
        clock.advance(1);
        await until(() => mesh.diagnostics().mirrors.inFlight === 0, 'the copy to time out');
        assert.equal(mesh.diagnostics().mirrors.failed, 1);
        assert.equal((await call(mesh, 'http://reviews:9080/t2')).status, 200);
        await until(() => hanging.hits === 2, 'the second copy');
      } finally {
        // The second copy is still hanging: close() must not wait for it.
        await mesh.close();
      }
    } finally {
      await hanging.close();
    }
  });

  test('bounded concurrency: maxMirrorsInFlight 2 with a hanging mirror drops the rest', async () => {
    // A hanging mirror that counts the requests it holds open at once.
    const hanging = await startUpstream('hanging');
    let open = 0;
    let maxOpen = 0;
    hanging.behaviour = (_req, res) => {
      open++;
      maxOpen = Math.max(maxOpen, open);
      res.on('close', () => open--);
    };
    await withMesh(
      [{ route: [{ destination: { host: 'reviews' } }], mirror: { host: 'shadow' } }],
      async (mesh) => {
        const stats = () => mesh.diagnostics().mirrors;
        let maxInFlight = 0;
        for (let i = 0; i < 12; i++) {
          const r = await call(mesh, 'http://reviews:9080/bounded');
          assert.equal(r.status, 200);
          maxInFlight = Math.max(maxInFlight, stats().inFlight);
        }
        // Concurrent primaries (with streamed bodies) as well: the bound holds however calls interleave.
        const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => call(mesh, 'http://reviews:9080/bounded', { method: 'POST', body: `b${i}` })));
        for (const r of rs) assert.equal(r.status, 200);
        maxInFlight = Math.max(maxInFlight, stats().inFlight);
        await until(() => hanging.hits === 2, 'two copies at the mirror');
        assert.equal(stats().sent, 2);
        assert.equal(stats().dropped, 18);
        assert.ok(maxInFlight <= 2, `in flight at most 2, saw ${maxInFlight}`);
        assert.equal(stats().inFlight, 2);
        await new Promise((r) => setTimeout(r, 20));
        assert.equal(hanging.hits, 2, 'dropped copies are never sent');
        assert.ok(maxOpen <= 2, `the mirror saw ${maxOpen} requests open at once`);
      },
      { options: { maxMirrorsInFlight: 2 }, shadowPort: hanging.port, beforeClose: () => hanging.close() },
    );
  });

  test('an aborted (fault) request is not mirrored; a retried request is mirrored once', async () => {
    const prev = primary.behaviour;
    // The primary fails the first try of each /retry request with 503.
    let tries = 0;
    primary.behaviour = (req, res, hit) => {
      if (req.url === '/retry' && tries++ % 2 === 0) {
        res.statusCode = 503;
        res.end('try again');
        return;
      }
      return prev(req, res, hit);
    };
    try {
      await withMesh(
        [
          { name: 'fault', match: [{ uri: { prefix: '/fault' } }], route: [{ destination: { host: 'reviews' } }], mirror: { host: 'shadow' }, fault: { abort: { httpStatus: 500, percentage: { value: 100 } } } },
          { name: 'retry', route: [{ destination: { host: 'reviews' } }], mirror: { host: 'shadow' }, retries: { attempts: 2, retryOn: '503' } },
        ],
        async (mesh) => {
          const s0 = shadow.hits;
          const f = await call(mesh, 'http://reviews:9080/fault');
          assert.equal(f.status, 500);
          assert.equal(f.flags, 'FI');
          const p0 = primary.hits;
          const r = await call(mesh, 'http://reviews:9080/retry');
          assert.equal(r.status, 200);
          assert.equal(primary.hits - p0, 2, 'the primary was retried once');
          await until(() => mesh.diagnostics().mirrors.inFlight === 0, 'mirrors to finish');
          await new Promise((res) => setTimeout(res, 20));
          assert.equal(shadow.hits - s0, 1, 'one copy: none for the fault abort, one for the retried call');
          assert.equal(shadow.seen.at(-1)?.url, '/retry');
        },
      );
    } finally {
      primary.behaviour = prev;
    }
  });

  test('a copy to a mirror that has no cluster (no such subset or service) is not sent and is counted dropped, reason no-cluster', async () => {
    const seen: MirrorDroppedMessage[] = [];
    const onDropped = (m: unknown) => seen.push(m as MirrorDroppedMessage);
    subscribe('meshlet:mirror:dropped', onDropped);
    try {
      await withMesh(
        [
          { match: [{ uri: { prefix: '/subset' } }], route: [{ destination: { host: 'reviews' } }], mirror: { host: 'shadow', subset: 'v9' } },
          { route: [{ destination: { host: 'reviews' } }], mirror: { host: 'gone.default.svc.cluster.local', port: { number: 80 } } },
        ],
        async (mesh) => {
          const s0 = shadow.hits;
          assert.equal((await call(mesh, 'http://reviews:9080/subset')).status, 200);
          assert.equal((await call(mesh, 'http://reviews:9080/other')).status, 200);
          await until(() => mesh.diagnostics().mirrors.dropped === 2, 'both copies counted dropped');
          assert.equal(mesh.diagnostics().mirrors.sent, 0);
          assert.equal(shadow.hits, s0, 'nothing reached the mirror');
          const mine = seen.filter((m) => m.workload === mesh.identity);
          assert.deepEqual(
            mine.map((m) => [m.reason, m.cluster]),
            [
              ['no-cluster', `outbound|9080|v9|${SHADOW}`],
              ['no-cluster', 'outbound|80||gone.default.svc.cluster.local'],
            ],
          );
        },
      );
    } finally {
      unsubscribe('meshlet:mirror:dropped', onDropped);
    }
  });
});
