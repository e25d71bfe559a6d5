/**
 * The peer's metadata in access logs, between two real meshes: `%FILTER_STATE(upstream_peer)%`
 * on the client side (what the destination said of itself in its answer), `%FILTER_STATE(downstream_peer)%`
 * and `filter_state.downstream_peer` on the server side (what the caller sent), and an
 * `envoyHttpAls` entry's `filter_state_objects` (a Struct in an Any, as Istio's proxy logs its
 * peer objects). Before, the access logger never gave its records the peer: every one printed `-`.
 */
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { createMesh, ManualClock, type Mesh } from '../../src/index.ts';
import { capture, T0, telemetry, until } from '../helpers/access-log.ts';
import { ALS_HOST, type AlsCollector, alsServiceEntry, decodeStruct, startAlsCollector, structValues } from '../helpers/als-collector.ts';
import { call, serviceEntry } from '../helpers/upstreams.ts';

describe('the peer in access logs (metadata exchange between two meshes)', () => {
  let als: AlsCollector;
  let server: Mesh;
  let client: Mesh;
  let listening: Server;
  const serverLog = capture();
  const clientLog = capture();
  const clock = new ManualClock(T0);
  before(async () => {
    als = await startAlsCollector();
    server = await createMesh({
      service: 'reviews',
      workloadName: 'reviews-v2',
      namespace: 'default',
      labels: { app: 'reviews', version: 'v2' },
      identity: 'none',
      clock,
      logger: serverLog.logger,
      telemetry: { metrics: { meterProvider: new MeterProvider() } },
      extensionProviders: [
        { name: 'json', envoyFileAccessLog: { logFormat: { labels: { peer: '%FILTER_STATE(downstream_peer)%', app: '%CEL(filter_state.downstream_peer.app)%' } } } },
        { name: 'als', envoyHttpAls: { service: ALS_HOST, port: 15000 } },
      ],
      config: [alsServiceEntry(als.port), telemetry('logs', { accessLogging: [{ match: { mode: 'SERVER' }, providers: [{ name: 'json' }, { name: 'als' }] }] })] as never,
    });
    listening = server.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => listening.listen(0, '127.0.0.1', r));
    client = await createMesh({
      service: 'productpage',
      workloadName: 'productpage-v1',
      namespace: 'default',
      labels: { app: 'productpage', version: 'v1' },
      identity: 'none',
      logger: clientLog.logger,
      telemetry: { metrics: { meterProvider: new MeterProvider() } },
      extensionProviders: [{ name: 'json', envoyFileAccessLog: { logFormat: { labels: { peer: '%FILTER_STATE(upstream_peer)%' } } } }],
      config: [serviceEntry('reviews', 'reviews.default.svc.cluster.local', 80, [{ port: (listening.address() as AddressInfo).port }]), telemetry('logs', { accessLogging: [{ match: { mode: 'CLIENT' }, providers: [{ name: 'json' }] }] })] as never,
    });
  });
  after(async () => {
    await client.close();
    await new Promise<void>((r) => listening.close(() => r()));
    await server.close();
    als.close();
  });

  it('both sides name the other; the entry carries the caller as filter state', async () => {
    assert.equal((await call(client, 'http://reviews.default.svc.cluster.local/r/1')).status, 200);
    await until(() => serverLog.entries.length === 1 && clientLog.entries.length === 1, 'a line on each side');
    const upstream = JSON.parse((clientLog.entries[0] as { peer: string }).peer);
    assert.equal(upstream.workload, 'reviews-v2');
    assert.equal(upstream.app, 'reviews');
    assert.equal(upstream.version, 'v2');
    const s = serverLog.entries[0] as { peer: string; app: string };
    const downstream = JSON.parse(s.peer);
    assert.equal(downstream.workload, 'productpage-v1');
    assert.equal(downstream.namespace, 'default');
    assert.equal(s.app, 'productpage', 'filter_state.downstream_peer in CEL');
    clock.advance(1000);
    await until(() => als.entries().length === 1, 'the entry at the log service');
    const fs = als.entries()[0]?.common_properties.filter_state_objects ?? {};
    assert.deepEqual(Object.keys(fs), ['downstream_peer']);
    assert.equal(fs['downstream_peer']?.type_url, 'type.googleapis.com/google.protobuf.Struct');
    const peer = structValues(decodeStruct(fs['downstream_peer']?.value as Buffer));
    assert.equal(peer['workload'], 'productpage-v1');
    assert.equal(peer['app'], 'productpage');
  });
});
