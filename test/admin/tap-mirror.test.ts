/**
 * `/tap` shows a VirtualService mirror's copies: Envoy sends each as a request of its own (a
 * shadow, to the mirror's cluster, with the primary's Host as Istio configures it), so an operator tapping the mirror
 * cluster to see whether mirroring works sees them — `req` with `mirror: true` and its `end` (the
 * copy's answer), beside the caller's own call; `meshlet tap` marks the line `mirror=true`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { openTap, type Tap } from '../helpers/tap.ts';
import { until } from '../helpers/until.ts';
import { answering, call, serviceEntry, startUpstream, virtualService } from '../helpers/upstreams.ts';

const quiet = { warn: () => {} };

describe('admin /tap: mirror copies', () => {
  it("shows a mirror copy as a request of its own (mirror: true, the mirror's cluster, endpoint and answer), and a cluster filter finds it", async () => {
    const primary = await startUpstream('primary');
    const shadow = await startUpstream('shadow', answering(404, 'nope'));
    const mesh = await createMesh({
      service: 'client',
      logger: quiet,
      admin: { port: 0 },
      config: [
        serviceEntry('primary', 'primary.default.svc.cluster.local', 80, [{ port: primary.port }]),
        serviceEntry('shadow', 'shadow.default.svc.cluster.local', 80, [{ port: shadow.port }]),
        virtualService('primary', ['primary.default.svc.cluster.local'], [{ name: 'm', route: [{ destination: { host: 'primary.default.svc.cluster.local' } }], mirror: { host: 'shadow.default.svc.cluster.local' } }]),
      ],
    });
    const taps: Tap[] = [];
    try {
      for (const q of ['', '?cluster=shadow']) taps.push(await openTap(mesh, q));
      assert.equal((await call(mesh, 'http://primary.default.svc.cluster.local/x?secret=1')).status, 200);
      const [all, filtered] = taps;
      assert.ok(all !== undefined && filtered !== undefined);
      await until(() => all.records.filter((r) => r.type === 'end').length === 2, 'the call and its copy ended');
      const reqs = all.records.filter((r) => r.type === 'req');
      const copy = reqs.find((r) => r.mirror === true);
      assert.ok(copy !== undefined, `a mirror req: ${JSON.stringify(all.records)}`);
      assert.equal(copy.cluster, 'outbound|80||shadow.default.svc.cluster.local');
      assert.equal(copy.dstAddress, `127.0.0.1:${shadow.port}`);
      assert.equal(copy.path, '/x', 'no query string');
      assert.equal(copy.authority, 'primary.default.svc.cluster.local', "the primary's Host (no -shadow suffix: Istio's DISABLE_SHADOW_HOST_SUFFIX)");
      const own = reqs.find((r) => r.mirror === undefined);
      assert.equal(own?.cluster, 'outbound|80||primary.default.svc.cluster.local');
      const ends = new Map(all.records.filter((r) => r.type === 'end').map((r) => [r.id, r]));
      assert.equal(ends.get(copy.id)?.status, 404, "the copy's answer");
      assert.equal(ends.get(copy.id)?.flags, '-');
      assert.equal(ends.get(own?.id)?.status, 200);
      await until(() => filtered.records.some((r) => r.type === 'end'), 'the copy on the filtered tap');
      assert.deepEqual(
        filtered.records.filter((r) => r.type !== 'start').map((r) => [r.type, r.cluster ?? null, r.status ?? null]),
        [
          ['req', 'outbound|80||shadow.default.svc.cluster.local', null],
          ['end', null, 404],
        ],
      );
    } finally {
      for (const t of taps) t.close();
      await mesh.close();
      await primary.close();
      await shadow.close();
    }
  });
});
