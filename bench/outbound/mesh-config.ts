/**
 * The Istio resources the meshlet variants of the outbound benchmark run with: a realistic
 * single-service setup, not a minimal one, so the numbers include route matching, a weighted
 * split, the retry/timeout policy and the outlier-detection bookkeeping.
 *
 * The upstream process listens on 127.0.0.1:PORT and 127.0.0.2:PORT (same process, same CPU),
 * so the v1 and v2 endpoints are distinct addresses and the upstream can count the split.
 */
export const HOST = 'upstream.default.svc.cluster.local';
export const V1_ADDRESS = '127.0.0.1';
export const V2_ADDRESS = '127.0.0.2';

export function meshResources(port: number): object[] {
  const retries = { attempts: 2, retryOn: '5xx,connect-failure' };
  return [
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'ServiceEntry',
      metadata: { name: 'upstream', namespace: 'default' },
      spec: {
        hosts: [HOST],
        location: 'MESH_INTERNAL',
        resolution: 'STATIC',
        ports: [{ number: port, name: 'http', protocol: 'HTTP' }],
        endpoints: [
          { address: V1_ADDRESS, labels: { version: 'v1' } },
          { address: V2_ADDRESS, labels: { version: 'v2' } },
        ],
      },
    },
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'DestinationRule',
      metadata: { name: 'upstream', namespace: 'default' },
      spec: {
        host: HOST,
        trafficPolicy: {
          loadBalancer: { simple: 'LEAST_REQUEST' },
          outlierDetection: { consecutive5xxErrors: 5, interval: '10s', baseEjectionTime: '30s' },
        },
        subsets: [
          { name: 'v1', labels: { version: 'v1' } },
          { name: 'v2', labels: { version: 'v2' } },
        ],
      },
    },
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'upstream', namespace: 'default' },
      spec: {
        hosts: [HOST],
        http: [
          {
            // The benchmark's requests carry no end-user header: every request evaluates this
            // match, misses, and falls through to the weighted route.
            name: 'canary-user',
            match: [{ headers: { 'end-user': { exact: 'jason' } } }],
            route: [{ destination: { host: HOST, subset: 'v2' } }],
            retries,
            timeout: '5s',
          },
          {
            name: 'default',
            route: [
              { destination: { host: HOST, subset: 'v1' }, weight: 90 },
              { destination: { host: HOST, subset: 'v2' }, weight: 10 },
            ],
            retries,
            timeout: '5s',
          },
        ],
      },
    },
  ];
}
