/**
 * A call to a host outside the registry takes one of Istio's catch-all routes
 * (`pilot/pkg/networking/core/httproute.go` `buildCatchAllVirtualHost`): under ALLOW_ANY the route
 * `allow_any` to `PassthroughCluster`, under REGISTRY_ONLY the route `block_all`, a direct
 * response 502 with no cluster. The access log names the route (`%ROUTE_NAME%`) and, for the
 * refusal, Envoy's `direct_response` details — not `via_upstream`: nothing upstream answered.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { capture, until } from '../helpers/access-log.ts';
import { startUpstream } from '../helpers/upstreams.ts';

const FORMAT = '%ROUTE_NAME% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %UPSTREAM_CLUSTER%';

describe("Istio's catch-all routes in the client access log", () => {
  for (const [policy, expected] of [
    ['ALLOW_ANY', 'allow_any 200 - via_upstream PassthroughCluster'],
    ['REGISTRY_ONLY', 'block_all 502 - direct_response -'],
  ] as const) {
    it(`${policy}: ${expected}`, async () => {
      const up = await startUpstream('outside');
      const log = capture();
      const mesh = await createMesh({ service: 'productpage', identity: 'none', outboundTrafficPolicy: policy, logger: log.logger, telemetry: { accessLog: { file: '/dev/stdout', format: FORMAT } }, config: [] });
      try {
        const r = await mesh.fetch(`http://127.0.0.1:${up.port}/x`);
        await r.text();
        await until(() => log.lines().length === 1, 'the line');
        assert.deepEqual(log.lines(), [expected]);
      } finally {
        await mesh.close();
        await up.close();
      }
    });
  }
});
