/**
 * East-west gateways by host name when a control-plane mesh starts without its control plane:
 *
 * - `failOpen` (no config): the gateways of `meshNetworks` are still resolved through
 *   `dns.resolve` before createMesh resolves, kept for their TTL and resolved again, and a
 *   changed answer is compiled in (the empty config's snapshot, again);
 * - from the last-known-good cache: the cached config's gateway (a LoadBalancer Service whose
 *   status has only a hostname, as on EKS) is resolved before the cached snapshot is installed,
 *   so remote endpoints go through it from the first call, and a changed answer moves them.
 *
 * - as istiod (`filterGatewaysByIPFamily`), a workload whose IP family is known (`sourceIp`) is
 *   given only the gateway addresses of that family; an endpoint whose gateways are all of the other
 *   family is left out, not dialled directly. Without `sourceIp` every address is used.
 *
 * The control plane is real (HTTP on 127.0.0.1); the mesh's clock is a ManualClock, so the TTLs
 * pass when the test says.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createMesh, type DnsAnswer, ManualClock, type Mesh } from '../../src/index.ts';
import { until } from '../helpers/until.ts';
import { deadPort } from '../helpers/upstreams.ts';
import { quietLogger, startTestControlPlane } from './client-helpers.ts';

const HOST = 'reviews.default.svc.cluster.local';
const ELB = 'a1b2c3-1234567890.us-east-1.elb.amazonaws.com';
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** A resolver whose answer the test sets; records the questions. */
function resolver(first: DnsAnswer) {
  let answer = first;
  const asked: string[] = [];
  return {
    asked,
    set: (a: DnsAnswer) => {
      answer = a;
    },
    resolve: (name: string, family: 0 | 4 | 6) => {
      asked.push(`${name}/${family}`);
      return Promise.resolve(answer);
    },
  };
}

const reviews = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'ServiceEntry',
  metadata: { name: 'reviews', namespace: 'default' },
  spec: {
    hosts: [HOST],
    location: 'MESH_INTERNAL',
    resolution: 'STATIC',
    ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }],
    endpoints: [
      { address: '10.1.0.5', labels: { 'security.istio.io/tlsMode': 'istio' } },
      { address: '10.2.0.5', network: 'west', labels: { 'security.istio.io/tlsMode': 'istio' } },
    ],
  },
};

/** The east-west gateway of network west as EKS reports it: a LoadBalancer whose ingress has only a hostname. */
const eastWestGateway = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'istio-eastwestgateway', namespace: 'istio-system', labels: { app: 'istio-eastwestgateway', 'topology.istio.io/network': 'west' } },
  spec: { type: 'LoadBalancer', clusterIP: '172.20.10.10', ports: [{ name: 'tls', port: 15443, protocol: 'TCP', targetPort: 15443 }], selector: { app: 'istio-eastwestgateway' } },
  status: { loadBalancer: { ingress: [{ hostname: ELB }] } },
};

const endpointsOf = (m: Mesh) => (m.explain({ url: `http://${HOST}:9080/` }).targets[0]?.endpoints ?? []).map((e) => e.endpoint).sort();
const namesOf = (m: Mesh) => (m.diagnostics().gatewayNames ?? []).map((g) => ({ hostname: g.hostname, addresses: g.addresses, lastError: g.lastError }));

test('failOpen: the meshNetworks gateway host name is resolved before createMesh resolves, and again after its TTL', async () => {
  const url = `http://127.0.0.1:${await deadPort()}`;
  const dns = resolver({ addresses: ['192.0.2.10'], ttlMs: 60_000 });
  const clock = new ManualClock(1_000);
  const warnings: string[] = [];
  const mesh = await createMesh({
    service: 'productpage',
    controlPlane: url,
    token: '',
    failOpen: true,
    startupTimeoutMs: 5000,
    network: 'east',
    meshNetworks: { networks: { west: { gateways: [{ address: ELB, port: 15443 }] } } },
    dns: { resolve: dns.resolve },
    clock,
    logger: { warn: (m: string) => warnings.push(m), info: () => undefined },
  });
  try {
    assert.equal(mesh.configSource, 'none');
    assert.deepEqual(dns.asked, [`${ELB}/0`], 'resolved once, A and AAAA (family 0), before createMesh resolved');
    assert.deepEqual(namesOf(mesh), [{ hostname: ELB, addresses: ['192.0.2.10'], lastError: null }]);
    assert.deepEqual(
      warnings.filter((w) => /gateway host name/.test(w)),
      [],
    );
    // The TTL passes and the answer changed: resolved again, the empty config compiled again with it.
    dns.set({ addresses: ['192.0.2.11'], ttlMs: 60_000 });
    clock.advance(60_000);
    await until(() => namesOf(mesh)[0]?.addresses?.[0] === '192.0.2.11', 'the new answer');
    assert.deepEqual(dns.asked, [`${ELB}/0`, `${ELB}/0`]);
    assert.equal(mesh.configSource, 'none');
  } finally {
    await mesh.close();
  }
});

test('from the last-known-good cache: the cached gateway host name is resolved before the cached config serves, and a new answer moves the remote endpoints', async () => {
  const cacheDir = await mkdtemp(join(tmpdir(), 'meshlet-gwdns-cache-'));
  dirs.push(cacheDir);
  const t = await startTestControlPlane({ se: [reviews], gw: [eastWestGateway] });
  const dns = resolver({ addresses: ['192.0.2.20'], ttlMs: 60_000 });
  const token = await t.cp.mintToken({ service: 'productpage', namespace: 'default' });
  const options = { service: 'productpage', controlPlane: t.cp.url, token, cacheDir, network: 'east', dns: { resolve: dns.resolve }, logger: quietLogger };
  try {
    const live = await createMesh(options);
    assert.equal(live.configSource, 'control-plane');
    assert.deepEqual(endpointsOf(live), ['10.1.0.5:9080', '192.0.2.20:15443'], 'live: the remote endpoint through the resolved gateway');
    await live.close(); // flushes the cache
  } finally {
    await t.close();
  }
  const clock = new ManualClock(1_000);
  dns.asked.length = 0;
  const mesh = await createMesh({ ...options, clock, startupTimeoutMs: 5000 });
  try {
    assert.equal(mesh.configSource, 'cache');
    assert.deepEqual(dns.asked, [`${ELB}/0`]);
    assert.deepEqual(endpointsOf(mesh), ['10.1.0.5:9080', '192.0.2.20:15443'], 'from the cache: through the gateway from the first call');
    const version = mesh.configVersion;
    dns.set({ addresses: ['192.0.2.21', '2001:db8::21'], ttlMs: 60_000 });
    clock.advance(60_000);
    await until(() => endpointsOf(mesh).includes('192.0.2.21:15443'), 'the new gateway address installed');
    assert.deepEqual(endpointsOf(mesh), ['10.1.0.5:9080', '192.0.2.21:15443', '[2001:db8::21]:15443']);
    assert.equal(mesh.configVersion, version, 'the cached config, compiled again');
    assert.equal(mesh.configSource, 'cache');
  } finally {
    await mesh.close();
  }
});

test("a gateway host name's A and AAAA answers: only those of the workload's IP family (sourceIp) are used; none of it leaves the remote endpoint out", async () => {
  const rows: [sourceIp: string | undefined, answer: string[], want: string[]][] = [
    [undefined, ['192.0.2.30', '2001:db8::30'], ['10.1.0.5:9080', '192.0.2.30:15443', '[2001:db8::30]:15443']],
    ['10.1.0.9', ['192.0.2.30', '2001:db8::30'], ['10.1.0.5:9080', '192.0.2.30:15443']],
    ['2001:db8:1::9', ['192.0.2.30', '2001:db8::30'], ['10.1.0.5:9080', '[2001:db8::30]:15443']],
    ['10.1.0.9', ['::ffff:192.0.2.31'], ['10.1.0.5:9080', '[::ffff:192.0.2.31]:15443']],
    // Gateways, none reachable: the remote endpoint is left out (istiod), not called at 10.2.0.5 directly.
    ['10.1.0.9', ['2001:db8::30'], ['10.1.0.5:9080']],
  ];
  for (const [sourceIp, answer, want] of rows) {
    const dns = resolver({ addresses: answer, ttlMs: 60_000 });
    const mesh = await createMesh({
      service: 'productpage',
      config: [reviews] as never,
      network: 'east',
      meshNetworks: { networks: { west: { gateways: [{ address: ELB, port: 15443 }] } } },
      dns: { resolve: dns.resolve },
      clock: new ManualClock(1_000),
      logger: quietLogger,
      ...(sourceIp === undefined ? {} : { sourceIp }),
    });
    try {
      assert.deepEqual(endpointsOf(mesh), want, `sourceIp ${sourceIp}, answer ${answer.join(' ')}`);
      if (want.length === 1) assert.match(mesh.explain({ url: `http://${HOST}:9080/` }).targets[0]?.network ?? '', /1 endpoint\(s\) on other networks left out: no gateway of this workload's IP family \(IPv4, its sourceIp\) reaches them/);
    } finally {
      await mesh.close();
    }
  }
});
