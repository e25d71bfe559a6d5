/**
 * East-west gateways given by host name in the compile (istiod's resolveHostnameGateways): one
 * gateway per address the name resolves to — so the weight scale factor counts addresses — from a
 * MeshNetworks `address` or a LoadBalancer Service's `status.loadBalancer.ingress[].hostname`; a
 * name without addresses is no gateway, and says so.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MeshNetworks } from '../config/mesh-networks.ts';
import type { AnyResource } from '../config/resource.ts';
import { compileSnapshot } from './compile.ts';

const HOST = 'example.ns.svc.cluster.local';
const WL = { service: 'client', namespace: 'ns' };
const mtls = { app: 'example', 'security.istio.io/tlsMode': 'istio' };
const r = (kind: string, name: string, spec: object, namespace = 'ns', extra: object = {}): AnyResource => ({ apiVersion: kind === 'Service' ? 'v1' : 'networking.istio.io/v1', kind, metadata: { name, namespace, ...extra }, spec }) as unknown as AnyResource;
const service = (endpoints: object[]) => r('ServiceEntry', 'example', { hosts: [HOST], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 80, name: 'http', protocol: 'HTTP', targetPort: 8080 }], endpoints });
const ENDPOINTS = [
  { address: '10.0.0.1', labels: mtls },
  { address: '20.0.0.1', labels: mtls },
  { address: '20.0.0.2', labels: mtls, weight: 3 },
];
const NAME = 'abc123.elb.us-east-1.amazonaws.com';

function compile(resources: AnyResource[], meshNetworks: MeshNetworks | undefined, answers: Record<string, readonly string[]> = {}) {
  const snap = compileSnapshot(resources, WL, { networks: { network: 'network1', meshNetworks, gatewayAddresses: (name) => answers[name] } });
  snap.routes.route({ method: 'GET', scheme: 'http', authority: `${HOST}:80`, path: '/', headers: {} }, 0);
  const c = snap.clusters.get(`outbound|80||${HOST}`);
  assert.ok(c !== undefined);
  return { snap, cluster: c, keys: c.endpoints.map((e) => `${e.key}/${e.weight}`) };
}

const byAddress = (gateways: { address: string; port: number }[]): MeshNetworks => ({ networks: { network2: { endpoints: [{ fromCidr: '20.0.0.0/8' }], gateways } } });

describe('gateway host names in the compile', () => {
  it('a MeshNetworks address that is a host name resolving to 2 addresses weighs as 2 IP gateways (scale factor 2, as Istio)', () => {
    const ips = compile([service(ENDPOINTS)], byAddress([{ address: '2.2.2.2', port: 15443 }, { address: '2.2.2.3', port: 15443 }]));
    const named = compile([service(ENDPOINTS)], byAddress([{ address: NAME, port: 15443 }]), { [NAME]: ['2.2.2.3', '2.2.2.2'] });
    // Istio: weight × lcm(2) — 10.0.0.1 → 2; 20.0.0.1 (1×2) and 20.0.0.2 (3×2) split in two → 1 + 3 per gateway.
    assert.deepEqual(ips.keys, ['10.0.0.1:8080/2', '2.2.2.2:15443/4', '2.2.2.3:15443/4']);
    assert.deepEqual(named.keys, ips.keys);
    assert.deepEqual(named.snap.gatewayHostnames, [NAME]);
    const gw = named.cluster.endpoints[1];
    assert.match(gw?.gateway?.origin ?? '', new RegExp(`^meshNetworks networks\\.network2\\.gateways\\[0\\], host name ${NAME.replaceAll('.', '\\.')}$`));
    assert.match(named.cluster.networkFilter ?? '', /reached through gateway 2\.2\.2\.2:15443 \(meshNetworks networks\.network2\.gateways\[0\], host name abc123/);
  });

  it('the name and an IP gateway of another network: the scale factor is the lcm of the address counts', () => {
    const meshNetworks: MeshNetworks = { networks: { network2: { endpoints: [{ fromCidr: '20.0.0.0/8' }], gateways: [{ address: NAME, port: 15443 }] }, network3: { endpoints: [{ fromCidr: '30.0.0.0/8' }], gateways: [{ address: '3.3.3.3', port: 15443 }] } } };
    const { keys } = compile([service([...ENDPOINTS, { address: '30.0.0.1', labels: mtls }])], meshNetworks, { [NAME]: ['2.2.2.2', '2.2.2.3'] });
    assert.deepEqual(keys, ['10.0.0.1:8080/2', '2.2.2.2:15443/4', '2.2.2.3:15443/4', '3.3.3.3:15443/2']);
  });

  it('a LoadBalancer Service whose status has only a hostname (EKS) is its network\'s gateway at the addresses', () => {
    const gw = {
      ...r('Service', 'istio-eastwestgateway', { type: 'LoadBalancer', ports: [{ name: 'tls', port: 15443 }] }, 'istio-system', { labels: { 'topology.istio.io/network': 'network2' } }),
      status: { conditions: [], loadBalancer: { ingress: [{ hostname: NAME }] } },
    } as AnyResource;
    const eps = ENDPOINTS.map((e) => (e.address.startsWith('20.') ? { ...e, network: 'network2' } : e));
    const { keys, snap } = compile([service(eps), gw], undefined, { [NAME]: ['2.2.2.2', '2.2.2.3'] });
    assert.deepEqual(keys, ['10.0.0.1:8080/2', '2.2.2.2:15443/4', '2.2.2.3:15443/4']);
    assert.deepEqual(snap.gatewayHostnames, [NAME]);
    // An ingress entry's ip wins over its hostname (istiod: `ip`, else `hostname`).
    const withIp = { ...gw, status: { conditions: [], loadBalancer: { ingress: [{ ip: '2.2.2.9', hostname: NAME }] } } } as AnyResource;
    assert.deepEqual(compile([service(eps), withIp], undefined, { [NAME]: ['2.2.2.2'] }).keys, ['10.0.0.1:8080/1', '2.2.2.9:15443/4']);
  });

  it('a name without an answer yet, or without addresses, is no gateway: with no other, multi-network is off and says why', () => {
    const meshNetworks = byAddress([{ address: NAME, port: 15443 }]);
    const pending = compile([service(ENDPOINTS)], meshNetworks);
    assert.deepEqual(pending.keys, ['10.0.0.1:8080/1', '20.0.0.1:8080/1', '20.0.0.2:8080/3']);
    assert.deepEqual(pending.snap.gatewayHostnames, [NAME]);
    assert.match(pending.cluster.networkFilter ?? '', /^multi-network off: no east-west gateway has an address.*gateway host name abc123\.elb\.us-east-1\.amazonaws\.com:15443 of network network2 \(meshNetworks networks\.network2\.gateways\[0\]\) is not resolved \(yet\)/);
    const empty = compile([service(ENDPOINTS)], meshNetworks, { [NAME]: [] });
    assert.match(empty.cluster.networkFilter ?? '', /resolved to no addresses: no gateway/);
    // Beside a gateway that has an address, the unresolved one is named in the network line.
    const both = compile([service(ENDPOINTS)], byAddress([{ address: NAME, port: 15443 }, { address: '2.2.2.2', port: 15443 }]));
    assert.deepEqual(both.keys, ['10.0.0.1:8080/1', '2.2.2.2:15443/4']);
    assert.match(both.cluster.networkFilter ?? '', /reached through gateway 2\.2\.2\.2:15443.*; gateway host name abc123\S+ of network network2 .* is not resolved \(yet\)/);
  });

  it('without multi-network config the snapshot uses no gateway names', () => {
    assert.deepEqual(compile([service(ENDPOINTS)], undefined).snap.gatewayHostnames, []);
  });
});
