/** MeshNetworks read and checked as istiod's ValidateMeshNetworks (pkg/config/validation/agent TestValidateMeshNetworks, and more). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isMeshletError } from '../core/errors.ts';
import { readMeshNetworks } from './mesh-networks.ts';

const W = 'createMesh: `meshNetworks`';

function problem(input: unknown): string {
  try {
    readMeshNetworks(input, W);
  } catch (e) {
    assert.ok(isMeshletError(e, 'MESHLET_ERR_INVALID_ARG'), String(e));
    return (e as Error).message;
  }
  return assert.fail('expected an error');
}

describe('readMeshNetworks (Istio TestValidateMeshNetworks)', () => {
  it('Empty MeshNetworks', () => {
    assert.deepEqual(readMeshNetworks({}, W), { networks: {} });
    assert.deepEqual(readMeshNetworks('', W), { networks: {} });
  });
  it('Valid MeshNetworks', () => {
    const text = 'networks:\n  n1:\n    endpoints:\n    - fromRegistry: Kubernetes\n    gateways:\n    - registryServiceName: istio-ingressgateway.istio-system.svc.cluster.local\n      port: 80\n  n2:\n    endpoints:\n    - fromRegistry: cluster1\n    gateways:\n    - registryServiceName: istio-ingressgateway.istio-system.svc.cluster.local\n      port: 443\n';
    const m = readMeshNetworks(text, W);
    assert.deepEqual(Object.keys(m.networks), ['n1', 'n2']);
    assert.deepEqual(m.networks.n1?.gateways, [{ registryServiceName: 'istio-ingressgateway.istio-system.svc.cluster.local', port: 80 }]);
  });
  it('Invalid Gateway Address', () => {
    assert.equal(problem({ networks: { n1: { endpoints: [{ fromRegistry: 'Kubernetes' }], gateways: [{ address: '1nv@lidhostname', port: 80 }] } } }), `${W} is invalid: networks.n1.gateways[0].address: "1nv@lidhostname" is not a valid IP address or DNS name`);
  });
  it('Invalid registry name', () => {
    assert.match(problem({ networks: { n1: { endpoints: [{ fromRegistry: 'cluster.local' }], gateways: [{ registryServiceName: 'istio-ingressgateway.istio-system.svc.cluster.local', port: 80 }] } } }), /networks\.n1\.endpoints\[0\]\.fromRegistry: invalid registry name "cluster\.local"/);
  });
  it('every issue, each with its path: a bad CIDR, a bad port, both or neither of a oneof, unknown fields', () => {
    const msg = problem({ networks: { a: { endpoints: [{ fromCidr: '10.0.0.0/33' }, { fromCidr: '10.0.0.0/8', fromRegistry: 'Kubernetes' }, {}], gateways: [{ address: '1.2.3.4', port: 0 }, { port: 15443 }, { address: '1.2.3.4', registryServiceName: 'x.y', port: 1 }, { adress: '1.2.3.4', port: 15443 }] }, b: 'x' }, extra: 1 });
    for (const part of [
      'extra is not a field of MeshNetworks (networks)',
      'networks.a.endpoints[0].fromCidr: "10.0.0.0/33" is not a CIDR: the prefix length must be 0 to 32',
      'networks.a.endpoints[1] must set exactly one of fromCidr, fromRegistry (it sets both)',
      'networks.a.endpoints[2] must set exactly one of fromCidr, fromRegistry (it sets neither)',
      'networks.a.gateways[0].port: must be a port number 1-65535, got 0',
      'networks.a.gateways[1] must set exactly one of address, registryServiceName (it sets neither)',
      'networks.a.gateways[2] must set exactly one of address, registryServiceName (it sets both)',
      'networks.a.gateways[3].adress is not a field of a network gateway (address, registryServiceName, port, locality)',
      'networks.b must be a mapping with endpoints and gateways, got "x"',
    ]) assert.ok(msg.includes(part), `${part}\n  in: ${msg}`);
  });
  it('a gateway host name is accepted (istiod resolves it: RESOLVE_HOSTNAME_GATEWAYS, on by default); a bad one is not', () => {
    const m = readMeshNetworks({ networks: { a: { gateways: [{ address: 'abc123.elb.us-east-1.amazonaws.com', port: 15443 }, { address: '2001:db8::7', port: 15443 }] } } }, W);
    assert.deepEqual(m.networks.a?.gateways?.map((g) => g.address), ['abc123.elb.us-east-1.amazonaws.com', '2001:db8::7']);
    assert.match(problem({ networks: { a: { gateways: [{ address: `${'a'.repeat(64)}.example.com`, port: 15443 }] } } }), /gateways\[0\]\.address: "a{64}\.example\.com" is not a valid IP address or DNS name/);
    assert.match(problem({ networks: { a: { gateways: [{ address: 'gw_1.example.com', port: 15443 }] } } }), /is not a valid IP address or DNS name/);
    assert.match(problem({ networks: { a: { gateways: [{ address: '', port: 15443 }] } } }), /gateways\[0\]\.address: "" is not a valid IP address or DNS name/);
  });
  it('the istio ConfigMap: its data.meshNetworks; one without it is named', () => {
    assert.deepEqual(Object.keys(readMeshNetworks({ kind: 'ConfigMap', data: { mesh: '', meshNetworks: 'networks: {w: {gateways: [{address: 1.2.3.4, port: 15443}]}}' } }, W).networks), ['w']);
    assert.match(problem({ kind: 'ConfigMap', data: { mesh: '' } }), /is a ConfigMap without a `data\.meshNetworks` text/);
  });
  it('not YAML, not a mapping', () => {
    assert.match(problem('networks: [unclosed'), /is not valid YAML/);
    assert.match(problem([1]), /must be Istio's MeshNetworks .* got a list/);
  });
});
