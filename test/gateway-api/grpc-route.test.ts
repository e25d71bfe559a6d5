/**
 * A GRPCRoute attached to a Service, through real grpc-js calls: a method match (istiod's
 * `/<service>/<method>` exact match), a service match (its `/<service>/` prefix) and a header
 * match pick their backends; a missing backend answers as Envoy's 500 local reply does for gRPC
 * (UNKNOWN, flag NC).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMesh, seededRandom } from '../../src/index.ts';
import { closedAfter, type Echo, EchoClient, grpc, startGrpcUpstream, unary } from '../helpers/grpc.ts';

const service = (name: string, selector: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default' },
  spec: { ports: [{ name: 'grpc', port: 9090 }], selector },
});
const workloadEntry = (name: string, labels: Record<string, string>, port: number) => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'WorkloadEntry',
  metadata: { name, namespace: 'default' },
  spec: { address: '127.0.0.1', ports: { grpc: port }, labels },
});

describe('GRPCRoute with a Service parent, through grpc-js', () => {
  const { ups, meshes, clients } = closedAfter();

  it('routes by method, by service and by header; a missing backend is UNKNOWN (Envoy: 500 → gRPC)', async () => {
    const a = await startGrpcUpstream('v1');
    const b = await startGrpcUpstream('v2');
    ups.push(a, b);
    const mesh = await createMesh({
      service: 'client',
      random: seededRandom(7),
      config: [
        service('echo', { app: 'echo' }),
        service('echo-v1', { app: 'echo', version: 'v1' }),
        service('echo-v2', { app: 'echo', version: 'v2' }),
        workloadEntry('echo-1', { app: 'echo', version: 'v1' }, a.port),
        workloadEntry('echo-2', { app: 'echo', version: 'v2' }, b.port),
        {
          apiVersion: 'gateway.networking.k8s.io/v1',
          kind: 'GRPCRoute',
          metadata: { name: 'echo', namespace: 'default' },
          spec: {
            parentRefs: [{ group: '', kind: 'Service', name: 'echo', port: 9090 }],
            rules: [
              { matches: [{ method: { service: 'meshlet.test.Echo', method: 'Unary' } }], backendRefs: [{ name: 'echo-v1', port: 9090 }] },
              // Listed after the plain method match, but more headers rank first (Gateway API precedence, istiod's sortHTTPRoutes).
              { matches: [{ method: { service: 'meshlet.test.Echo', method: 'Unary' }, headers: [{ name: 'x-user', value: 'jason' }] }], backendRefs: [{ name: 'echo-v2', port: 9090 }] },
              { matches: [{ method: { service: 'meshlet.test.Echo', method: 'Unary' }, headers: [{ name: 'x-user', value: 'missing' }] }], backendRefs: [{ name: 'echo-v9', port: 9090 }] },
              { matches: [{ method: { service: 'meshlet.test.Echo' } }], backendRefs: [{ name: 'echo-v2', port: 9090 }] },
            ],
          },
        },
      ],
    });
    meshes.push(mesh);
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    clients.push(client);
    assert.equal((await unary(client, { text: 'x' })).reply?.server, 'v1');
    const jason = new grpc.Metadata();
    jason.set('x-user', 'jason');
    assert.equal((await unary(client, { text: 'x' }, { metadata: jason })).reply?.server, 'v2');
    const missing = new grpc.Metadata();
    missing.set('x-user', 'missing');
    const r = await unary(client, { text: 'x' }, { metadata: missing });
    assert.equal(r.error?.code, grpc.status.UNKNOWN, String(r.error));
    // The service match (a prefix) takes the other methods.
    const other = await new Promise<string | undefined>((resolve) => {
      const call = (client as unknown as { serverStream(req: object): grpc.ClientReadableStream<{ server?: string }> }).serverStream({ text: 'x', count: 1 });
      let server: string | undefined;
      call.on('data', (m) => { server ??= m.server; });
      call.on('error', () => resolve(undefined));
      call.on('end', () => resolve(server));
    });
    assert.equal(other, 'v2');
  });
});
