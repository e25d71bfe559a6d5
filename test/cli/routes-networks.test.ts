/**
 * `meshlet routes --network --mesh-networks` (or the --mesh-config ConfigMap's data.meshNetworks):
 * an endpoint on another network with an east-west gateway is shown as that gateway, saying which
 * endpoints it stands for; a bad MeshNetworks file is a usage mistake naming what is wrong.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { meshlet } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-cli-networks-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const CONFIG = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 10.1.0.1, network: east, labels: {security.istio.io/tlsMode: istio}}
  - {address: 10.2.0.1, network: west, labels: {security.istio.io/tlsMode: istio}}
  - {address: 10.2.0.2, network: west}
`;
const NETWORKS = 'networks:\n  west:\n    gateways: [{address: 192.0.2.7, port: 15443}]\n';
const config = join(dir, 'config.yaml');
const networks = join(dir, 'networks.yaml');
const configMap = join(dir, 'istio.yaml');
writeFileSync(config, CONFIG);
writeFileSync(networks, NETWORKS);
writeFileSync(configMap, `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |\n    trustDomain: cluster.local\n  meshNetworks: |\n${NETWORKS.replace(/^/gm, '    ')}`);

describe('meshlet routes: multi-network', () => {
  it('text: the gateway endpoint with what it stands for, and the cluster\'s network line', () => {
    const r = meshlet(['routes', config, '--service', 'client', '--network', 'east', '--mesh-networks', networks]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /outbound\|8080\|\|api\.internal: 10\.1\.0\.1:8080 192\.0\.2\.7:15443 \(east-west gateway of west for 10\.2\.0\.1:8080\)/);
    assert.match(r.stdout, /network: multi-network: this workload is on network east; 1 endpoint\(s\) on other networks reached through gateway 192\.0\.2\.7:15443 \(meshNetworks networks\.west\.gateways\[0\]\); 1 endpoint\(s\) on other networks left out: calls to them would not use Istio mTLS/);
  });

  it('-o json: each endpoint says the gateway it is, or null', () => {
    const r = meshlet(['routes', config, '--service', 'client', '--network', 'east', '--mesh-config', configMap, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const c = JSON.parse(r.stdout).clusters[0];
    assert.match(c.network, /this workload is on network east/);
    assert.deepEqual(
      c.endpoints.map((e: { endpoint: string; gateway: unknown }) => [e.endpoint, e.gateway]),
      [
        ['10.1.0.1:8080', null],
        ['192.0.2.7:15443', { network: 'west', origin: 'meshNetworks networks.west.gateways[0]', endpoints: ['10.2.0.1:8080'] }],
      ],
    );
  });

  it('without a gateway anywhere every endpoint is listed as it is', () => {
    const r = meshlet(['routes', config, '--service', 'client', '--network', 'east']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /api\.internal: 10\.1\.0\.1:8080 10\.2\.0\.1:8080 10\.2\.0\.2:8080\n/);
  });

  it('meshlet explain --mesh-config: the ConfigMap\'s data.meshNetworks applies, the network from the workload\'s label', () => {
    const r = meshlet(['explain', config, '--service', 'client', '-l', 'topology.istio.io/network=east', '--mesh-config', configMap, 'http://api.internal:8080/']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\n {4}network: {12}this workload is on network east; 1 endpoint\(s\) on other networks reached through gateway 192\.0\.2\.7:15443/);
    assert.match(r.stdout, /192\.0\.2\.7:15443 .*\n {8}via: east-west gateway of network west \(meshNetworks networks\.west\.gateways\[0\]\) for 10\.2\.0\.1:8080/);
  });

  it('meshlet explain -o json: the destination\'s network and each endpoint\'s gateway (null for a workload)', () => {
    const r = meshlet(['explain', config, '--service', 'client', '-l', 'topology.istio.io/network=east', '--mesh-config', configMap, 'http://api.internal:8080/', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const d = JSON.parse(r.stdout).destinations[0];
    assert.match(d.network, /this workload is on network east/);
    assert.deepEqual(
      d.endpoints.map((e: { endpoint: string; gateway: string | null }) => [e.endpoint, e.gateway]),
      [
        ['10.1.0.1:8080', null],
        ['192.0.2.7:15443', 'east-west gateway of network west (meshNetworks networks.west.gateways[0]) for 10.2.0.1:8080'],
      ],
    );
  });

  it('a bad MeshNetworks file: exit 2, naming the file and the problem', () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'networks:\n  west:\n    gateways: [{address: 192.0.2.7}]\n');
    const r = meshlet(['routes', config, '--service', 'client', '--mesh-networks', bad]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /meshlet routes: --mesh-networks .*bad\.yaml: MeshNetworks is invalid: networks\.west\.gateways\[0\]\.port: must be a port number 1-65535, got undefined/);
  });
  it('a gateway by host name: listed as resolved at run time; --resolve-gateways resolves it with this machine\'s resolver', () => {
    const named = join(dir, 'named.yaml');
    writeFileSync(named, 'networks:\n  west:\n    gateways: [{address: localhost, port: 15443}]\n');
    const r = meshlet(['routes', config, '--service', 'client', '--network', 'east', '--mesh-networks', named]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /East-west gateways by host name, resolved by each mesh at run time \(shown here as no gateway; --resolve-gateways resolves them now\): localhost/);
    assert.match(r.stdout, /network: multi-network off: no east-west gateway has an address, every endpoint is dialled directly; gateway host name localhost:15443 of network west \(meshNetworks networks\.west\.gateways\[0\]\) is not resolved \(yet\)/);
    const resolved = meshlet(['routes', config, '--service', 'client', '--network', 'east', '--mesh-networks', named, '--resolve-gateways']);
    assert.equal(resolved.code, 0, resolved.stderr);
    assert.match(resolved.stdout, /East-west gateway host names, resolved now .*:\n {2}localhost → (\S+, )*127\.0\.0\.1/);
    assert.match(resolved.stdout, /127\.0\.0\.1:15443 \(east-west gateway of west for 10\.2\.0\.1:8080\)/);
    const json = JSON.parse(meshlet(['routes', config, '--service', 'client', '--network', 'east', '--mesh-networks', named, '--resolve-gateways', '-o', 'json']).stdout);
    assert.equal(json.gatewayHostnames[0].hostname, 'localhost');
    assert.ok(json.gatewayHostnames[0].addresses.includes('127.0.0.1'));
    assert.match(json.clusters[0].endpoints.find((e: { gateway: unknown }) => e.gateway !== null).gateway.origin, /host name localhost/);
  });
});
