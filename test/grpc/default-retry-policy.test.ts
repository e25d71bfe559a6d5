/**
 * The mesh's `defaultHttpRetryPolicy` applies to gRPC calls as to HTTP ones (istiod gives every
 * HTTP route of a gRPC port the same default): a route without `retries` — no VirtualService, or
 * a GRPCRoute rule (which has no retry field) — retries the statuses the mesh default names.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMesh, seededRandom } from '../../src/index.ts';
import { closedAfter, type Echo, EchoClient, grpc, grpcServiceEntry, startGrpcUpstream, status, unary } from '../helpers/grpc.ts';

const HOST = 'echo.default.svc.cluster.local';
const DEFAULT = { attempts: 2, retryOn: 'resource-exhausted' };

/** Fails the first call with RESOURCE_EXHAUSTED (not in Istio's default retryOn), answers the rest. */
const failFirst = (call: grpc.ServerUnaryCall<{ text: string }, unknown>, cb: grpc.sendUnaryData<never>, hit: number) => {
  if (hit === 1) cb(status(grpc.status.RESOURCE_EXHAUSTED, 'first fails'));
  else cb(null, { text: call.request.text, server: 'a', seen: [] } as never);
};

const grpcRoute = {
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'GRPCRoute',
  metadata: { name: 'echo', namespace: 'default' },
  spec: { parentRefs: [{ group: '', kind: 'Service', name: 'echo', port: 9090 }], rules: [{ backendRefs: [{ name: 'echo', port: 9090 }] }] },
};

describe('gRPC calls under defaultHttpRetryPolicy', () => {
  const { ups, meshes, clients } = closedAfter();

  async function run(extra: object[], mesh: object, k8s: boolean) {
    const up = await startGrpcUpstream('a');
    ups.push(up);
    up.behaviour.Unary = failFirst as never;
    const base = k8s
      ? [
          { apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo', namespace: 'default' }, spec: { ports: [{ name: 'grpc', port: 9090 }], selector: { app: 'echo' } } },
          { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name: 'echo-1', namespace: 'default' }, spec: { address: '127.0.0.1', ports: { grpc: up.port }, labels: { app: 'echo' } } },
        ]
      : [grpcServiceEntry('echo', HOST, 9090, [{ port: up.port }])];
    const m = await createMesh({ service: 'client', random: seededRandom(3), config: [...base, ...extra], ...mesh });
    meshes.push(m);
    const client = m.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    clients.push(client);
    const r = await unary(client, { text: 'd' });
    return { r, counts: up.seen.map((s) => s.metadata['x-envoy-attempt-count']) };
  }

  it('no VirtualService: RESOURCE_EXHAUSTED is retried as the mesh default says', async () => {
    const { r, counts } = await run([], { defaultHttpRetryPolicy: DEFAULT }, false);
    assert.equal(r.reply?.text, 'd');
    assert.deepEqual(counts, ['1', '2']);
  });

  it("without it, Istio's default leaves RESOURCE_EXHAUSTED alone", async () => {
    const { r, counts } = await run([], {}, false);
    assert.equal(r.error?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.deepEqual(counts, ['1']);
  });

  it('a GRPCRoute rule gets it too', async () => {
    const { r, counts } = await run([grpcRoute], { defaultHttpRetryPolicy: DEFAULT }, true);
    assert.equal(r.reply?.text, 'd');
    assert.deepEqual(counts, ['1', '2']);
  });
});
