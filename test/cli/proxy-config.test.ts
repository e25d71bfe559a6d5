/**
 * `meshlet proxy-config` run as a child process against a mesh's admin endpoint (real sockets):
 * an endpoint ejected by outlier detection is FAILED, then OK once its ejection ended (ManualClock);
 * the certificate's serial; JSON output; usage mistakes (2); an endpoint it cannot read (1); what
 * a hostile endpoint answers printed inert.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clearInterval, setInterval } from 'node:timers';
import { after, describe, it } from 'node:test';
import { createMesh, ManualClock, seededRandom } from '../../src/index.ts';
import { initDevCa } from '../../src/security/pki/dev-ca.ts';
import { answering, call, destinationRule, freePort, serviceEntry, startUpstream, virtualService } from '../helpers/upstreams.ts';
import { describeDomains, shownDomains } from '../../src/cli/commands/proxy-config.ts';
import { meshletAsync } from './helpers.ts';

const quiet = { warn: () => {} };

describe('meshlet proxy-config', () => {
  it('endpoints: FAILED while outlier detection ejects one, OK after; clusters, routes, secret and -o json', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshlet-pc-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    await initDevCa(join(dir, 'ca'));
    const good = await startUpstream('good');
    const bad = await startUpstream('bad', answering(503, 'bad'));
    const clock = new ManualClock(1000);
    const mesh = await createMesh({
      service: 'client',
      clock,
      random: seededRandom(3),
      logger: quiet,
      identity: { devCa: join(dir, 'ca') },
      admin: { port: 0 },
      config: [
        serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: good.port, labels: { version: 'v1' } }, { port: bad.port, labels: { version: 'v2' } }]),
        destinationRule('svc', 'svc', { subsets: [{ name: 'v1', labels: { version: 'v1' } }], trafficPolicy: { outlierDetection: { consecutive5xxErrors: 1, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 100 } } }),
        virtualService('svc', ['svc'], [{ match: [{ uri: { prefix: '/v1' } }], route: [{ destination: { host: 'svc', subset: 'v1' } }] }, { route: [{ destination: { host: 'svc' } }] }]),
      ],
    });
    const url = mesh.adminUrl as string;
    try {
      for (let i = 0; i < 6; i++) await call(mesh, 'http://svc/');
      const c = 'outbound|80||svc.default.svc.cluster.local';
      const ejected = await meshletAsync(['proxy-config', 'endpoints', url]);
      assert.equal(ejected.code, 0, ejected.stderr);
      const lines = ejected.stdout.trimEnd().split('\n');
      assert.match(lines[0] ?? '', /^ENDPOINT\s+STATUS\s+OUTLIER CHECK\s+CLUSTER$/);
      const row = (port: number, cluster: string) => lines.find((l) => l.startsWith(`127.0.0.1:${port} `) && l.endsWith(` ${cluster}`))?.split(/\s+/);
      assert.deepEqual(row(bad.port, c), [`127.0.0.1:${bad.port}`, 'HEALTHY', 'FAILED', c]);
      assert.deepEqual(row(good.port, c), [`127.0.0.1:${good.port}`, 'HEALTHY', 'OK', c]);
      assert.deepEqual(row(good.port, 'outbound|80|v1|svc.default.svc.cluster.local'), [`127.0.0.1:${good.port}`, 'HEALTHY', 'OK', 'outbound|80|v1|svc.default.svc.cluster.local']);
      const json = await meshletAsync(['proxy-config', 'endpoints', url, '--cluster', '|80||', '-o', 'json']);
      const doc = JSON.parse(json.stdout);
      assert.equal(doc.adminUrl, url);
      const badRow = doc.endpoints.find((e: { port: number }) => e.port === bad.port);
      assert.deepEqual(
        { outlierCheck: badRow.outlierCheck, ejectedForMs: badRow.ejectedForMs, ejectionReason: badRow.ejectionReason, labels: badRow.labels, requests: badRow.requests },
        { outlierCheck: 'FAILED', ejectedForMs: 30_000, ejectionReason: '1 consecutive 5xx (consecutive5xxErrors=1)', labels: { version: 'v2', 'topology.istio.io/cluster': 'Kubernetes' }, requests: { active: 0, total: 1, success: 0, error: 1, timeout: 0 } },
      );
      assert.deepEqual(doc.endpoints.map((e: { cluster: string }) => e.cluster), [c, c], '--cluster filters');

      clock.advance(30_000);
      const back = await meshletAsync(['proxy-config', 'endpoints', url]);
      assert.equal(back.code, 0, back.stderr);
      assert.doesNotMatch(back.stdout, /FAILED/);
      assert.match(back.stdout, new RegExp(`^127\\.0\\.0\\.1:${bad.port}\\s+HEALTHY\\s+OK\\s+`, 'm'));

      const all = await meshletAsync(['proxy-config', 'all', url]);
      assert.equal(all.code, 0, all.stderr);
      assert.match(all.stdout, /^SERVICE FQDN\s+PORT\s+SUBSET\s+DIRECTION\s+TYPE\s+DESTINATION RULE$/m);
      assert.match(all.stdout, /^svc\.default\.svc\.cluster\.local\s+80\s+v1\s+OUTBOUND\s+EDS\s+svc\.default$/m);
      assert.match(all.stdout, /^NAME\s+VHOST NAME\s+DOMAINS\s+MATCH\s+VIRTUAL SERVICE$/m);
      assert.match(all.stdout, /^80\s+svc\.default\.svc\.cluster\.local:80\s+.*\s+uri prefix "\/v1"\s+svc\.default$/m);
      assert.match(all.stdout, /^80\s+svc\.default\.svc\.cluster\.local:80\s+.*\s+\/\*\s+svc\.default$/m);
      const serial = new X509Certificate(mesh.credentials.current?.certChain ?? '').serialNumber.toLowerCase();
      assert.match(all.stdout, /^RESOURCE NAME\s+TYPE\s+STATUS\s+VALID CERT\s+SERIAL NUMBER\s+NOT AFTER\s+NOT BEFORE$/m);
      assert.match(all.stdout, new RegExp(`^default\\s+Cert Chain\\s+ACTIVE\\s+true\\s+${serial}\\s+\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ\\s+`, 'm'));
      assert.match(all.stdout, /^ROOTCA\s+CA\s+ACTIVE\s+true\s+[0-9a-f]+\s+/m);
      const secret = JSON.parse((await meshletAsync(['proxy-config', 'secret', url, '-o', 'json'])).stdout);
      assert.equal(secret.secrets[0].spiffeId, 'spiffe://cluster.local/ns/default/sa/default');
      assert.doesNotMatch(JSON.stringify(secret), /PRIVATE KEY/);
    } finally {
      await mesh.close();
      await good.close();
      await bad.close();
    }
  });

  it('usage mistakes exit 2; an endpoint it cannot read exits 1 naming it; what an endpoint answers is printed inert', async () => {
    for (const args of [['proxy-config'], ['proxy-config', 'listeners', 'http://127.0.0.1:15000'], ['proxy-config', 'clusters'], ['proxy-config', 'clusters', 'localhost:15000'], ['proxy-config', 'clusters', 'http://127.0.0.1:1', '--timeout', 'soon'], ['proxy-config', 'clusters', 'http://127.0.0.1:1', '-o', 'xml']]) {
      const r = await meshletAsync(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^meshlet/);
    }
    const dead = await freePort();
    const unreachable = await meshletAsync(['proxy-config', 'endpoints', `http://127.0.0.1:${dead}`]);
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, new RegExp(`^meshlet proxy-config: cannot reach the admin endpoint at http://127\\.0\\.0\\.1:${dead}: `));
    // Something else on the port (a hostile one): its answers cannot drive the terminal.
    const evil = '\u001b]0;owned\u0007\u001b[2J\u202e';
    const server = createServer((req, res) => {
      if (req.url === '/clusters?format=json') res.end(JSON.stringify({ cluster_statuses: [{ name: `outbound|80||x${evil}`, host_statuses: [{ address: { socket_address: { address: `1.2.3.4${evil}`, port_value: 80 } }, health_status: { eds_health_status: `HEALTHY${evil}` } }] }] }));
      else if (req.url === '/certs') {
        res.statusCode = 500;
        res.end(`nope${evil}`);
      } else res.end('not json');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      for (const what of ['endpoints', 'clusters']) {
        const r = await meshletAsync(['proxy-config', what, base]);
        assert.equal(r.code, 0, r.stderr);
        assertInert(r.stdout, what);
        assert.match(r.stdout, /\\x1b\]0;owned\\x07\\x1b\[2J\\u202e/, what);
      }
      const json = await meshletAsync(['proxy-config', 'endpoints', base, '-o', 'json']);
      assertInert(json.stdout, '-o json');
      const refused = await meshletAsync(['proxy-config', 'secret', base]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /\/certs answered 500: nope\\x1b/);
      assertInert(refused.stderr, 'a refusal');
      const notJson = await meshletAsync(['proxy-config', 'routes', base]);
      assert.equal(notJson.code, 1);
      assert.match(notJson.stderr, /\/config_dump did not answer JSON: is a meshlet admin endpoint listening there/);
    } finally {
      server.close();
    }
  });

  it('an endpoint that trickles its answer, announces a huge one, or answers JSON of another shape: exit 1 or a table, never a hang or a crash', async () => {
    const server = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.url === '/clusters?format=json') {
        // A byte every 100 ms: never idle long enough for a per-chunk timeout, for 10 s in all.
        res.write('{"cluster_statuses": [');
        let n = 0;
        const t = setInterval(() => {
          if (++n === 100) {
            clearInterval(t);
            res.end(']}');
          } else res.write(' ');
        }, 100);
        res.on('close', () => clearInterval(t));
      } else if (req.url === '/config_dump') {
        res.setHeader('content-length', String(200 * 1024 * 1024));
        res.write('{"virtualHosts": [');
      } else if (req.url === '/certs') {
        res.end(JSON.stringify({ certificates: [null, { cert_chain: [{ serial_number: 5, valid_from: {}, subject_alt_names: 'x' }], ca_cert: 'y' }] }));
      } else res.end('{}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const slow = await meshletAsync(['proxy-config', 'clusters', base, '--timeout', '1s']);
      assert.equal(slow.code, 1, slow.stderr);
      assert.match(slow.stderr, new RegExp(`^meshlet proxy-config: the admin endpoint at ${base.replaceAll('.', '\\.')} did not finish answering /clusters\\?format=json within 1 s \\(--timeout\\)`));
      const huge = await meshletAsync(['proxy-config', 'routes', base, '--timeout', '5s']);
      assert.equal(huge.code, 1, huge.stderr);
      assert.match(huge.stderr, /\/config_dump answered more than 128 MiB: not a meshlet admin endpoint\?/);
      const odd = await meshletAsync(['proxy-config', 'secret', base]);
      assert.equal(odd.code, 0, odd.stderr);
      assert.doesNotMatch(odd.stderr, /internal error/);
      assert.match(odd.stdout, /^default\s+Cert Chain\s+ACTIVE\s+false\s+5\s*$/m);
    } finally {
      server.closeAllConnections();
      server.close();
    }
    // Each section of another shape than a meshlet admin endpoint's answers: cells left empty, no stack trace.
    const shapes: Record<string, string> = {
      '/clusters?format=json': JSON.stringify({ cluster_statuses: [null, 5, { name: 'outbound|80||x', host_statuses: 5, meshlet: { destination_rules: 'dr', type: 7 } }, { name: 'y', host_statuses: [null, { address: 'a', stats: 's', locality: 5 }] }] }),
      '/config_dump': JSON.stringify({ virtualHosts: [null, { domains: 5, routes: 'r' }, { name: 'v', port: '80', domains: ['a', 5], routes: [null, { match: 'x', virtualService: 5 }] }] }),
      '/certs': JSON.stringify({ certificates: [{ cert_chain: 'c', ca_cert: [null] }] }),
    };
    const other = createServer((req, res) => res.end(shapes[req.url ?? ''] ?? '{}'));
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const otherBase = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    try {
      for (const what of ['all', 'clusters', 'endpoints', 'routes', 'secret']) {
        for (const o of [[], ['-o', 'json']]) {
          const r = await meshletAsync(['proxy-config', what, otherBase, ...o]);
          assert.equal(r.code, 0, `${what} ${o.join(' ')}: ${r.stderr}`);
          assert.doesNotMatch(r.stderr, /internal error/);
        }
      }
    } finally {
      other.close();
    }
  });

  it('JSON without the section a meshlet admin endpoint answers: exit 1 naming the URL that answered it', async () => {
    const server = createServer((_req, res) => res.end('{"status":"ok"}'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      for (const [what, path, field] of [
        ['clusters', '/clusters?format=json', 'cluster_statuses'],
        ['routes', '/config_dump', 'virtualHosts'],
        ['secret', '/certs', 'certificates'],
      ] as const) {
        const r = await meshletAsync(['proxy-config', what, base]);
        assert.equal(r.code, 1, r.stderr);
        assert.equal(r.stderr, `meshlet proxy-config: ${base}${path} answered JSON without ${field}: not a meshlet admin endpoint?\n`);
      }
    } finally {
      server.close();
    }
  });

  it("DOMAINS as istioctl's describeRouteDomains (its route_test.go cases, and a service's own domains)", () => {
    const cases: [string[], string][] = [
      [[], ''],
      [['example.com'], 'example.com'],
      [['example.com', 'example.com:8080'], 'example.com'],
      [['example.com', 'example.com:8080', '1.2.3.4', '1.2.3.4:8080'], 'example.com, 1.2.3.4'],
      [['example.com', 'example.com:8080', '[fd00:10:96::7fc7]', '[fd00:10:96::7fc7]:8080'], 'example.com, [fd00:10:96::7fc7]'],
      [['example.com', 'example.com:8080', 'www.example.com', 'www.example.com:8080', '[fd00:10:96::7fc7]', '[fd00:10:96::7fc7]:8080'], 'example.com, www.example.com + 1 more...'],
      [['reviews.default.svc.cluster.local:9080', 'reviews.default.svc.cluster.local', 'reviews.default.svc:9080', 'reviews.default.svc', 'reviews.default:9080', 'reviews.default', 'reviews:9080', 'reviews'], 'reviews.default, reviews'],
    ];
    for (const [domains, expected] of cases) assert.equal(describeDomains(shownDomains(domains)), expected, domains.join(' '));
  });
});

/** No escape, bell or bidi override reached the terminal. */
function assertInert(text: string, what: string): void {
  for (const ch of ['\u001b', '\u0007', '\u202e']) assert.ok(!text.includes(ch), `${what} holds U+${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
