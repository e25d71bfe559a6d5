/**
 * `x-envoy-force-trace` is honoured only from an internal request. Envoy removes it from external
 * requests (conn_manager_utility.cc: cleanInternalHeaders, before mutateTracingRequestHeader
 * decides), and for an Istio sidecar the app's own requests are external (istiod gives the
 * outbound listener use_remote_address: false and the app sends no x-forwarded-for; meshlet's
 * `trustEnvoyRequestHeaders: true` is PILOT_SIDECAR_USE_REMOTE_ADDRESS=true) and so is every
 * caller's request to the inbound listener (use_remote_address: false, listener_inbound.go).
 * Before, any caller (or an app forwarding its caller's headers) forced a trace of every request it
 * sent at 0 % sampling. `x-client-trace-id` is honoured from anyone (tracing.client_enabled).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { always, exporter, finished, get, setup, sinkSeen, useTracingSdk } from '../helpers/tracing-policy.ts';

useTracingSdk();

const sampledAtSink = (): boolean => String(sinkSeen.at(-1)?.traceparent).endsWith('-01');

describe('x-envoy-force-trace', () => {
  it("a caller's, on an inbound request: not honoured (0 %: nothing recorded, sampled=0 goes on)", async () => {
    const s = await setup({ random: always(0.99), telemetry: { tracing: { samplingPercentage: 0 } } });
    try {
      await get(s.port, { 'x-envoy-force-trace': 'true' });
      assert.equal(sampledAtSink(), false, String(sinkSeen.at(-1)?.traceparent));
      assert.equal((await finished(1)).length, 0);
    } finally {
      await s.close();
    }
  });

  it("a caller's x-client-trace-id still forces it (tracing.client_enabled)", async () => {
    const s = await setup({ random: always(0.99), telemetry: { tracing: { samplingPercentage: 0 } } });
    try {
      await get(s.port, { 'x-client-trace-id': 'abc' });
      assert.equal(sampledAtSink(), true);
      assert.equal((await finished(3)).length, 3);
    } finally {
      await s.close();
    }
  });

  for (const trust of [false, true]) {
    it(`the app's, on a call made outside any request: ${trust ? 'honoured and sent on with trustEnvoyRequestHeaders' : 'not honoured, and removed'}`, async () => {
      const s = await setup({ random: always(0.99), telemetry: { tracing: { samplingPercentage: 0 } }, ...(trust ? { trustEnvoyRequestHeaders: true } : {}) });
      try {
        sinkSeen.length = 0;
        exporter.reset();
        const r = await s.mesh.fetch('http://sink.default.svc.cluster.local/top', { headers: { 'x-envoy-force-trace': 'true' } });
        await r.text();
        assert.equal(sampledAtSink(), trust, String(sinkSeen.at(-1)?.traceparent));
        assert.equal(sinkSeen.at(-1)?.['x-envoy-force-trace'], trust ? 'true' : undefined);
        assert.equal((await finished(trust ? 2 : 1)).length, trust ? 2 : 0, 'the call span and its attempt span');
      } finally {
        await s.close();
      }
    });
  }

  it("the app's x-client-trace-id on a call still forces it", async () => {
    const s = await setup({ random: always(0.99), telemetry: { tracing: { samplingPercentage: 0 } } });
    try {
      sinkSeen.length = 0;
      const r = await s.mesh.fetch('http://sink.default.svc.cluster.local/top', { headers: { 'x-client-trace-id': 'abc' } });
      await r.text();
      assert.equal(sampledAtSink(), true);
    } finally {
      await s.close();
    }
  });
});
