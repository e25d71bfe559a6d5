/**
 * The admin endpoint (`createMesh({ admin })`) over real sockets: a mesh with real upstreams, one
 * of them ejected by outlier detection and back after its ejection (ManualClock); the dev-CA
 * certificate with no key material anywhere; loopback only unless asked; read-only; closed by
 * mesh.close() after answering DRAINING; curl as an independent client.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createMesh, InvalidArgumentError, ManualClock, seededRandom } from '../../src/index.ts';
import { initDevCa } from '../../src/security/pki/dev-ca.ts';
import { skipWithout } from '../helpers/tools.ts';
import { answering, call, destinationRule, serviceEntry, startUpstream } from '../helpers/upstreams.ts';

const quiet = { warn: () => {} };
const run = promisify(execFile);

/** GET through a raw request, so a test can set the Host header (fetch forbids it). */
function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A mesh calling `svc` on two upstreams (one answers 503), ejecting on the first 5xx for 30 s. */
async function ejectingMesh(extra: Record<string, unknown> = {}) {
  const good = await startUpstream('good');
  const bad = await startUpstream('bad', answering(503, 'bad'));
  const clock = new ManualClock(1000);
  const mesh = await createMesh({
    service: 'client',
    clock,
    random: seededRandom(3),
    logger: quiet,
    admin: { port: 0 },
    config: [
      serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: good.port, locality: 'us-east/a/1', labels: { version: 'v1' } }, { port: bad.port, labels: { version: 'v2' } }]),
      destinationRule('svc', 'svc', { trafficPolicy: { outlierDetection: { consecutive5xxErrors: 1, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 100 } } }),
    ],
    ...extra,
  });
  const close = async () => {
    await mesh.close();
    await good.close();
    await bad.close();
  };
  return { mesh, clock, good, bad, close, url: mesh.adminUrl as string };
}

describe('admin endpoint', () => {
  it('/clusters shows an ejected endpoint /failed_outlier_check (why, for how long) and healthy again once the ejection ended', async () => {
    const { mesh, clock, good, bad, close, url } = await ejectingMesh();
    try {
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const c = 'outbound|80||svc.default.svc.cluster.local';
      // Before any call: the config's endpoints, healthy, nothing counted.
      const before = await get(`${url}/clusters`);
      assert.equal(before.status, 200);
      assert.match(before.body, new RegExp(`^${re(c)}::127\\.0\\.0\\.1:${bad.port}::health_flags::healthy$`, 'm'));
      for (let i = 0; i < 6; i++) await call(mesh, 'http://svc/');
      const text = (await get(`${url}/clusters`)).body;
      const line = (ep: number, stat: string) => new RegExp(`^${re(c)}::127\\.0\\.0\\.1:${ep}::${stat}::(.*)$`, 'm').exec(text)?.[1];
      assert.equal(line(bad.port, 'health_flags'), '/failed_outlier_check');
      assert.equal(line(bad.port, 'ejection_reason'), '1 consecutive 5xx (consecutive5xxErrors=1)');
      assert.equal(line(bad.port, 'ejected_for_ms'), '30000');
      assert.equal(line(bad.port, 'rq_error'), '1');
      assert.equal(line(good.port, 'health_flags'), 'healthy');
      assert.equal(line(good.port, 'rq_total'), '5');
      assert.equal(line(good.port, 'rq_success'), '5');
      assert.equal(line(good.port, 'zone'), 'a');
      assert.equal(line(good.port, 'weight'), '1');
      assert.equal(line(good.port, 'ejection_reason'), undefined, 'only an ejected endpoint has a reason');
      assert.match(text, new RegExp(`^${re(c)}::outlier::success_rate_average::-1$`, 'm'));
      assert.match(text, new RegExp(`^${re(c)}::default_priority::max_connections::4294967295$`, 'm'));
      const json = JSON.parse((await get(`${url}/clusters?format=json`)).body);
      const hosts = json.cluster_statuses.find((s: { name: string }) => s.name === c).host_statuses;
      const badHost = hosts.find((h: { address: { socket_address: { port_value: number } } }) => h.address.socket_address.port_value === bad.port);
      assert.deepEqual(badHost.health_status, { eds_health_status: 'HEALTHY', failed_outlier_check: true });
      assert.deepEqual(badHost.meshlet, { ejected_for_ms: 30_000, ejection_reason: '1 consecutive 5xx (consecutive5xxErrors=1)', labels: { version: 'v2', 'topology.istio.io/cluster': 'Kubernetes' } });
      // The ejection ends at the first sweep (every 10 s) at or after 30 s.
      clock.advance(30_000);
      const back = (await get(`${url}/clusters`)).body;
      assert.match(back, new RegExp(`^${re(c)}::127\\.0\\.0\\.1:${bad.port}::health_flags::healthy$`, 'm'));
      assert.doesNotMatch(back, /failed_outlier_check|ejection_reason/);
    } finally {
      await close();
    }
  });

  it('/certs: the dev-CA certificate (serial, SPIFFE ID, validity) and the root; no key material in any answer', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshlet-admin-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    await initDevCa(join(dir, 'ca'));
    const { mesh, close, url } = await ejectingMesh({ identity: { devCa: join(dir, 'ca') }, namespace: 'shop', serviceAccount: 'client-sa' });
    try {
      await call(mesh, 'http://svc/');
      const cred = mesh.credentials.current;
      assert.ok(cred !== undefined);
      const leaf = new X509Certificate(cred.certChain);
      const certs = JSON.parse((await get(`${url}/certs`)).body);
      const chain = certs.certificates[0].cert_chain[0];
      assert.equal(chain.serial_number, leaf.serialNumber.toLowerCase());
      assert.deepEqual(chain.subject_alt_names, [{ uri: 'spiffe://cluster.local/ns/shop/sa/client-sa' }]);
      assert.equal(chain.expiration_time, new Date(leaf.validTo).toISOString());
      assert.equal(chain.valid_from, new Date(leaf.validFrom).toISOString());
      assert.ok(chain.days_until_expiration >= 0);
      assert.equal(certs.certificates[0].ca_cert.length, 1, 'the root');
      assert.deepEqual(certs.meshlet, { spiffe_id: 'spiffe://cluster.local/ns/shop/sa/client-sa', source: 'dev-ca', pending: false });
      // No answer holds the private key, whole or in part (its PEM lines), nor any PEM block at all.
      const keyLines = cred.privateKey.split('\n').filter((l) => l.length > 20 && !l.startsWith('-----'));
      assert.ok(keyLines.length > 0);
      for (const p of ['/', '/help', '/clusters', '/clusters?format=json', '/config_dump', '/certs', '/server_info', '/ready', '/explain?url=http://svc/', '/explain?url=http://svc/&format=text']) {
        const r = await get(`${url}${p}`);
        assert.equal(r.status, 200, p);
        assert.doesNotMatch(r.body, /PRIVATE KEY|-----BEGIN/, p);
        for (const l of keyLines) assert.ok(!r.body.includes(l), `${p} holds a line of the private key`);
      }
      const info = JSON.parse((await get(`${url}/server_info`)).body);
      assert.equal(info.state, 'LIVE');
      assert.equal(info.node.spiffe_id, 'spiffe://cluster.local/ns/shop/sa/client-sa');
      assert.equal(info.config.version, mesh.configVersion);
    } finally {
      await close();
    }
  });

  it('/config_dump, /explain, /ready; read-only (405), unknown paths (404), Host names other than loopback refused (403)', async () => {
    const { mesh, close, url } = await ejectingMesh();
    try {
      const dump = JSON.parse((await get(`${url}/config_dump`)).body);
      assert.equal(dump.config.version, mesh.configVersion);
      assert.equal(dump.config.source, 'file');
      assert.deepEqual(dump.resources.map((r: { kind: string }) => r.kind), ['ServiceEntry', 'DestinationRule']);
      assert.deepEqual(dump.virtualHosts.map((v: { name: string }) => v.name), ['svc.default.svc.cluster.local:80']);
      assert.equal(dump.clusters[0].name, 'outbound|80||svc.default.svc.cluster.local');
      assert.equal(dump.sidecar, null);
      assert.deepEqual(dump.inbound.phases, mesh.diagnostics().inboundPhases);
      const ex = JSON.parse((await get(`${url}/explain?url=${encodeURIComponent('http://svc/x')}&method=POST&header=x-a:1`)).body);
      assert.equal(ex.outcome, 'routed');
      assert.equal(ex.targets[0].cluster, 'outbound|80||svc.default.svc.cluster.local');
      assert.match(ex.text, /svc\.default\.svc\.cluster\.local:80/);
      assert.equal((await get(`${url}/explain`)).status, 400);
      assert.equal((await get(`${url}/explain?url=http://svc/&header=nocolon`)).status, 400);
      const ready = await get(`${url}/ready`);
      assert.deepEqual([ready.status, ready.body], [200, 'LIVE\n']);
      assert.equal(ready.headers['cache-control'], 'no-cache, max-age=0');
      for (const m of ['POST', 'PUT', 'DELETE']) {
        const r = await get(`${url}/clusters`, {}, m);
        assert.equal(r.status, 405, m);
        assert.equal(r.headers['allow'], 'GET, HEAD');
      }
      assert.equal((await get(`${url}/quitquitquit`, {}, 'POST')).status, 405);
      const missing = await get(`${url}/logging`);
      assert.equal(missing.status, 404);
      assert.match(missing.body, /serves \/certs, \/clusters/);
      // A doubled slash (a script joining "$ADMIN/" and "/clusters") is no path served, not the index with 200.
      const doubled = await get(`${url}//clusters`);
      assert.equal(doubled.status, 404, doubled.body);
      assert.match(doubled.body, /^admin: no \/\/clusters; /);
      assert.equal(JSON.parse((await get(`${url}/clusters?format=json#x`)).body).cluster_statuses[0].name, 'outbound|80||svc.default.svc.cluster.local');
      const port = new URL(url).port;
      for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]) assert.equal((await get(`${url}/ready`, { host })).status, 200, host);
      for (const host of [`attacker.example:${port}`, 'attacker.example', `10.0.0.1:${port}`]) assert.equal((await get(`${url}/ready`, { host })).status, 403, host);
    } finally {
      await close();
    }
  });

  it('mesh.close(): /ready answers 503 DRAINING while calls finish, then the port is closed', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    const slow = await startUpstream('slow', async (_req, res) => {
      await held;
      res.end('late');
    });
    const mesh = await createMesh({ service: 'client', logger: quiet, clock: new ManualClock(0), admin: { port: 0 }, config: [serviceEntry('slow', 'slow.default.svc.cluster.local', 80, [{ port: slow.port }])] });
    const url = mesh.adminUrl as string;
    try {
      const inFlight = call(mesh, 'http://slow/');
      // The upstream has the request (it answers when released).
      while (slow.hits === 0) await new Promise((r) => setImmediate(r));
      const closing = mesh.close();
      const ready = await get(`${url}/ready`);
      assert.deepEqual([ready.status, ready.body], [503, 'DRAINING\n']);
      assert.equal(JSON.parse((await get(`${url}/server_info`)).body).state, 'DRAINING');
      release();
      assert.equal((await inFlight).body, 'late');
      await closing;
      await assert.rejects(get(`${url}/ready`), /ECONNREFUSED/);
    } finally {
      release();
      await mesh.close();
      await slow.close();
    }
  });

  it('a host that is not loopback is refused unless admin.allowNonLoopback; bad options and a port in use reject createMesh', async () => {
    const base = { service: 'client', logger: quiet, config: [] };
    for (const host of ['0.0.0.0', '::', '10.1.2.3', 'example.com']) {
      await assert.rejects(createMesh({ ...base, admin: { port: 0, host } }), (e: unknown) => e instanceof InvalidArgumentError && e.message.includes(`\`admin.host\` "${host}" is not a loopback address`) && e.message.includes('allowNonLoopback'), host);
    }
    await assert.rejects(createMesh({ ...base, admin: { prot: 1 } as never }), /unknown option "admin\.prot" \(did you mean "admin\.port"\?\)/);
    await assert.rejects(createMesh({ ...base, admin: { port: 70000 } }), /`admin\.port` must be an integer 0\.\.65535/);
    await assert.rejects(createMesh({ ...base, admin: 'yes' as never }), /`admin` must be true or an object/);
    await assert.rejects(createMesh({ ...base, admin: { port: 0, allowNonLoopback: 'yes' as never } }), /`admin\.allowNonLoopback` must be true or false/);
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as AddressInfo).port;
    try {
      await assert.rejects(createMesh({ ...base, admin: { port } }), new RegExp(`the admin endpoint cannot listen on 127\\.0\\.0\\.1:${port}: address in use \\(EADDRINUSE\\)`));
    } finally {
      taken.close();
    }
    // Asked for explicitly, a host that is not loopback is bound (here an address of no interface: refused by the system, nothing exposed; the rejection says where).
    const told: string[] = [];
    await assert.rejects(createMesh({ ...base, logger: { warn: (m: string) => told.push(m) }, admin: { port: 0, host: '203.0.113.7', allowNonLoopback: true } }), /the admin endpoint cannot listen on 203\.0\.113\.7:0: /);
    assert.deepEqual(told, [], 'nothing listens: no warning that something does');
    // Loopback names are loopback: no warning, and no admin endpoint without the option.
    const warnings: string[] = [];
    const mesh = await createMesh({ ...base, logger: { warn: (m: string) => warnings.push(m) }, admin: { port: 0, host: 'localhost' } });
    try {
      assert.match(mesh.adminUrl ?? '', /^http:\/\/(127\.0\.0\.1|\[::1\]):\d+$/);
      assert.deepEqual(warnings, []);
    } finally {
      await mesh.close();
    }
    const none = await createMesh(base);
    assert.equal(none.adminUrl, undefined);
    await none.close();
  });

  it('admin.allowNonLoopback on 0.0.0.0 with port 0: the warning and the log name the port bound, adminUrl is one that answers', async () => {
    const warned: string[] = [];
    const logged: string[] = [];
    const mesh = await createMesh({ service: 'client', config: [], logger: { warn: (m: string) => warned.push(m), info: (m: string) => logged.push(m) }, admin: { port: 0, host: '0.0.0.0', allowNonLoopback: true } });
    try {
      const url = mesh.adminUrl ?? '';
      const m = /^http:\/\/127\.0\.0\.1:(\d+)$/.exec(url);
      assert.ok(m !== null, url);
      const port = Number(m[1]);
      assert.notEqual(port, 0);
      assert.equal((await get(`${url}/ready`)).status, 200, 'the URL given answers');
      assert.equal(warned.length, 1, warned.join('\n'));
      assert.match(warned[0] ?? '', new RegExp(`admin endpoint listens on 0\\.0\\.0\\.0:${port} \\(every interface[^)]*\\), not on loopback \\(admin\\.allowNonLoopback\\)`));
      assert.match(warned[0] ?? '', /its requests as they happen \(\/tap/, 'the warning says /tap shows live requests');
      const line = logged.find((l) => l.includes('admin endpoint at'));
      assert.match(line ?? '', new RegExp(`^meshlet: admin endpoint at http://127\\.0\\.0\\.1:${port}, listening on 0\\.0\\.0\\.0:${port} \\(every interface`), logged.join('\n'));
      assert.doesNotMatch([...warned, ...logged].join('\n'), /:0\b|http:\/\/0\.0\.0\.0/);
    } finally {
      await mesh.close();
    }
  });

  it('curl reads /clusters and /ready as any HTTP client does', { skip: skipWithout('curl') }, async () => {
    const { mesh, bad, close, url } = await ejectingMesh();
    try {
      await call(mesh, 'http://svc/');
      await call(mesh, 'http://svc/');
      const { stdout } = await run('curl', ['-sS', '--fail', `${url}/clusters`]);
      assert.match(stdout, new RegExp(`::127\\.0\\.0\\.1:${bad.port}::health_flags::/failed_outlier_check$`, 'm'));
      const ready = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', `${url}/ready`]);
      assert.equal(ready.stdout, '200');
    } finally {
      await close();
    }
  });
});

function re(s: string): string {
  return s.replace(/[|.]/g, '\\$&');
}
