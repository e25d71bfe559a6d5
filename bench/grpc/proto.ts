/**
 * The service the gRPC benchmark calls: the Echo service of test/fixtures/grpc/echo.proto
 * (loaded with @grpc/proto-loader), its mesh config, and the request it sends.
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { encodePeerMetadata, localPeerMetadata, nodeId, PEER_ID_HEADER, PEER_METADATA_HEADER } from '../../src/telemetry/metrics/peer-metadata.ts';

const PROTO = fileURLToPath(new URL('../../test/fixtures/grpc/echo.proto', import.meta.url));
const loaded = grpc.loadPackageDefinition(protoLoader.loadSync(PROTO, { keepCase: true, defaults: true })) as unknown as {
  meshlet: { test: { Echo: grpc.ServiceClientConstructor } };
};

/** The Echo client class. */
export const EchoClient = loaded.meshlet.test.Echo;

/** A 100-byte request text (the outbound benchmark's body size). */
export const TEXT = 'x'.repeat(100);

export const HOST = 'echo.default.svc.cluster.local';
export const MESH_PORT = 9090;

/**
 * A realistic single-service config, as bench/outbound has: a ServiceEntry (protocol GRPC), a
 * DestinationRule with outlier detection, a VirtualService whose first rule (a metadata match the
 * calls miss) is evaluated on every call before the route with a timeout and retries on gRPC codes.
 */
export function meshResources(port: number): object[] {
  const retries = { attempts: 2, retryOn: 'unavailable,connect-failure' };
  return [
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'ServiceEntry',
      metadata: { name: 'echo', namespace: 'default' },
      spec: {
        hosts: [HOST],
        location: 'MESH_INTERNAL',
        resolution: 'STATIC',
        ports: [{ number: MESH_PORT, name: 'grpc', protocol: 'GRPC' }],
        endpoints: [{ address: '127.0.0.1', ports: { grpc: port }, labels: { version: 'v1' } }],
      },
    },
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'DestinationRule',
      metadata: { name: 'echo', namespace: 'default' },
      spec: { host: HOST, trafficPolicy: { outlierDetection: { consecutive5xxErrors: 5, interval: '10s', baseEjectionTime: '30s' } }, subsets: [{ name: 'v1', labels: { version: 'v1' } }] },
    },
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'echo', namespace: 'default' },
      spec: {
        hosts: [HOST],
        http: [
          { name: 'canary-user', match: [{ headers: { 'end-user': { exact: 'jason' } } }], route: [{ destination: { host: HOST, subset: 'v1' } }], retries, timeout: '5s' },
          { name: 'default', route: [{ destination: { host: HOST, subset: 'v1' } }], retries, timeout: '5s' },
        ],
      },
    },
  ];
}

/**
 * What the mesh puts on the wire on every call of these benchmarks, for a raw client to send the
 * same: Istio's x-envoy-peer-metadata and -id (bench-client, 127.0.0.1), and the route's 5 s
 * timeout as `grpc-timeout` (the mesh sends what remains of it).
 */
export function istioWire(): grpc.Metadata {
  const me = localPeerMetadata({ workload: 'bench-client', namespace: 'default', labels: { app: 'bench-client' }, cluster: 'Kubernetes' });
  const md = new grpc.Metadata();
  md.set(PEER_ID_HEADER, nodeId('127.0.0.1', me));
  md.set(PEER_METADATA_HEADER, encodePeerMetadata(me));
  md.set('grpc-timeout', '5000m');
  return md;
}

export { grpc };
