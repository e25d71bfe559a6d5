/**
 * A request from an Istio sidecar names its server span: the caller's outbound Envoy sends its
 * route's decorator as `x-envoy-decorator-operation` (`reviews.default.svc.cluster.local:9080/*`,
 * the service port), and the receiving Envoy's connection manager, on an ingress listener, sets
 * its server span's operation to that value when it is not empty (conn_manager_impl.cc
 * `ActiveStream::traceRequest`; istiod's sidecars are not edge proxies —
 * `PILOT_SIDECAR_USE_REMOTE_ADDRESS` false — so the header is kept). A trace query written for a
 * sidecar mesh finds the server span of a meshlet app called by a sidecar under the same name.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SpanKind } from '@opentelemetry/api';
import { request } from 'undici';
import { createMesh } from '../../src/index.ts';
import { listen } from '../helpers/frameworks.ts';
import { exporter, finished, get, server, setup, useTracingSdk } from '../helpers/tracing-policy.ts';
import { serviceEntry } from '../helpers/upstreams.ts';

useTracingSdk();

describe('x-envoy-decorator-operation on a served request', () => {
  it("names the server span with the caller's decorator; without it (or empty), the inbound one", async () => {
    const s = await setup({ telemetry: { tracing: { samplingPercentage: 100 } } });
    try {
      await get(s.port, { 'x-envoy-decorator-operation': 'app.default.svc.cluster.local:80/*' });
      assert.equal(server(await finished(3))?.name, 'app.default.svc.cluster.local:80/*');
      await get(s.port, { 'x-envoy-decorator-operation': '' });
      assert.equal(server(await finished(3))?.name, `app.default.svc.cluster.local:${s.port}/*`);
      await get(s.port);
      assert.equal(server(await finished(3))?.name, `app.default.svc.cluster.local:${s.port}/*`);
    } finally {
      await s.close();
    }
  });

  it('is taken off the request the app sees: an app that forwards its headers does not name the next hop\'s span (Envoy removes it at ingress)', async () => {
    const back = await createMesh({ service: 'backend', namespace: 'default', config: [], logger: { warn: () => {} }, telemetry: { tracing: { samplingPercentage: 100 } } });
    const backSeen: (string | undefined)[] = [];
    const bs = back.createServer((req, res) => {
      backSeen.push(req.headers['x-envoy-decorator-operation'] as string | undefined);
      res.end('ok');
    });
    const bport = await listen(bs);
    const front = await createMesh({ service: 'front', namespace: 'default', logger: { warn: () => {} }, telemetry: { tracing: { samplingPercentage: 100 } }, config: [serviceEntry('backend', 'backend.default.svc.cluster.local', 80, [{ port: bport }])] });
    const frontSeen: (string | undefined)[] = [];
    const fs = front.createServer(async (req, res) => {
      frontSeen.push(req.headers['x-envoy-decorator-operation'] as string | undefined);
      // Forwards its request's headers, as a proxy or a BFF does.
      const h: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'connection') h[k] = v;
      const r = await front.fetch('http://backend.default.svc.cluster.local/x', { headers: h });
      res.end(await r.text());
    });
    const fport = await listen(fs);
    try {
      exporter.reset();
      const r = await request(`http://127.0.0.1:${fport}/up`, { headers: { 'x-envoy-decorator-operation': 'front.default.svc.cluster.local:80/*' } });
      assert.equal(await r.body.text(), 'ok');
      assert.deepEqual(frontSeen, [undefined]);
      assert.deepEqual(backSeen, [undefined]);
      await finished(5);
      const servers = exporter.getFinishedSpans().filter((x) => x.kind === SpanKind.SERVER).map((x) => x.name);
      assert.equal(servers.filter((n) => n === 'front.default.svc.cluster.local:80/*').length, 1, JSON.stringify(servers));
    } finally {
      await new Promise<void>((r) => fs.close(() => r()));
      await new Promise<void>((r) => bs.close(() => r()));
      await front.close();
      await back.close();
    }
  });

  it('a mesh serving as a gateway (numTrustedProxies) ignores it: a caller outside the mesh does not name the span (Envoy strips it from edge requests)', async () => {
    const s = await setup({ numTrustedProxies: 1, telemetry: { tracing: { samplingPercentage: 100 } } });
    try {
      await get(s.port, { 'x-forwarded-for': '203.0.113.7', 'x-envoy-decorator-operation': 'attacker-chosen-name' });
      assert.equal(server(await finished(3))?.name, `app.default.svc.cluster.local:${s.port}/*`);
    } finally {
      await s.close();
    }
  });
});
