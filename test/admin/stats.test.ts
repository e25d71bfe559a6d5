/**
 * `/stats` on the admin endpoint, over real sockets: Istio's circuit-breaking task (samples/httpbin
 * behind `maxConnections: 1`, `http1MaxPendingRequests: 1`, `maxRequestsPerConnection: 1`, a
 * fortio-style load) read with curl and grep as `pilot-agent request GET stats` is read in a pod;
 * outlier ejections, retries and codes under Envoy's names; `?filter`, `?usedonly`, JSON and
 * Prometheus formats; inbound cluster stats; nothing subscribed without the admin endpoint.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { createMesh, ManualClock, seededRandom } from '../../src/index.ts';
import { channels } from '../../src/core/observe.ts';
import { skipWithout } from '../helpers/tools.ts';
import { answering, call, destinationRule, serviceEntry, startUpstream, virtualService } from '../helpers/upstreams.ts';

const quiet = { warn: () => {} };
const run = promisify(execFile);

async function text(url: string): Promise<{ status: number; body: string; type: string | null }> {
  const r = await fetch(url);
  return { status: r.status, body: await r.text(), type: r.headers.get('content-type') };
}

/** `name: value` lines of a /stats answer, as a map. */
function parse(body: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of body.split('\n')) {
    if (line === '') continue;
    const i = line.lastIndexOf(': ');
    m.set(line.slice(0, i), Number(line.slice(i + 2)));
  }
  return m;
}

const HTTPBIN = 'outbound|8000||httpbin.default.svc.cluster.local';

describe('admin /stats', () => {
  it("Istio's circuit-breaking task: fortio-style load gets 503 UO, and /stats (curl | grep pending) counts exactly those as upstream_rq_pending_overflow", async () => {
    // samples/httpbin: answers /get after a moment (the load overlaps, as fortio's against a real httpbin).
    const httpbin = await startUpstream('httpbin', async (_req, res) => {
      await delay(15);
      res.setHeader('content-type', 'application/json');
      res.end('{"url":"http://httpbin:8000/get"}');
    });
    const mesh = await createMesh({
      service: 'fortio',
      logger: quiet,
      admin: { port: 0 },
      config: [
        { apiVersion: 'v1', kind: 'Service', metadata: { name: 'httpbin', namespace: 'default' }, spec: { selector: { app: 'httpbin' }, ports: [{ name: 'http', port: 8000, targetPort: httpbin.port }] } },
        { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name: 'httpbin-1', namespace: 'default' }, spec: { address: '127.0.0.1', labels: { app: 'httpbin' } } },
        // The task's DestinationRule, as written there.
        destinationRule('httpbin', 'httpbin', {
          trafficPolicy: {
            connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1, maxRequestsPerConnection: 1 } },
            outlierDetection: { consecutive5xxErrors: 1, interval: '1s', baseEjectionTime: '3m', maxEjectionPercent: 100 },
          },
        }),
      ],
    });
    try {
      const url = mesh.adminUrl as string;
      // fortio load -c 3 -qps 0 -n 30 http://httpbin:8000/get: 3 connections, 10 calls each, back to back.
      const codes = new Map<string, number>();
      await Promise.all(
        [0, 1, 2].map(async () => {
          for (let i = 0; i < 10; i++) {
            const r = await call(mesh, 'http://httpbin:8000/get');
            const k = `${r.status} ${r.flags ?? ''}`;
            codes.set(k, (codes.get(k) ?? 0) + 1);
          }
        }),
      );
      const overflowed = codes.get('503 UO') ?? 0;
      const ok = codes.get('200 ') ?? 0;
      assert.ok(overflowed > 0, `some calls trip the breaker: ${JSON.stringify([...codes])}`);
      assert.equal(ok + overflowed, 30, `only 200 and 503 UO: ${JSON.stringify([...codes])}`);

      const stats = parse((await text(`${url}/stats`)).body);
      const s = (name: string) => stats.get(`cluster.${HTTPBIN};.${name}`);
      assert.equal(s('upstream_rq_pending_overflow'), overflowed);
      assert.equal(s('upstream_rq_503'), overflowed, 'the local 503 is charged as Envoy charges it');
      assert.equal(s('upstream_rq_5xx'), overflowed);
      assert.equal(s('upstream_rq_200'), ok);
      assert.equal(s('upstream_rq_2xx'), ok);
      assert.equal(s('upstream_rq_completed'), 30);
      assert.equal(s('upstream_rq_total'), ok, 'an overflowed request never went upstream');
      assert.equal(s('upstream_rq_active'), 0);
      assert.equal(s('upstream_rq_pending_active'), 0);
      assert.equal(s('circuit_breakers.default.rq_pending_open'), 0);
      assert.equal(s('circuit_breakers.default.remaining_pending'), 1);
      // A local overflow is not the endpoint's 5xx: nothing ejected.
      assert.equal(s('outlier_detection.ejections_active'), 0);
      assert.equal(stats.get('server.live'), 1);

      // What the task's operator types, with curl in place of pilot-agent.
      if (skipWithout('curl') === false) {
        const { stdout } = await run('sh', ['-c', `curl -sS '${url}/stats' | grep httpbin | grep pending`]);
        assert.match(stdout, new RegExp(`^cluster\\.outbound\\|8000\\|\\|httpbin\\.default\\.svc\\.cluster\\.local;\\.upstream_rq_pending_overflow: ${overflowed}$`, 'm'));
        assert.match(stdout, /;\.upstream_rq_pending_active: 0$/m);
        assert.match(stdout, /;\.circuit_breakers\.default\.rq_pending_open: 0$/m);
        assert.deepEqual(stdout.trimEnd().split('\n').filter((l) => !l.includes('httpbin') || !l.includes('pending')), [], 'grep kept only those lines');
      }
      // The same number in Prometheus' format, labelled as a sidecar's /stats/prometheus labels it.
      const prom = (await text(`${url}/stats/prometheus`)).body;
      assert.match(prom, /^# TYPE envoy_cluster_upstream_rq_pending_overflow counter$/m);
      assert.ok(prom.includes(`envoy_cluster_upstream_rq_pending_overflow{cluster_name="${HTTPBIN}"} ${overflowed}\n`), prom);
      assert.ok(prom.includes(`envoy_cluster_upstream_rq{response_code="503",cluster_name="${HTTPBIN}"} ${overflowed}\n`));
      assert.ok(prom.includes(`envoy_cluster_upstream_rq{response_code_class="2xx",cluster_name="${HTTPBIN}"} ${ok}\n`));
      assert.match(prom, /^# TYPE envoy_cluster_upstream_rq_active gauge$/m);
      assert.match(prom, /^envoy_server_live 1$/m);
    } finally {
      await mesh.close();
      await httpbin.close();
    }
  });

  it('outlier ejections, retries and per-code counts under Envoy names; ?filter (RE2, partial), ?usedonly, ?format=json', async () => {
    const good = await startUpstream('good');
    const bad = await startUpstream('bad', answering(503, 'bad'));
    const mesh = await createMesh({
      service: 'client',
      random: seededRandom(3),
      logger: quiet,
      admin: { port: 0 },
      config: [
        serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: good.port }, { port: bad.port }]),
        serviceEntry('idle', 'idle.default.svc.cluster.local', 80, [{ port: good.port }]),
        virtualService('svc', ['svc.default.svc.cluster.local'], [{ route: [{ destination: { host: 'svc.default.svc.cluster.local' } }], retries: { attempts: 2, retryOn: '5xx' } }]),
        destinationRule('svc', 'svc.default.svc.cluster.local', { trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' }, outlierDetection: { consecutive5xxErrors: 1, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 100 } } }),
      ],
    });
    try {
      const url = mesh.adminUrl as string;
      const c = 'outbound|80||svc.default.svc.cluster.local';
      for (let i = 0; i < 4; i++) assert.equal((await call(mesh, 'http://svc.default.svc.cluster.local/')).status, 200);
      const all = parse((await text(`${url}/stats`)).body);
      const s = (name: string) => all.get(`cluster.${c};.${name}`);
      assert.equal(s('outlier_detection.ejections_active'), 1);
      assert.equal(s('outlier_detection.ejections_enforced_total'), 1);
      assert.equal(s('outlier_detection.ejections_enforced_consecutive_5xx'), 1);
      assert.equal(s('membership_healthy'), 1);
      assert.equal(s('membership_total'), 2);
      assert.equal(s('upstream_rq_retry'), 1, 'the one call that met the bad endpoint was retried once');
      assert.equal(s('upstream_rq_retry_success'), 1);
      assert.equal(s('upstream_rq_total'), 5, 'attempts, retries included');
      assert.equal(s('upstream_rq_200'), 4, 'the final answers');
      assert.equal(s('upstream_rq_503'), undefined, 'a retried 503 is not a final answer');
      assert.equal(all.get('cluster.outbound|80||idle.default.svc.cluster.local;.upstream_rq_total'), 0, 'a cluster no call used is listed, nothing counted');
      // Counters and gauges sorted by name, then the histograms (Envoy's text output).
      const plain = [...all.keys()].filter((k) => !k.endsWith('.upstream_rq_time') && !k.endsWith('.upstream_cx_connect_ms'));
      assert.deepEqual(plain, [...plain].sort(), 'sorted by name');
      assert.equal([...all.keys()].at(-1), `cluster.${c};.upstream_rq_time`);

      // ?filter: Envoy's RE2, matched against part of the name.
      const f = parse((await text(`${url}/stats?filter=${encodeURIComponent('svc.*ejections_(active|enforced_total)')}`)).body);
      assert.deepEqual([...f.keys()], [`cluster.${c};.outlier_detection.ejections_active`, `cluster.${c};.outlier_detection.ejections_enforced_total`]);
      const bad400 = await text(`${url}/stats?filter=${encodeURIComponent('(unclosed')}`);
      assert.equal(bad400.status, 400);
      assert.match(bad400.body, /^admin: \/stats: filter "\(unclosed" is not a valid RE2 regex/);
      // The error names the path asked: a scrape config's /stats/prometheus?filter=…
      const badProm = await text(`${url}/stats/prometheus?filter=${encodeURIComponent('(unclosed')}`);
      assert.equal(badProm.status, 400);
      assert.match(badProm.body, /^admin: \/stats\/prometheus: filter "\(unclosed" is not a valid RE2 regex/);
      // RE2, not JavaScript: a lookahead is refused, as Envoy refuses it.
      assert.equal((await text(`${url}/stats?filter=${encodeURIComponent('(?=x)')}`)).status, 400);
      // ?usedonly: the idle cluster's zeros go, the used cluster's counters that moved stay.
      const used = parse((await text(`${url}/stats?usedonly`)).body);
      assert.equal([...used.keys()].some((k) => k.includes('idle.default')), false);
      assert.equal(used.get(`cluster.${c};.upstream_rq_200`), 4);
      assert.equal(used.has(`cluster.${c};.upstream_rq_timeout`), false, 'a counter never written is not used');
      // ?format=json: Envoy's shape.
      const j = await text(`${url}/stats?format=json&filter=upstream_rq_200`);
      assert.equal(j.type, 'application/json');
      assert.deepEqual(JSON.parse(j.body), { stats: [{ name: `cluster.${c};.upstream_rq_200`, value: 4 }] });
      assert.equal((await text(`${url}/stats?format=yaml`)).status, 400);
    } finally {
      await mesh.close();
      await good.close();
      await bad.close();
    }
  });

  it('inbound: requests the app answered are counted on the inbound|<port>|| cluster; server.uptime on the mesh clock', async () => {
    const clock = new ManualClock(1000);
    const mesh = await createMesh({ service: 'httpbin', clock, logger: quiet, admin: { port: 0 }, config: [] });
    const server = mesh.createServer((req, res) => {
      res.statusCode = req.url === '/status/418' ? 418 : 200;
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      for (const p of ['/get', '/get', '/status/418']) await (await fetch(`http://127.0.0.1:${port}${p}`)).arrayBuffer();
      const s = parse((await text(`${mesh.adminUrl}/stats?filter=inbound`)).body);
      assert.equal(s.get(`cluster.inbound|${port}||;.upstream_rq_200`), 2);
      assert.equal(s.get(`cluster.inbound|${port}||;.upstream_rq_418`), 1);
      assert.equal(s.get(`cluster.inbound|${port}||;.upstream_rq_4xx`), 1);
      assert.equal(s.get(`cluster.inbound|${port}||;.upstream_rq_total`), 3);
      clock.advance(42_000);
      const server_ = parse((await text(`${mesh.adminUrl}/stats?filter=${encodeURIComponent('^server\\.')}`)).body);
      assert.deepEqual(Object.fromEntries(server_), { 'server.live': 1, 'server.state': 0, 'server.uptime': 42 });
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
      await mesh.close();
    }
  });

  it('costs nothing without the admin endpoint: no channel is subscribed; one is while it runs, none after close', async () => {
    const watched = [channels.callEnd, channels.attemptEnd, channels.inboundEnd, channels.poolOverflow, channels.outlierEjected];
    const plain = await createMesh({ service: 'a', logger: quiet, config: [] });
    try {
      assert.deepEqual(watched.map((c) => c.hasSubscribers), [false, false, false, false, false]);
    } finally {
      await plain.close();
    }
    const withAdmin = await createMesh({ service: 'b', logger: quiet, admin: { port: 0 }, config: [] });
    assert.deepEqual(watched.map((c) => c.hasSubscribers), [true, true, true, true, true]);
    await withAdmin.close();
    assert.deepEqual(watched.map((c) => c.hasSubscribers), [false, false, false, false, false]);
  });
});
