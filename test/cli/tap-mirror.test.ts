/**
 * `meshlet tap` and `meshlet top` with a VirtualService mirror: a copy is a request of its own on
 * /tap (`mirror: true`). `tap` marks its line `mirror=true`; `top`'s per-path rows are the app's
 * requests only (a copy has the primary's method, authority and path: counted there, it would
 * count each call twice and mix the mirror's answers into the primary's success rate), while
 * `top --by cluster` shows the mirror's cluster with its answers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { answering, call, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';
import { meshletAsync } from './helpers.ts';

const HOST = 'primary.default.svc.cluster.local';

describe('meshlet tap and top with a mirror', () => {
  let primary: Upstream;
  let shadow: Upstream;
  let mesh: Mesh;
  let port: string;
  let traffic: Promise<void>;
  let going = true;
  before(async () => {
    primary = await startUpstream('primary');
    shadow = await startUpstream('shadow', answering(500, 'mirror down'));
    mesh = await createMesh({
      service: 'web',
      logger: { warn: () => {} },
      admin: { port: 0 },
      config: [
        serviceEntry('primary', HOST, 80, [{ port: primary.port }]),
        serviceEntry('shadow', 'shadow.default.svc.cluster.local', 80, [{ port: shadow.port }]),
        virtualService('primary', [HOST], [{ route: [{ destination: { host: HOST } }], mirror: { host: 'shadow.default.svc.cluster.local' } }]),
      ],
    });
    port = new URL(mesh.adminUrl as string).port;
    traffic = (async () => {
      while (going) {
        await call(mesh, `http://${HOST}/x`);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
  });
  after(async () => {
    going = false;
    await traffic;
    await mesh.close();
    await primary.close();
    await shadow.close();
  });

  it('tap marks a copy mirror=true', async () => {
    const r = await meshletAsync(['tap', port, '--count', '4', '--duration', '60s']);
    assert.equal(r.code, 0, r.stderr);
    const reqs = r.stdout.split('\n').filter((l) => l.startsWith('req '));
    assert.ok(reqs.some((l) => l.endsWith(`:path=/x mirror=true`) && l.includes(`dst=127.0.0.1:${shadow.port}`)), r.stdout);
    assert.ok(reqs.some((l) => l.endsWith(':path=/x') && l.includes(`dst=127.0.0.1:${primary.port}`)), r.stdout);
  });

  it("top's path rows are the app's requests (the copies' 500s are not the primary's), --by cluster shows the mirror's", async () => {
    const t = await meshletAsync(['top', port, '--once', '--duration', '1s', '-o', 'json']);
    assert.equal(t.code, 0, t.stderr);
    const rows = (JSON.parse(t.stdout) as { rows: { path?: string; count: number; successRate: number }[] }).rows;
    assert.equal(rows.length, 1, t.stdout);
    assert.equal(rows[0]?.path, '/x');
    assert.equal(rows[0]?.successRate, 100, 'the copies are not counted with the calls');
    const c = await meshletAsync(['top', port, '--once', '--duration', '1s', '-o', 'json', '--by', 'cluster']);
    assert.equal(c.code, 0, c.stderr);
    const byCluster = new Map((JSON.parse(c.stdout) as { rows: { cluster: string; successRate: number }[] }).rows.map((x) => [x.cluster, x.successRate]));
    assert.equal(byCluster.get(`outbound|80||${HOST}`), 100);
    assert.equal(byCluster.get('outbound|80||shadow.default.svc.cluster.local'), 0, "the mirror's 500s");
  });
});
