/**
 * A control plane's MeshConfig `defaultConfig.proxyHeaders` under a mesh's own
 * `createMesh({ proxyHeaders })`: merged as Istio merges a pod's proxy config over the mesh's
 * default (pkg/config/mesh/mesh.go `MergeProxyConfig` → `correctProxyHeaders`): the fields the
 * mesh's own leaves unset among forwardedClientCert, requestId, attemptCount, server and
 * envoyDebugHeaders stay the control plane's. Real control plane, a mesh fed over loopback, a
 * real upstream that records the headers each call carries.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { call, serviceEntry, startUpstream, virtualService } from '../helpers/upstreams.ts';
import { quietLogger, startTestControlPlane } from './client-helpers.ts';

const open: { close(): unknown }[] = [];
after(async () => {
  for (const o of open.reverse()) await o.close();
});

describe("the control plane's defaultConfig.proxyHeaders under a mesh's own proxyHeaders", () => {
  it("the mesh's own fields win, the control plane's others stay (requestId disabled by the control plane, attemptCount by the mesh)", async () => {
    const up = await startUpstream('reviews');
    open.push(up);
    const t = await startTestControlPlane(
      { se: [serviceEntry('reviews', 'reviews.default.svc.cluster.local', 9080, [{ port: up.port }]), virtualService('reviews', ['reviews.default.svc.cluster.local'], [{ route: [{ destination: { host: 'reviews.default.svc.cluster.local' } }], timeout: '5s' }])] },
      { meshConfig: { defaultConfig: { proxyHeaders: { requestId: { disabled: true }, envoyDebugHeaders: { disabled: true } } } } },
    );
    open.push({ close: () => t.close() });
    const token = await t.cp.mintToken({ service: 'productpage', namespace: 'default' });
    const mesh = await createMesh({ service: 'productpage', controlPlane: t.cp.url, token, identity: 'none', logger: quietLogger, proxyHeaders: { attemptCount: { disabled: true }, envoyDebugHeaders: { disabled: false } } });
    open.unshift(mesh);
    const r = await call(mesh, 'http://reviews:9080/');
    assert.equal(r.status, 200);
    const seen = up.seen.at(-1)?.headers ?? {};
    assert.equal(seen['x-request-id'], undefined, "the control plane's requestId.disabled stays");
    assert.equal(seen['x-envoy-attempt-count'], undefined, "the mesh's own attemptCount.disabled");
    assert.match(String(seen['x-envoy-expected-rq-timeout-ms']), /^\d+$/, "the mesh's own envoyDebugHeaders (not disabled) over the control plane's");
  });
});
