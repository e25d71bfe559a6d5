/**
 * MeshConfig `connectTimeout` (`createMesh({ connectTimeoutMs })`, or `meshConfig.connectTimeout`)
 * on HTTP calls, on a ManualClock: istiod makes it the `connect_timeout` of every cluster whose
 * DestinationRule sets no `connectionPool.tcp.connectTimeout` (cluster_traffic_policy.go), and a
 * rule's value still wins. The endpoint accepts TCP but never answers the TLS handshake the
 * DestinationRule (SIMPLE) asks for, so the connect is timed on the mesh clock; the call fails
 * 503 UF, reset reason `connection timeout`, at the timeout and not 1 ms before. Bad values are
 * refused naming the option.
 */
import assert from 'node:assert/strict';
import { blackhole, endsAtConnectTimeout } from '../helpers/blackhole.ts';
import { after, describe, it } from 'node:test';
import { createMesh, ManualClock, type MeshOptions } from '../../src/index.ts';
import { call, destinationRule, serviceEntry, virtualService } from '../helpers/upstreams.ts';

const HOST = 'slow.default.svc.cluster.local';
const BODY = 'upstream connect error or disconnect/reset before headers. reset reason: connection timeout';


describe('MeshConfig connectTimeout on HTTP clusters', () => {
  const open: { close(): unknown }[] = [];
  after(async () => {
    for (const o of open.reverse()) await o.close();
  });

  /** A server that takes connections and their TLS ClientHello, and answers nothing. */
  async function hole() {
    const h = await blackhole();
    open.push(h);
    return h;
  }

  async function failsAt(meshOptions: Partial<MeshOptions>, pool: Record<string, unknown> | undefined, timeoutMs: number): Promise<void> {
    const h = await hole();
    const clock = new ManualClock(1_000_000);
    const mesh = await createMesh({
      service: 'client',
      clock,
      logger: { warn: () => undefined, info: () => undefined },
      config: [
        serviceEntry('slow', HOST, 80, [{ port: h.port }]),
        destinationRule('slow', HOST, { trafficPolicy: { ...(pool === undefined ? {} : { connectionPool: pool }), tls: { mode: 'SIMPLE', sni: 'slow.example' } } }),
        virtualService('slow', [HOST], [{ route: [{ destination: { host: HOST } }], retries: { attempts: 0 } }]),
      ],
      ...meshOptions,
    });
    open.push(mesh);
    const r = await endsAtConnectTimeout(h, clock, timeoutMs, () => call(mesh, `http://${HOST}/`));
    assert.equal(r.status, 503);
    assert.equal(r.flags, 'UF');
    assert.equal(r.body, BODY);
    assert.equal(h.sockets.length, 1);
  }

  it('createMesh({ connectTimeoutMs: 2500 }): a cluster whose DestinationRule sets none times out at 2.5 s', () => failsAt({ connectTimeoutMs: 2500 }, undefined, 2500));
  it('meshConfig `connectTimeout: 1s` (YAML text) applies the same way', () => failsAt({ meshConfig: 'connectTimeout: 1s\n' }, undefined, 1000));
  it('a DestinationRule’s tcp.connectTimeout (300ms) wins over the mesh’s (4s)', () => failsAt({ connectTimeoutMs: 4000 }, { tcp: { connectTimeout: '300ms' } }, 300));
  it('an explicit connectTimeoutMs wins over meshConfig’s', () => failsAt({ connectTimeoutMs: 1200, meshConfig: { connectTimeout: '8s' } }, { tcp: { maxConnections: 5 } }, 1200));
  it('no setting: Istio’s 10 s', () => failsAt({}, undefined, 10_000));

  it('meshConfig `connectTimeout` is applied, so the info log no longer names it among the settings not applied', async () => {
    const infos: string[] = [];
    const mesh = await createMesh({ service: 'a', config: [], meshConfig: 'connectTimeout: 2s\nenablePrometheusMerge: true\n', logger: { warn: () => undefined, info: (m: string) => infos.push(m) } });
    open.push(mesh);
    assert.deepEqual(infos.filter((m) => m.includes('not applied')), ['createMesh: meshConfig settings meshlet has no option for (not applied): enablePrometheusMerge']);
  });

  it('bad values are refused naming the option', async () => {
    for (const v of [0, -5, Number.NaN, '5s'] as unknown[]) {
      await assert.rejects(createMesh({ service: 'a', config: [], connectTimeoutMs: v as number }), /createMesh: `connectTimeoutMs` \(MeshConfig's connectTimeout\) must be a number of milliseconds of at least 1, got /);
    }
    await assert.rejects(createMesh({ service: 'a', config: [], meshConfig: 'connectTimeout: soon\n' }), /createMesh: `meshConfig\.connectTimeout` must be a duration of whole milliseconds from 1ms to 1h \(as istiod validates it\) such as "10s", got "soon"/);
    // istiod's ValidateConnectTimeout: below 1ms, above 1h, or finer than a millisecond.
    for (const v of ['0s', '2h', '1500us']) await assert.rejects(createMesh({ service: 'a', config: [], meshConfig: { connectTimeout: v } }), new RegExp(`\`meshConfig\\.connectTimeout\` must be a duration of whole milliseconds from 1ms to 1h .*got "${v}"`));
    const hour = await createMesh({ service: 'a', config: [], meshConfig: { connectTimeout: '1h' } });
    await hour.close();
  });
});
