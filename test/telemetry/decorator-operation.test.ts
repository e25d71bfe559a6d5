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
import { finished, get, server, setup, useTracingSdk } from '../helpers/tracing-policy.ts';

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
});
