/**
 * Observation through node:diagnostics_channel: a subscriber sees one `meshlet:call:end` per
 * call and one `meshlet:attempt:end` per attempt, with route, cluster, endpoint, the
 * destination's identity, status, flags and bytes; config applied and rejected are published
 * with the mesh's identity. Without a subscriber nothing is built (the channels are gated).
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh, seededRandom } from '../../src/index.ts';
import type { AttemptEndMessage, AttemptStartMessage, CallEndMessage, CallStartMessage, ConfigAppliedMessage, ConfigRejectedMessage } from '../../src/core/observe.ts';
import { call, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

describe('meshlet:* diagnostics channels', () => {
  let up: Upstream;
  let mesh: Mesh;
  const seen = { callStart: [] as CallStartMessage[], callEnd: [] as CallEndMessage[], attemptStart: [] as AttemptStartMessage[], attemptEnd: [] as AttemptEndMessage[], applied: [] as ConfigAppliedMessage[], rejected: [] as ConfigRejectedMessage[] };
  const subs: [string, (m: unknown) => void][] = [
    ['meshlet:call:start', (m) => seen.callStart.push(m as CallStartMessage)],
    ['meshlet:call:end', (m) => seen.callEnd.push(m as CallEndMessage)],
    ['meshlet:attempt:start', (m) => seen.attemptStart.push(m as AttemptStartMessage)],
    ['meshlet:attempt:end', (m) => seen.attemptEnd.push(m as AttemptEndMessage)],
    ['meshlet:config:applied', (m) => seen.applied.push(m as ConfigAppliedMessage)],
    ['meshlet:config:rejected', (m) => seen.rejected.push(m as ConfigRejectedMessage)],
  ];
  before(async () => {
    for (const [name, fn] of subs) subscribe(name, fn);
    let flakyHits = 0;
    up = await startUpstream('up', (req, res) => {
      // /flaky answers 503 on its first hit, then 200.
      res.statusCode = req.url === '/flaky' && ++flakyHits === 1 ? 503 : 200;
      res.end('0123456789');
    });
    mesh = await createMesh({
      service: 'productpage',
      labels: { app: 'productpage', version: 'v1' },
      serviceAccount: 'bookinfo-productpage',
      random: seededRandom(1),
      config: [
        serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }]),
        virtualService('svc', ['svc'], [{ name: 'main', match: [{ uri: { prefix: '/' } }], route: [{ destination: { host: 'svc' } }], retries: { attempts: 2, retryOn: '5xx' } }]),
      ],
    });
    await new Promise((r) => setImmediate(r));
  });
  after(async () => {
    for (const [name, fn] of subs) unsubscribe(name, fn);
    await mesh.close();
    await up.close();
  });

  it('one call:end per call and one attempt:end per attempt, a retried call included', async () => {
    for (const k of ['callStart', 'callEnd', 'attemptStart', 'attemptEnd'] as const) seen[k].length = 0;
    assert.equal((await call(mesh, 'http://svc/ok', { method: 'POST', body: 'abc' })).status, 200);
    assert.equal((await call(mesh, 'http://svc/flaky')).status, 200);
    assert.equal(seen.callStart.length, 2);
    assert.equal(seen.callEnd.length, 2);
    assert.equal(seen.attemptStart.length, 3, 'one attempt, then two');
    assert.equal(seen.attemptEnd.length, 3);
    const [ok, flaky] = seen.callEnd as [CallEndMessage, CallEndMessage];
    assert.equal(ok.route, 'svc.main');
    assert.equal(ok.cluster, 'outbound|80||svc.default.svc.cluster.local');
    assert.equal(ok.destinationService, 'svc.default.svc.cluster.local');
    assert.equal(ok.endpoint, `127.0.0.1:${up.port}`);
    // The workload name istiod gives a ServiceEntry's inline endpoint: <serviceentry>-<index>.
    assert.deepEqual(ok.destination, { serviceAccount: 'default', labels: ok.destination?.labels, namespace: 'default', workload: 'svc-0' });
    assert.equal(ok.status, 200);
    assert.equal(ok.flags, '');
    assert.equal(ok.attempts, 1);
    assert.equal(ok.method, 'POST');
    assert.equal(ok.protocol, 'http1');
    assert.equal(ok.responseBytes, 10);
    assert.equal(ok.requestBytes, 3);
    assert.equal(ok.error, undefined);
    assert.deepEqual(ok.workload, { service: 'productpage', namespace: 'default', labels: { app: 'productpage', version: 'v1' }, serviceAccount: 'bookinfo-productpage', workloadName: 'productpage' });
    assert.equal(flaky.attempts, 2);
    assert.equal(flaky.status, 200);
    const flakyAttempts = seen.attemptEnd.filter((a) => a.call === flaky.call);
    assert.deepEqual(flakyAttempts.map((a) => [a.attempt, a.status, a.failure]), [[1, 503, undefined], [2, 200, undefined]]);
    assert.ok(seen.callStart.every((s, i) => s.call === seen.callEnd[i]?.call), 'start and end carry the same call object');
  });

  it('a mesh-made answer is one call:end with its flag and no attempt', async () => {
    for (const k of ['callEnd', 'attemptEnd'] as const) seen[k].length = 0;
    const strict = await createMesh({ service: 'c', config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }]), virtualService('svc', ['svc'], [{ match: [{ uri: { exact: '/only' } }], route: [{ destination: { host: 'svc' } }] }])] });
    try {
      assert.equal((await call(strict, 'http://svc/other')).status, 404);
      assert.equal(seen.callEnd.length, 1);
      assert.equal(seen.callEnd[0]?.status, 404);
      assert.equal(seen.callEnd[0]?.flags, 'NR');
      assert.equal(seen.callEnd[0]?.route, undefined);
      assert.equal(seen.attemptEnd.length, 0);
    } finally {
      await strict.close();
    }
  });

  it('config applied (at start, with the mesh identity) and rejected are published', async () => {
    const mine = seen.applied.filter((a) => a.workload.service === 'productpage');
    assert.equal(mine.length, 1);
    assert.equal(mine[0]?.version, mesh.configVersion);
    assert.equal(mine[0]?.source, 'file');
    assert.deepEqual(mine[0]?.findings, []);
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(join(tmpdir(), 'meshlet-observe-'));
    await writeFile(join(dir, 'se.json'), JSON.stringify(serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }])));
    const m = await createMesh({ service: 'reloader', config: dir, watch: false, logger: { warn() {} } });
    try {
      await writeFile(join(dir, 'bad.yaml'), 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {hosts: [svc], http: [{timeout: soon, route: [{destination: {host: svc}}]}]}\n');
      assert.equal(await m.reload(), false);
      const r = seen.rejected.filter((x) => x.workload.service === 'reloader');
      assert.equal(r.length, 1);
      assert.match(r[0]?.reasons.join('\n') ?? '', /timeout: invalid duration "soon"/);
    } finally {
      await m.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
