/**
 * A MeshConfig `defaultHttpRetryPolicy` with sub-millisecond durations: istiod does not validate
 * MeshConfig's retry policy (pkg/config/validation/agent/validation.go `ValidateMeshConfig` checks
 * only `defaultInboundHttpRetryPolicy`) and passes `perTryTimeout` and `backoff` to Envoy as they are
 * (pilot/pkg/networking/core/route/retry/retry.go `ConvertPolicy`), which reads them in whole
 * milliseconds (router config_impl.cc `RetryPolicyImpl`: a per-try timeout under 1ms is 0, none; a
 * backoff under 1ms is 1ms). The control plane takes and pushes it; a mesh runs it that way, with a
 * warning naming each field. Real control plane, a mesh fed over loopback, a 503-then-200 upstream.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { call, serviceEntry, startFlakyUpstream } from '../helpers/upstreams.ts';
import { startTestControlPlane } from './client-helpers.ts';

const open: { close(): unknown }[] = [];
after(async () => {
  for (const o of open.reverse()) await o.close();
});

describe('MeshConfig defaultHttpRetryPolicy durations under 1 ms', () => {
  it('are taken as Envoy runs them: no per-try timeout, a 1 ms backoff; each named in a warning', async () => {
    const up = await startFlakyUpstream();
    open.push(up);
    const t = await startTestControlPlane(
      { se: [serviceEntry('reviews', 'reviews.default.svc.cluster.local', 9080, [{ port: up.port }])] },
      { meshConfig: { defaultHttpRetryPolicy: { attempts: 2, retryOn: '503', perTryTimeout: '0.5ms', backoff: '0.25ms' } } },
    );
    open.push({ close: () => t.close() });
    const warnings: string[] = [];
    const token = await t.cp.mintToken({ service: 'productpage', namespace: 'default' });
    const mesh = await createMesh({ service: 'productpage', controlPlane: t.cp.url, token, identity: 'none', logger: { warn: (m: string) => warnings.push(m), info: () => undefined } });
    open.unshift(mesh);
    const r = await call(mesh, 'http://reviews:9080/');
    assert.equal(r.status, 200, 'retried on 503, and not cut by a 0.5 ms per-try timeout');
    assert.deepEqual(up.seen.map((s) => s.headers['x-envoy-attempt-count']), ['1', '2']);
    assert.equal(up.seen[0]?.headers['x-envoy-expected-rq-timeout-ms'], undefined, 'no per-try timeout announced');
    const retry = mesh.snapshot.routes.virtualHost('reviews:9080')?.routes[0]?.retry;
    assert.equal(retry?.meshDefault, true);
    assert.equal(retry?.backoffBaseMs, 1);
    assert.equal(retry?.perTryTimeoutMs, undefined);
    assert.match(mesh.explain({ url: 'http://reviews:9080/' }).toString(), /retries 2× on 503/);
    assert.ok(warnings.some((w) => /defaultHttpRetryPolicy\.perTryTimeout: .*under 1ms is 0, no per-try timeout/.test(w)), warnings.join('\n'));
    assert.ok(warnings.some((w) => /defaultHttpRetryPolicy\.backoff: .*a backoff of 1ms/.test(w)), warnings.join('\n'));
  });
});
