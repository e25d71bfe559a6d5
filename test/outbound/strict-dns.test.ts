/**
 * `resolution: DNS` is Envoy's STRICT_DNS cluster (Istio's `convertResolution`): every address
 * the name resolves to is an endpoint of its own — balanced across, ejected by outlier detection
 * one by one — re-resolved in the background, hosts added and removed as the answer changes,
 * the last hosts kept when a resolution fails. Before, the name was one endpoint resolved by the
 * OS per connection, so one bad address among three was never ejected on its own.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import { after, test } from 'node:test';
import { createMesh, type DnsAnswer, ManualClock, type OutboundEvent, seededRandom } from '../../src/index.ts';
import { applyMeshConfig } from '../../src/mesh-config-option.ts';
import { cleanupPki, issueLeaf, makeCa } from '../helpers/pki.ts';
import { startTlsUpstream } from '../helpers/tls-upstreams.ts';
import { until } from '../helpers/until.ts';
import { call, destinationRule, virtualService } from '../helpers/upstreams.ts';

const servers: Server[] = [];
after(() => Promise.all(servers.map((s) => new Promise((r) => s.close(r)))));

const hits = new Map<string, number>();
/** Connections open to each address. */
const open = new Map<string, number>();

/** A server on `address:port` (port 0: any) answering with its address, or 500 when `bad`. */
async function listen(address: string, port: number, bad = false): Promise<number> {
  const s = createServer((req, res) => {
    hits.set(address, (hits.get(address) ?? 0) + 1);
    res.setHeader('x-upstream', address);
    res.setHeader('x-host', req.headers.host ?? '');
    res.statusCode = bad ? 500 : 200;
    res.end(address);
  });
  s.on('connection', (c) => {
    open.set(address, (open.get(address) ?? 0) + 1);
    c.on('close', () => open.set(address, (open.get(address) ?? 0) - 1));
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(port, address, r));
  return (s.address() as { port: number }).port;
}

function dnsEntry(port: number, resolution = 'DNS'): object {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'db', namespace: 'default' },
    spec: { hosts: ['db.example.test'], location: 'MESH_EXTERNAL', resolution, ports: [{ number: 80, name: 'http', protocol: 'HTTP', targetPort: port }] },
  };
}

/** A fake resolver: answers with `answer` (or throws it), counting lookups. */
function fakeDns(initial: readonly string[]) {
  const d = {
    answer: initial as readonly string[] | Error,
    lookups: 0,
    names: [] as string[],
    resolve: async (name: string, family: number): Promise<DnsAnswer> => {
      d.lookups++;
      d.names.push(`${name}/${family}`);
      if (d.answer instanceof Error) throw d.answer;
      return { addresses: d.answer };
    },
  };
  return d;
}

const settle = () => new Promise((r) => setImmediate(r));

test('each address is its own endpoint: one bad address is ejected alone; answers add and remove hosts; a failed resolution keeps them', async () => {
  const port = await listen('127.0.0.1', 0);
  await listen('127.0.0.2', port, true);
  await listen('127.0.0.3', port);
  const clock = new ManualClock();
  const dns = fakeDns(['127.0.0.1', '127.0.0.2', '127.0.0.3']);
  const mesh = await createMesh({
    service: 'client',
    clock,
    random: seededRandom(1),
    logger: { warn: () => undefined },
    dns: { resolve: dns.resolve, refreshRateMs: 30_000 },
    config: [
      dnsEntry(port),
      virtualService('db', ['db.example.test'], [{ route: [{ destination: { host: 'db.example.test' } }], retries: { attempts: 0 } }]),
      destinationRule('db', 'db.example.test', { trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' }, outlierDetection: { consecutive5xxErrors: 1, baseEjectionTime: '300s', maxEjectionPercent: 100 } } }),
    ],
  });
  const ejected: OutboundEvent[] = [];
  mesh.on('ejected', (e: OutboundEvent) => ejected.push(e));
  try {
    hits.clear();
    assert.ok((open.get('127.0.0.1') ?? 0) === 0);
    const first = await Promise.all([call(mesh, 'http://db.example.test/'), call(mesh, 'http://db.example.test/')]);
    assert.equal(dns.lookups, 1, 'calls waiting for the first answer share one resolution');
    assert.deepEqual(dns.names, ['db.example.test/4'], "Istio's V4_ONLY for an IPv4 workload");
    assert.equal(first[0].headers.get('x-host'), 'db.example.test', 'the Host stays the name');
    for (let i = 0; i < 6; i++) await call(mesh, 'http://db.example.test/');
    assert.deepEqual(ejected.map((e) => e.endpoint), [`127.0.0.2:${port}`], 'only the failing address is ejected');
    const eps = () => mesh.diagnostics().clusters.find((c) => c.name.endsWith('db.example.test'))?.endpoints.map((e) => e.endpoint).sort();
    assert.deepEqual(eps(), [`127.0.0.1:${port}`, `127.0.0.2:${port}`, `127.0.0.3:${port}`]);
    hits.clear();
    for (let i = 0; i < 10; i++) assert.equal((await call(mesh, 'http://db.example.test/')).status, 200);
    assert.deepEqual([...hits.keys()].sort(), ['127.0.0.1', '127.0.0.3'], 'the healthy addresses share the calls');

    // The answer changes at the next refresh: 127.0.0.1 leaves.
    dns.answer = ['127.0.0.3', '127.0.0.2'];
    clock.advance(29_999);
    await settle();
    assert.equal(dns.lookups, 1, 'not before dnsRefreshRate');
    clock.advance(1);
    await settle();
    assert.equal(dns.lookups, 2);
    assert.deepEqual(eps(), [`127.0.0.2:${port}`, `127.0.0.3:${port}`]);
    await until(() => open.get('127.0.0.1') === 0, "the removed address's idle connections are closed");
    hits.clear();
    for (let i = 0; i < 4; i++) await call(mesh, 'http://db.example.test/');
    assert.deepEqual([...hits.keys()], ['127.0.0.3'], '127.0.0.2 is still ejected: its state survived the new answer');

    // A failed resolution keeps the last hosts, and is retried.
    dns.answer = new Error('queryA ESERVFAIL db.example.test');
    clock.advance(30_000);
    await settle();
    assert.equal(dns.lookups, 3);
    assert.deepEqual(eps(), [`127.0.0.2:${port}`, `127.0.0.3:${port}`]);
    assert.equal((await call(mesh, 'http://db.example.test/')).status, 200);
    dns.answer = ['127.0.0.1'];
    clock.advance(30_000);
    await settle();
    assert.equal(dns.lookups, 4, 'retried after the refresh rate (the first failure)');
    assert.deepEqual(eps(), [`127.0.0.1:${port}`]);
  } finally {
    await mesh.close();
  }
  clock.advance(600_000);
  await settle();
  assert.equal(dns.lookups, 4, 'no resolution after close');
});

test('a name that does not resolve at first: 503 UH, as an Envoy STRICT_DNS cluster without hosts', async () => {
  const clock = new ManualClock();
  const dns = fakeDns([]);
  dns.answer = new Error('getaddrinfo ENOTFOUND db.example.test');
  const mesh = await createMesh({ service: 'client', clock, logger: { warn: () => undefined }, dns: { resolve: dns.resolve }, config: [dnsEntry(1)] });
  try {
    const r = await call(mesh, 'http://db.example.test/');
    assert.equal(r.status, 503);
    assert.equal(r.flags, 'UH');
  } finally {
    await mesh.close();
  }
});

test('DNS_ROUND_ROBIN (LOGICAL_DNS): one host named by the host, connecting to the first address of the latest answer', async () => {
  const port = await listen('127.0.0.1', 0);
  await listen('127.0.0.2', port);
  const clock = new ManualClock();
  const dns = fakeDns(['127.0.0.2', '127.0.0.1']);
  const mesh = await createMesh({ service: 'client', clock, logger: { warn: () => undefined }, dns: { resolve: dns.resolve, refreshRateMs: 5_000 }, config: [dnsEntry(port, 'DNS_ROUND_ROBIN')] });
  const eps = () => mesh.diagnostics().clusters[0]?.endpoints.map((e) => e.endpoint);
  try {
    hits.clear();
    for (let i = 0; i < 3; i++) assert.equal((await call(mesh, 'http://db.example.test/')).status, 200);
    assert.deepEqual([...hits.entries()], [['127.0.0.2', 3]], 'every call to the first address');
    assert.deepEqual(eps(), [`db.example.test:${port}`]);
    dns.answer = ['127.0.0.1', '127.0.0.2'];
    clock.advance(5_000);
    await settle();
    assert.equal(dns.lookups, 2);
    hits.clear();
    for (let i = 0; i < 3; i++) assert.equal((await call(mesh, 'http://db.example.test/')).status, 200);
    assert.deepEqual([...hits.entries()], [['127.0.0.1', 3]], 'new connections go to the new first address');
    assert.deepEqual(eps(), [`db.example.test:${port}`], 'still one host');
    // A failed or empty answer keeps the address.
    dns.answer = [];
    clock.advance(5_000);
    await settle();
    assert.equal((await call(mesh, 'http://db.example.test/')).status, 200);
    assert.deepEqual(eps(), [`db.example.test:${port}`]);
  } finally {
    await mesh.close();
  }
});

test('a call waiting for the first answer ends at its route timeout (504 UT); explain shows the names and their answers', async () => {
  const clock = new ManualClock();
  let answer: (a: DnsAnswer) => void = () => undefined;
  let lookups = 0;
  const port = await listen('127.0.0.1', 0);
  const mesh = await createMesh({
    service: 'client',
    clock,
    logger: { warn: () => undefined },
    dns: {
      resolve: () => {
        lookups++;
        return new Promise<DnsAnswer>((r) => (answer = r));
      },
    },
    config: [dnsEntry(port), virtualService('db', ['db.example.test'], [{ route: [{ destination: { host: 'db.example.test' } }], timeout: '2s' }])],
  });
  try {
    const pending = call(mesh, 'http://db.example.test/');
    await settle();
    assert.match(String(mesh.explain({ url: 'http://db.example.test/' })), /dns: db\.example\.test → resolving/);
    clock.advance(2_000);
    const r = await pending;
    assert.equal(r.status, 504);
    assert.equal(r.flags, 'UT');
    answer({ addresses: ['127.0.0.1'] });
    await settle();
    const e = mesh.explain({ url: 'http://db.example.test/' });
    assert.deepEqual(e.targets[0]?.dns, ['db.example.test → 127.0.0.1']);
    assert.deepEqual(e.targets[0]?.endpoints.map((x) => x.endpoint), [`127.0.0.1:${port}`]);
    assert.equal((await call(mesh, 'http://db.example.test/')).status, 200);
    assert.equal(lookups, 1);
  } finally {
    await mesh.close();
  }
});

test('a config change that drops a name nobody has answered for lets the waiting call go to the new endpoints', async () => {
  const port = await listen('127.0.0.1', 0);
  const dir = mkdtempSync(join(tmpdir(), 'strict-dns-'));
  const file = join(dir, 'mesh.yaml');
  const entry = (address: string) => JSON.stringify({ ...dnsEntry(port), spec: { ...(dnsEntry(port) as { spec: object }).spec, endpoints: [{ address }] } });
  writeFileSync(file, entry('hangs.example.test'));
  const resolve = (): Promise<DnsAnswer> => new Promise<DnsAnswer>(() => undefined);
  const mesh = await createMesh({ service: 'client', config: file, watch: false, logger: { warn: () => undefined }, dns: { resolve } });
  try {
    const pending = call(mesh, 'http://db.example.test/');
    await settle();
    writeFileSync(file, entry('127.0.0.1'));
    assert.equal(await mesh.reload(), true);
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal(mesh.explain({ url: 'http://db.example.test/' }).targets[0]?.dns, undefined);
  } finally {
    await mesh.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('TLS origination to a resolved address names and verifies the host name, not the IP', async () => {
  const ca = makeCa({ name: 'strict-dns-ca' });
  const leaf = issueLeaf(ca, { dns: ['db.example.test'] });
  const up = await startTlsUpstream({ cert: leaf.chainPem, key: leaf.keyPem, name: 'tls' });
  const dns = fakeDns(['127.0.0.1']);
  const mesh = await createMesh({
    service: 'client',
    logger: { warn: () => undefined },
    dns: { resolve: dns.resolve },
    config: [dnsEntry(up.port), destinationRule('db', 'db.example.test', { trafficPolicy: { tls: { mode: 'SIMPLE', caCertificates: ca.certFile } } })],
  });
  try {
    const r = await call(mesh, 'http://db.example.test/');
    assert.equal(r.status, 200, r.body);
    assert.equal(up.seen[0]?.servername, 'db.example.test');
    assert.deepEqual(mesh.diagnostics().clusters[0]?.endpoints.map((e) => e.endpoint), [`127.0.0.1:${up.port}`]);
  } finally {
    await mesh.close();
    await up.close();
    cleanupPki();
  }
});

test('MeshConfig dnsRefreshRate sets dns.refreshRateMs; an explicit option wins; a bad value is refused by name', () => {
  const o = applyMeshConfig({ service: 'a', config: [], meshConfig: 'dnsRefreshRate: 5s\n' }, () => undefined);
  assert.deepEqual(o.dns, { refreshRateMs: 5_000 });
  const resolve = async (): Promise<DnsAnswer> => ({ addresses: [] });
  const both = applyMeshConfig({ service: 'a', config: [], dns: { resolve }, meshConfig: 'dnsRefreshRate: 5s\n' }, () => undefined);
  assert.deepEqual(both.dns, { refreshRateMs: 5_000, resolve });
  assert.equal(applyMeshConfig({ service: 'a', config: [], dns: { refreshRateMs: 1_000 }, meshConfig: { dnsRefreshRate: '5s' } }, () => undefined).dns?.refreshRateMs, 1_000);
  assert.throws(() => applyMeshConfig({ service: 'a', config: [], meshConfig: 'dnsRefreshRate: 0s\n' }, () => undefined), /createMesh: `meshConfig\.dnsRefreshRate` must be a positive duration such as "60s", got "0s"/);
});

test('a bad dns option is refused, naming it', async () => {
  await assert.rejects(createMesh({ service: 'a', config: [], dns: { refreshRateMs: 0 } }), /createMesh: `dns\.refreshRateMs` must be a positive number of milliseconds, got 0/);
  await assert.rejects(createMesh({ service: 'a', config: [], dns: { resolve: 'x' as never } }), /`dns\.resolve` must be a function/);
  await assert.rejects(createMesh({ service: 'a', config: [], dns: { refreshRate: '5s' } as never }), /unknown option `dns\.refreshRate`/);
});
