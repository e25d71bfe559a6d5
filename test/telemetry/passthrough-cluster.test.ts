/**
 * A call to a host outside the mesh (`ALLOW_ANY`) goes, in Istio, to the sidecar's
 * `PassthroughCluster`: its `istio_requests_total{reporter="source"}` names the destination
 * service by the Host header and `destination_service_name="PassthroughCluster"` — which Kiali's
 * graph draws as the PassthroughCluster node and Istio's dashboards group on — and the call's
 * `meshlet:call:end` message (access log `%UPSTREAM_CLUSTER%`, the span's `upstream_cluster`) names
 * that cluster. A call to a mesh service keeps its `outbound|…` cluster. Under REGISTRY_ONLY the
 * call takes Istio's `block_all` route instead, and the proxy names it `BlackHoleCluster`.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { after, before, describe, it } from 'node:test';
import { MeterProvider, } from '@opentelemetry/sdk-metrics';
import { RequestsReader } from '../helpers/metric-reader.ts';
import { createMesh, type Mesh } from '../../src/index.ts';
import type { CallEndMessage } from '../../src/core/observe.ts';
import { call, serviceEntry, startUpstream, type Upstream } from '../helpers/upstreams.ts';

describe('a passthrough call is PassthroughCluster, as in Istio', () => {
  let up: Upstream;
  let mesh: Mesh;
  const reader = new RequestsReader();
  const provider = new MeterProvider({ readers: [reader] });
  const ends: CallEndMessage[] = [];
  const onEnd = (m: unknown): void => void ends.push(m as CallEndMessage);
  before(async () => {
    subscribe('meshlet:call:end', onEnd);
    up = await startUpstream('up');
    mesh = await createMesh({
      service: 'productpage',
      config: [serviceEntry('internal', 'internal.default.svc.cluster.local', 80, [{ port: up.port }])],
      identity: 'none',
      telemetry: { metrics: { meterProvider: provider } },
    });
  });
  after(async () => {
    unsubscribe('meshlet:call:end', onEnd);
    await mesh.close();
    await up.close();
  });

  it('labels and cluster of a passthrough call and of a mesh call', async () => {
    const direct = `127.0.0.1:${up.port}`;
    assert.equal((await call(mesh, `http://${direct}/direct`)).status, 200);
    assert.equal((await call(mesh, 'http://internal/x')).status, 200);
    const mine = ends.filter((m) => m.workload?.service === 'productpage');
    assert.deepEqual(
      mine.map((m) => [m.authority, m.cluster]),
      [
        [direct, 'PassthroughCluster'],
        ['internal', 'outbound|80||internal.default.svc.cluster.local'],
      ],
    );
    const rows = (await reader.requests()).filter((r) => r['reporter'] === 'source' && r['source_workload'] === 'productpage');
    assert.deepEqual(rows.map((r) => [r['destination_service'], r['destination_service_name'], r['response_code'], r['value']]).sort(), [
      [direct, 'PassthroughCluster', '200', 1],
      ['internal.default.svc.cluster.local', 'internal', '200', 1],
    ]);
  });

  it('under REGISTRY_ONLY the refused call (502, Istio\'s block_all route) is BlackHoleCluster', async () => {
    const strict = await createMesh({
      service: 'strict',
      config: [],
      identity: 'none',
      outboundTrafficPolicy: 'REGISTRY_ONLY',
      telemetry: { metrics: { meterProvider: provider } },
    });
    try {
      const direct = `127.0.0.1:${up.port}`;
      const hits = up.hits;
      assert.equal((await call(strict, `http://${direct}/blocked`)).status, 502);
      assert.equal(up.hits, hits, 'nothing was sent');
      const rows = (await reader.requests()).filter((r) => r['reporter'] === 'source' && r['source_workload'] === 'strict');
      assert.deepEqual(
        rows.map((r) => [r['destination_service'], r['destination_service_name'], r['response_code'], r['value']]),
        [[direct, 'BlackHoleCluster', '502', 1]],
      );
    } finally {
      await strict.close();
    }
  });
});
