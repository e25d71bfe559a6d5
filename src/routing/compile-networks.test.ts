/**
 * Multi-network in the cluster compile: which remote endpoints count as mTLS (Istio's
 * ep_filters_test.go mtlsCases, through PeerAuthentications and DestinationRules), gateways
 * discovered from Services and MeshNetworks, fromCidr placement, and reuse across compiles.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MeshNetworks } from '../config/mesh-networks.ts';
import type { AnyResource } from '../config/resource.ts';
import { CompileCache } from './compile-cache.ts';
import { compileSnapshot } from './compile.ts';

const HOST = 'example.ns.svc.cluster.local';
const NET = 'networking.istio.io/v1';
const SEC = 'security.istio.io/v1';
const WL = { service: 'client', namespace: 'ns' };
const GW_NETWORKS: MeshNetworks = { networks: { network2: { gateways: [{ address: '2.2.2.2', port: 15443 }] } } };

const r = (kind: string, name: string, spec: object, namespace = 'ns', extra: object = {}): AnyResource => ({ apiVersion: kind.endsWith('Authentication') ? SEC : NET, kind, metadata: { name, namespace, ...extra }, spec }) as unknown as AnyResource;

function service(endpoints: object[]): AnyResource {
  return r('ServiceEntry', 'example', { hosts: [HOST], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 80, name: 'http', protocol: 'HTTP', targetPort: 8080 }], endpoints });
}
const mtls = { app: 'example', 'security.istio.io/tlsMode': 'istio' };
const ENDPOINTS = [
  { address: '10.0.0.1', network: 'network1', labels: mtls },
  { address: '20.0.0.1', network: 'network2', labels: mtls },
];

function keys(resources: AnyResource[], networks: { network: string; meshNetworks?: MeshNetworks } = { network: 'network1', meshNetworks: GW_NETWORKS }, cluster = `outbound|80||${HOST}`): string[] {
  const snap = compileSnapshot(resources, WL, { networks });
  const routeTo = snap.routes.route({ method: 'GET', scheme: 'http', authority: `${HOST}:80`, path: '/', headers: {} }, 0);
  assert.ok(routeTo !== undefined);
  const c = snap.clusters.get(cluster);
  assert.ok(c !== undefined, `cluster ${cluster} in ${[...snap.clusters.keys()].join(', ')}`);
  return c.endpoints.map((e) => `${e.key}/${e.weight}`);
}

const VIA_GATEWAY = ['10.0.0.1:8080/1', '2.2.2.2:15443/1'];
const LOCAL_ONLY = ['10.0.0.1:8080/1'];

describe('multi-network compile: remote endpoints through the gateway only when mTLS (Istio mtlsCases)', () => {
  const pa = (name: string, spec: object, ns = 'ns') => r('PeerAuthentication', name, spec, ns);
  const dr = (spec: object) => r('DestinationRule', 'example', { host: HOST, ...spec });
  const cases: [string, AnyResource[], string[], string?][] = [
    ['no policy: auto-mTLS endpoints', [], VIA_GATEWAY],
    ['mtls-off-ineffective (a PeerAuthentication selecting other workloads)', [pa('mtls-partial', { selector: { matchLabels: { app: 'b' } }, mtls: { mode: 'DISABLE' } }, 'ns')], VIA_GATEWAY],
    ['mtls-on-strict', [pa('mtls-on', { mtls: { mode: 'STRICT' } }, 'istio-system')], VIA_GATEWAY],
    ['mtls-off-global', [pa('mtls-off', { mtls: { mode: 'DISABLE' } }, 'istio-system')], LOCAL_ONLY],
    ['mtls-off-namespace', [pa('mtls-off', { mtls: { mode: 'DISABLE' } })], LOCAL_ONLY],
    ['mtls-off-workload', [pa('mtls-off', { selector: { matchLabels: { app: 'example' } }, mtls: { mode: 'DISABLE' } })], LOCAL_ONLY],
    ['mtls-off-port', [pa('mtls-off', { selector: { matchLabels: { app: 'example' } }, portLevelMtls: { 8080: { mode: 'DISABLE' } } })], LOCAL_ONLY],
    ['mtls-on-override-pa (DestinationRule ISTIO_MUTUAL over a PeerAuthentication DISABLE)', [pa('mtls-off', { mtls: { mode: 'DISABLE' } }), dr({ trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' } } })], VIA_GATEWAY],
    ['mtls-on-port-level', [dr({ trafficPolicy: { portLevelSettings: [{ port: { number: 80 }, tls: { mode: 'ISTIO_MUTUAL' } }] } })], VIA_GATEWAY],
    ['mtls-off-destination-level', [dr({ trafficPolicy: { tls: { mode: 'DISABLE' } } })], LOCAL_ONLY],
    ['mtls-off-port-level', [dr({ trafficPolicy: { portLevelSettings: [{ port: { number: 80 }, tls: { mode: 'DISABLE' } }] } })], LOCAL_ONLY],
  ];
  for (const [name, extra, want] of cases) it(name, () => assert.deepEqual(keys([service(ENDPOINTS), ...extra]), want));

  it('mtls-off-subset-level / mtls-on-subset-level / fallback to the rule: the subset cluster decides with its merged tls', () => {
    const subsetDr = (top: string, subsetPolicy: object | undefined) => dr({ trafficPolicy: { tls: { mode: top } }, subsets: [{ name: 's', labels: { app: 'example' }, ...(subsetPolicy === undefined ? {} : { trafficPolicy: subsetPolicy }) }] });
    const vs = r('VirtualService', 'example', { hosts: [HOST], http: [{ route: [{ destination: { host: HOST, subset: 's' } }] }] });
    const sub = `outbound|80|s|${HOST}`;
    assert.deepEqual(keys([service(ENDPOINTS), vs, subsetDr('ISTIO_MUTUAL', { tls: { mode: 'DISABLE' } })], undefined, sub), LOCAL_ONLY);
    assert.deepEqual(keys([service(ENDPOINTS), vs, subsetDr('DISABLE', { tls: { mode: 'ISTIO_MUTUAL' } })], undefined, sub), VIA_GATEWAY);
    assert.deepEqual(keys([service(ENDPOINTS), vs, subsetDr('DISABLE', { connectionPool: { tcp: { maxConnections: 100 } } })], undefined, sub), LOCAL_ONLY);
    assert.deepEqual(keys([service(ENDPOINTS), vs, subsetDr('ISTIO_MUTUAL', { connectionPool: { tcp: { maxConnections: 100 } } })], undefined, sub), VIA_GATEWAY);
  });

  it('a remote endpoint without security.istio.io/tlsMode: istio (no sidecar) is dropped, not dialled', () => {
    assert.deepEqual(keys([service([ENDPOINTS[0] as object, { address: '20.0.0.1', network: 'network2', labels: { app: 'example' } }])]), LOCAL_ONLY);
  });

  it('no gateway anywhere: every endpoint dialled directly, weights untouched, no network line', () => {
    const snap = compileSnapshot([service(ENDPOINTS)], WL, { networks: { network: 'network1' } });
    snap.routes.route({ method: 'GET', scheme: 'http', authority: `${HOST}:80`, path: '/', headers: {} }, 0);
    const c = snap.clusters.get(`outbound|80||${HOST}`);
    assert.deepEqual(
      c?.endpoints.map((e) => e.key),
      ['10.0.0.1:8080', '20.0.0.1:8080'],
    );
    assert.equal(c?.networkFilter, undefined);
  });
});

describe('multi-network compile: gateways and networks', () => {
  const gatewayService = (labels: Record<string, string>, ports: number[], spec: object = { externalIPs: ['2.2.2.9'] }) =>
    r('Service', 'eastwest', { ports: ports.map((p) => ({ port: p, name: `p${p}` })), ...spec }, 'istio-system', { labels });

  it('a Service labelled topology.istio.io/network is its network\'s gateway at its externalIPs, port 15443', () => {
    assert.deepEqual(keys([service(ENDPOINTS), gatewayService({ 'topology.istio.io/network': 'network2' }, [15443, 15021])], { network: 'network1' }), ['10.0.0.1:8080/1', '2.2.2.9:15443/1']);
  });

  it('networking.istio.io/gatewayPort picks another port, which the Service must expose; a LoadBalancer\'s status ingress IP counts, its spec.loadBalancerIP does not', () => {
    const lb = gatewayService({ 'topology.istio.io/network': 'network2', 'networking.istio.io/gatewayPort': '16443' }, [16443], { type: 'LoadBalancer', loadBalancerIP: '2.2.2.8' });
    const svc = { ...lb, status: { conditions: [], loadBalancer: { ingress: [{ ip: '2.2.2.7' }] } } } as AnyResource;
    assert.deepEqual(keys([service(ENDPOINTS), svc], { network: 'network1' }), ['10.0.0.1:8080/1', '2.2.2.7:16443/1']);
    // istiod's ClusterExternalAddresses: status.loadBalancer.ingress and externalIPs; loadBalancerIP (a request to the cloud) alone is no address.
    assert.deepEqual(keys([service(ENDPOINTS), lb], { network: 'network1' }), ['10.0.0.1:8080/1', '20.0.0.1:8080/1']);
    // Not listening on its gateway port: no gateway, so no multi-network at all.
    const deaf = gatewayService({ 'topology.istio.io/network': 'network2' }, [80]);
    assert.deepEqual(keys([service(ENDPOINTS), deaf], { network: 'network1' }), ['10.0.0.1:8080/1', '20.0.0.1:8080/1']);
  });

  it('MeshNetworks registryServiceName: the Service named, when the network takes this registry (fromRegistry: Kubernetes)', () => {
    const svc = gatewayService({}, [15443]);
    const meshNetworks: MeshNetworks = { networks: { network2: { endpoints: [{ fromRegistry: 'Kubernetes' }], gateways: [{ registryServiceName: 'eastwest.istio-system.svc.cluster.local', port: 15443 }] } } };
    // fromRegistry also puts every endpoint without a network label on network2 — the labelled ones stay where they are.
    assert.deepEqual(keys([service([...ENDPOINTS, { address: '30.0.0.1', labels: mtls }]), svc], { network: 'network1', meshNetworks }), ['10.0.0.1:8080/1', '2.2.2.9:15443/2']);
  });

  it('fromCidr places endpoints without a network; two gateways split and scale the weights', () => {
    const meshNetworks: MeshNetworks = { networks: { network2: { endpoints: [{ fromCidr: '20.0.0.0/8' }], gateways: [{ address: '2.2.2.2', port: 15443 }, { address: '2.2.2.3', port: 15443 }] } } };
    assert.deepEqual(keys([service([{ address: '10.0.0.1', labels: mtls }, { address: '20.0.0.1', labels: mtls }, { address: '20.0.0.2', labels: mtls, weight: 3 }])], { network: 'network1', meshNetworks }), [
      '10.0.0.1:8080/2',
      '2.2.2.2:15443/4',
      '2.2.2.3:15443/4',
    ]);
  });

  it('a subset can select by the network MeshNetworks gave an endpoint', () => {
    const meshNetworks: MeshNetworks = { networks: { network2: { endpoints: [{ fromCidr: '20.0.0.0/8' }] }, network3: { gateways: [{ address: '3.3.3.3', port: 15443 }] } } };
    const resources = [
      service([{ address: '10.0.0.1', labels: mtls }, { address: '20.0.0.1', labels: mtls }]),
      r('DestinationRule', 'example', { host: HOST, subsets: [{ name: 'n2', labels: { 'topology.istio.io/network': 'network2' } }] }),
      r('VirtualService', 'example', { hosts: [HOST], http: [{ route: [{ destination: { host: HOST, subset: 'n2' } }] }] }),
    ];
    assert.deepEqual(keys(resources, { network: 'network1', meshNetworks }, `outbound|80|n2|${HOST}`), ['20.0.0.1:8080/1']);
  });

  it('a compile with the cache reuses no cluster made for another network or other gateways', () => {
    const cache = new CompileCache();
    const resources = [service(ENDPOINTS)];
    const compile = (network: string, meshNetworks?: MeshNetworks) => {
      const snap = compileSnapshot(resources, WL, { cache, networks: { network, meshNetworks } });
      snap.routes.route({ method: 'GET', scheme: 'http', authority: `${HOST}:80`, path: '/', headers: {} }, 0);
      return snap.clusters.get(`outbound|80||${HOST}`)?.endpoints.map((e) => e.key);
    };
    assert.deepEqual(compile('network1', GW_NETWORKS), ['10.0.0.1:8080', '2.2.2.2:15443']);
    const both: MeshNetworks = { networks: { ...GW_NETWORKS.networks, network1: { gateways: [{ address: '1.1.1.1', port: 15443 }] } } };
    assert.deepEqual(compile('network2', both), ['20.0.0.1:8080', '1.1.1.1:15443']);
    assert.deepEqual(compile('network1', both), ['10.0.0.1:8080', '2.2.2.2:15443']);
    assert.deepEqual(compile('network1'), ['10.0.0.1:8080', '20.0.0.1:8080']);
  });

  it('a compile with the cache reuses no multi-network cluster made under other PeerAuthentications', () => {
    const cache = new CompileCache();
    const compile = (resources: AnyResource[]) => {
      const snap = compileSnapshot(resources, WL, { cache, networks: { network: 'network1', meshNetworks: GW_NETWORKS } });
      snap.routes.route({ method: 'GET', scheme: 'http', authority: `${HOST}:80`, path: '/', headers: {} }, 0);
      return snap.clusters.get(`outbound|80||${HOST}`)?.endpoints.map((e) => e.key);
    };
    const svc = service(ENDPOINTS);
    assert.deepEqual(compile([svc]), ['10.0.0.1:8080', '2.2.2.2:15443']);
    assert.deepEqual(compile([svc, r('PeerAuthentication', 'off', { mtls: { mode: 'DISABLE' } })]), ['10.0.0.1:8080']);
    assert.deepEqual(compile([svc]), ['10.0.0.1:8080', '2.2.2.2:15443']);
  });
});
