/**
 * East-west gateways by host name in an embedded mesh (files): a kubectl-dumped LoadBalancer
 * Service whose status has only a `hostname` (EKS), resolved through `dns.resolve` before the
 * first snapshot is installed; a changed answer installs a new snapshot of the same config
 * version; a reload without the gateway forgets the name.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createMesh, type DnsAnswer, ManualClock, type Mesh } from '../../src/index.ts';
import { until } from '../helpers/until.ts';

const HOST = 'reviews.default.svc.cluster.local';
const ELB = 'a1b2c3-1234567890.us-east-1.elb.amazonaws.com';

/** `kubectl get svc,serviceentry -A -o yaml`, trimmed: the east-west gateway's status has only a hostname. */
const dump = (withGateway: boolean) => `apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: ServiceEntry
  metadata: {name: reviews, namespace: default, resourceVersion: "77"}
  spec:
    hosts: [${HOST}]
    location: MESH_INTERNAL
    resolution: STATIC
    ports: [{number: 9080, name: http, protocol: HTTP}]
    endpoints:
    - {address: 10.1.0.5, labels: {security.istio.io/tlsMode: istio}}
    - {address: 10.2.0.5, network: west, labels: {security.istio.io/tlsMode: istio}}
${
  withGateway
    ? `- apiVersion: v1
  kind: Service
  metadata:
    name: istio-eastwestgateway
    namespace: istio-system
    labels: {app: istio-eastwestgateway, topology.istio.io/network: west}
    annotations: {service.beta.kubernetes.io/aws-load-balancer-type: nlb}
    resourceVersion: "4242"
    uid: 0b6f5a7e-1111-2222-3333-444455556666
  spec:
    type: LoadBalancer
    clusterIP: 172.20.10.10
    clusterIPs: [172.20.10.10]
    externalTrafficPolicy: Cluster
    internalTrafficPolicy: Cluster
    ipFamilies: [IPv4]
    ipFamilyPolicy: SingleStack
    ports:
    - {name: status-port, port: 15021, protocol: TCP, targetPort: 15021, nodePort: 31021}
    - {name: tls, port: 15443, protocol: TCP, targetPort: 15443, nodePort: 31443}
    selector: {app: istio-eastwestgateway}
    sessionAffinity: None
  status:
    loadBalancer:
      ingress:
      - hostname: ${ELB}
`
    : ''
}`;

describe('east-west gateway by host name (an EKS ELB) in an embedded mesh', () => {
  let dir: string;
  const meshes: Mesh[] = [];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshlet-gwdns-'));
  });
  after(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    await rm(dir, { recursive: true, force: true });
  });

  /** A resolver whose answer the test sets (undefined: never answers); records the questions. */
  function resolver(first: DnsAnswer | undefined) {
    let answer = first;
    const asked: string[] = [];
    return {
      asked,
      set: (a: DnsAnswer) => {
        answer = a;
      },
      resolve: (name: string, family: 0 | 4 | 6) => {
        asked.push(`${name}/${family}`);
        return answer === undefined ? new Promise<DnsAnswer>(() => undefined) : Promise.resolve(answer);
      },
    };
  }
  const gateways = (m: Mesh) => (m.explain({ url: `http://${HOST}:9080/` }).targets[0]?.endpoints ?? []).map((e) => e.endpoint);
  const turn = () => new Promise<void>((r) => setImmediate(r));

  it('resolved before the first snapshot; a new answer installs a new snapshot of the same config version; a reload without the gateway forgets the name', async () => {
    const file = join(dir, 'mesh.yaml');
    await writeFile(file, dump(true));
    const clock = new ManualClock();
    const dns = resolver({ addresses: ['198.51.100.7', '198.51.100.6'], ttlMs: 60_000 });
    const warnings: string[] = [];
    const mesh = await createMesh({ service: 'productpage', config: file, watch: false, network: 'east', clock, dns: { resolve: dns.resolve }, logger: { warn: (m) => warnings.push(m) } });
    meshes.push(mesh);
    assert.deepEqual(dns.asked, [`${ELB}/0`]);
    assert.deepEqual(gateways(mesh), ['10.1.0.5:9080', '198.51.100.6:15443', '198.51.100.7:15443']);
    const text = String(mesh.explain({ url: `http://${HOST}:9080/` }));
    assert.match(text, new RegExp(`via: east-west gateway of network west \\(Service istio-system/istio-eastwestgateway, host name ${ELB.replaceAll('.', '\\.')}\\) for 10\\.2\\.0\\.5:9080`));
    const first = mesh.snapshot;
    assert.deepEqual(first.gatewayHostnames, [ELB]);
    assert.deepEqual(mesh.diagnostics().gatewayNames, [{ hostname: ELB, addresses: ['198.51.100.6', '198.51.100.7'], refreshInMs: 60_000, lastError: null }]);

    // The ELB's addresses change: after the TTL, the same config compiles to the new gateways.
    dns.set({ addresses: ['198.51.100.9'], ttlMs: 60_000 });
    clock.advance(60_000);
    await until(() => mesh.snapshot !== first, 'a new snapshot is installed');
    assert.equal(mesh.snapshot.version, first.version);
    assert.equal(mesh.configVersion, first.version);
    assert.deepEqual(gateways(mesh), ['10.1.0.5:9080', '198.51.100.9:15443']);
    assert.deepEqual(warnings.filter((w) => /gateway host name/.test(w)), []);

    // The gateway Service is gone: the name is no longer resolved.
    await writeFile(file, dump(false));
    assert.equal(await mesh.reload(), true);
    assert.deepEqual(mesh.snapshot.gatewayHostnames, []);
    assert.equal(mesh.diagnostics().gatewayNames, undefined);
    const asked = dns.asked.length;
    clock.advance(3_600_000);
    await turn();
    assert.equal(dns.asked.length, asked);
  });

  it('a name that does not answer holds createMesh for at most 5 s (on the clock), then the config applies without it (said), and again once it answers', async () => {
    const file = join(dir, 'slow.yaml');
    await writeFile(file, dump(true));
    const clock = new ManualClock();
    let answer: (a: DnsAnswer) => void = () => undefined;
    const warnings: string[] = [];
    const pending = createMesh({ service: 'productpage', config: file, watch: false, network: 'east', clock, dns: { resolve: () => new Promise<DnsAnswer>((r) => (answer = r)) }, logger: { warn: (m) => warnings.push(m) } });
    let created: Mesh | undefined;
    void pending.then((m) => (created = m));
    await until(() => clock.pending > 0, 'createMesh waits on the clock');
    await turn();
    assert.equal(created, undefined);
    clock.advance(5_000);
    const mesh = await pending;
    meshes.push(mesh);
    assert.match(warnings.join('\n'), new RegExp(`${ELB.replaceAll('.', '\\.')} not resolved within 5000 ms: the config is applied without that gateway for now`));
    // No gateway at all: multi-network is off, and the network line says why.
    assert.deepEqual(gateways(mesh), ['10.1.0.5:9080', '10.2.0.5:9080']);
    assert.match(String(mesh.explain({ url: `http://${HOST}:9080/` })), /multi-network off: no east-west gateway has an address.*is not resolved \(yet\)/);
    answer({ addresses: ['198.51.100.7'] });
    await until(() => gateways(mesh).length === 2 && gateways(mesh)[1] === '198.51.100.7:15443', 'the late answer is installed');
    assert.deepEqual(gateways(mesh), ['10.1.0.5:9080', '198.51.100.7:15443']);
  });

  it('a ClusterIP Service dumped with an empty status keeps none (its config version is what it was); an ingress status counts in the version', async () => {
    const { contentVersion } = await import('../../src/index.ts');
    const { loadConfig } = await import('../../src/config/load-config.ts');
    const svc = (status: string) =>
      `apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: default}\nspec:\n  type: LoadBalancer\n  ports: [{name: http, port: 80}]\n  selector: {app: a}\n${status}`;
    const load = async (text: string) => {
      const f = join(dir, `v-${Math.random().toString(36).slice(2)}.yaml`);
      await writeFile(f, text);
      const l = await loadConfig(f, { defaultNamespace: 'default' });
      assert.ok(l.ok);
      return l.resources;
    };
    const none = await load(svc(''));
    const empty = await load(svc('status:\n  loadBalancer: {}\n'));
    assert.equal(empty[0]?.status, undefined);
    assert.equal(contentVersion(empty), contentVersion(none));
    const named = await load(svc(`status:\n  loadBalancer:\n    ingress: [{hostname: ${ELB}}]\n`));
    assert.deepEqual(named[0]?.status?.loadBalancer, { ingress: [{ hostname: ELB }] });
    const other = await load(svc('status:\n  loadBalancer:\n    ingress: [{hostname: b.example.com}]\n'));
    assert.notEqual(contentVersion(named), contentVersion(none));
    assert.notEqual(contentVersion(named), contentVersion(other));
  });
});
